#ifndef GPTB_SERVER_WORKER_SLOTS_H_
#define GPTB_SERVER_WORKER_SLOTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::worker {

// The machine's physical memory (MemTotal of /proc/meminfo), 0 when unknown.
int64_t MachineMemoryBytes();

// A worker's slots: one rank each. CPU slots ("cpu") by default; with `cuda_devices` > 0 (a CUDA
// build) slot i is "cuda:i". Each slot's memory budget is `slot_memory_bytes` when > 0, else the
// machine's memory divided by the number of slots (CPU) or `device_memory_bytes` (CUDA).
// INVALID_ARGUMENT for a non-positive slot count or more CUDA slots than devices.
absl::StatusOr<std::vector<gptbuilder::v1::Slot>> MakeSlots(int slots, int64_t slot_memory_bytes,
                                                            int cuda_devices = 0,
                                                            int64_t device_memory_bytes = 0);

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_SLOTS_H_
