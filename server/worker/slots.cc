#include "server/worker/slots.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace gptb::worker {

int64_t MachineMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream fields(line.substr(9));
      int64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

absl::StatusOr<std::vector<gptbuilder::v1::Slot>> MakeSlots(int slots, int64_t slot_memory_bytes,
                                                            int cuda_devices,
                                                            int64_t device_memory_bytes) {
  if (slots == 0) {
    // What `--slots 0` (every visible device) leaves on a machine without CUDA devices, or with a
    // build without CUDA: a clear refusal at start rather than a worker with nothing to offer.
    return absl::FailedPreconditionError(
        "--slots 0 asks for one slot per visible CUDA device and this worker sees none (no "
        "device, or a build without -DGPTB_WITH_CUDA=ON): give --slots N for N CPU slots");
  }
  if (slots < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--slots must be at least 1, got ", slots));
  }
  if (slot_memory_bytes < 0) {
    return absl::InvalidArgumentError("--slot-memory-bytes must not be negative");
  }
  if (cuda_devices > 0 && slots > cuda_devices) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots ", slots, " but only ", cuda_devices, " CUDA devices are visible"));
  }
  int64_t budget = slot_memory_bytes;
  if (budget == 0) {
    budget = cuda_devices > 0 ? device_memory_bytes : MachineMemoryBytes() / slots;
  }
  std::vector<gptbuilder::v1::Slot> out;
  for (int i = 0; i < slots; ++i) {
    gptbuilder::v1::Slot slot;
    slot.set_index(i);
    slot.set_device(cuda_devices > 0 ? absl::StrCat("cuda:", i) : "cpu");
    slot.set_memory_bytes(budget);
    out.push_back(std::move(slot));
  }
  return out;
}

}  // namespace gptb::worker
