#ifndef GPTB_SERVER_WORKER_SLOTS_H_
#define GPTB_SERVER_WORKER_SLOTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::worker {

// The machine's physical memory (MemTotal of /proc/meminfo), 0 when unknown.
int64_t MachineMemoryBytes();

// The memory this process is given: the smallest of the machine's memory and every cgroup limit
// on the way from the process's cgroup to the root (cgroup v2 memory.max, v1
// memory.limit_in_bytes), and where it came from ("cgroup memory.max", "MemTotal"), so that a
// worker in a 16 GiB container on a 256 GiB host does not advertise 256 GiB.
struct MemoryLimit {
  int64_t bytes = 0;
  std::string source;
};
MemoryLimit ProcessMemoryLimit();

// The same from given texts (tests): /proc/self/cgroup, a reader of files under the cgroup
// mounts (returns "" for a missing file) and MemTotal.
MemoryLimit ProcessMemoryLimit(const std::string& proc_self_cgroup,
                               const std::function<std::string(const std::string&)>& read_file,
                               int64_t machine_bytes);

// The CPUs this process may use: its affinity mask (taskset, cpusets, Kubernetes' static CPU
// manager), capped by a cgroup CPU quota (a container's CPU limit), at least 1.
int ProcessCpuCount();

// The smallest CPU quota (quota / period, rounded up) on the way from the process's cgroup to
// the root (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), 0 for none; from given texts
// as for ProcessMemoryLimit.
int CgroupCpuQuota(const std::string& proc_self_cgroup,
                   const std::function<std::string(const std::string&)>& read_file);

// Intra-op threads per rank for a worker of `slots` ranks on `cpus` CPUs: `requested` when > 0,
// else cpus / slots (at least 1), so that ranks x threads <= cores and the ranks, which step
// concurrently, do not oversubscribe them. INVALID_ARGUMENT for a negative request or one above
// `cpus`.
absl::StatusOr<int> ThreadsPerRank(int requested, int slots, int cpus);

// A worker's slots: one rank each. CPU slots ("cpu") by default; with `cuda_devices` > 0 (a CUDA
// build) slot i is "cuda:i". Each slot's memory budget is `slot_memory_bytes` when > 0, else
// `process_memory_bytes` divided by the number of slots (CPU) or `device_memory_bytes` (CUDA).
// FAILED_PRECONDITION for 0 (one slot per visible CUDA device) without devices; INVALID_ARGUMENT
// for a negative slot count or more CUDA slots than devices.
absl::StatusOr<std::vector<gptbuilder::v1::Slot>> MakeSlots(int slots, int64_t slot_memory_bytes,
                                                            int cuda_devices = 0,
                                                            int64_t device_memory_bytes = 0,
                                                            int64_t process_memory_bytes = -1);

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_SLOTS_H_
