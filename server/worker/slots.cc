#include "server/worker/slots.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gptb::worker {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A limit file's value; "max" and the v1 "unlimited" sentinel (2^63 rounded to pages) are none.
int64_t ParseLimit(const std::string& text) {
  const std::string value(absl::StripAsciiWhitespace(text));
  int64_t bytes = 0;
  if (value.empty() || value == "max" || !absl::SimpleAtoi(value, &bytes)) return 0;
  if (bytes <= 0 || bytes >= (int64_t{1} << 60)) return 0;
  return bytes;
}

// Calls visit(directory, v2) for the process's cgroup directory of `v1_controller` (or the unified
// v2 hierarchy) and each of its ancestors: a limit set anywhere above the process applies to it
// too. With a cgroup namespace the mount's root is the process's own cgroup. Directories end in
// '/'. Each line of /proc/self/cgroup is hierarchy-id:controllers:path; v2 is "0::/path".
void ForEachCgroupDirectory(const std::string& proc_self_cgroup, absl::string_view v1_controller,
                            const std::function<void(const std::string&, bool)>& visit) {
  for (absl::string_view line : absl::StrSplit(proc_self_cgroup, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    const bool v2 = parts[0] == "0" && parts[1].empty();
    bool v1_match = false;
    for (absl::string_view c : absl::StrSplit(parts[1], ',')) v1_match |= c == v1_controller;
    if (!v2 && !v1_match) continue;
    const std::string mount =
        v2 ? "/sys/fs/cgroup" : absl::StrCat("/sys/fs/cgroup/", v1_controller);
    std::string path = parts[2];
    while (true) {
      visit(absl::StrCat(mount, path == "/" ? "" : path, "/"), v2);
      if (path.empty() || path == "/") break;
      const size_t slash = path.rfind('/');
      path = slash == 0 ? "/" : path.substr(0, slash);
    }
  }
}

}  // namespace

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

MemoryLimit ProcessMemoryLimit(const std::string& proc_self_cgroup,
                               const std::function<std::string(const std::string&)>& read_file,
                               int64_t machine_bytes) {
  MemoryLimit out{machine_bytes, "the machine's memory (MemTotal)"};
  auto consider = [&](const std::string& file, const std::string& what) {
    const int64_t limit = ParseLimit(read_file(file));
    if (limit > 0 && (out.bytes <= 0 || limit < out.bytes)) out = {limit, what};
  };
  ForEachCgroupDirectory(proc_self_cgroup, "memory", [&](const std::string& dir, bool v2) {
    const std::string file = dir + (v2 ? "memory.max" : "memory.limit_in_bytes");
    consider(file, absl::StrCat("the cgroup limit ", file));
  });
  return out;
}

MemoryLimit ProcessMemoryLimit() {
  return ProcessMemoryLimit(ReadFile("/proc/self/cgroup"), &ReadFile, MachineMemoryBytes());
}

int CgroupCpuQuota(const std::string& proc_self_cgroup,
                   const std::function<std::string(const std::string&)>& read_file) {
  int quota_cpus = 0;
  auto consider = [&](int64_t quota, int64_t period) {
    if (quota <= 0 || period <= 0) return;
    const int cpus = static_cast<int>(std::max<int64_t>(1, (quota + period - 1) / period));
    if (quota_cpus == 0 || cpus < quota_cpus) quota_cpus = cpus;
  };
  ForEachCgroupDirectory(proc_self_cgroup, "cpu", [&](const std::string& dir, bool v2) {
    int64_t quota = 0, period = 0;
    if (v2) {
      // cpu.max: "QUOTA PERIOD" or "max PERIOD".
      std::vector<std::string> fields =
          absl::StrSplit(absl::StripAsciiWhitespace(read_file(dir + "cpu.max")), ' ');
      if (fields.size() == 2 && absl::SimpleAtoi(fields[0], &quota) &&
          absl::SimpleAtoi(fields[1], &period)) {
        consider(quota, period);
      }
    } else if (absl::SimpleAtoi(absl::StripAsciiWhitespace(read_file(dir + "cpu.cfs_quota_us")),
                                &quota) &&
               absl::SimpleAtoi(absl::StripAsciiWhitespace(read_file(dir + "cpu.cfs_period_us")),
                                &period)) {
      consider(quota, period);  // -1: no quota
    }
  });
  return quota_cpus;
}

int ProcessCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  const int quota = CgroupCpuQuota(ReadFile("/proc/self/cgroup"), &ReadFile);
  if (quota > 0) cpus = std::min(cpus, quota);
  return std::max(1, cpus);
}

absl::StatusOr<int> ThreadsPerRank(int requested, int slots, int cpus) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--threads-per-rank must be at least 1 (or 0 for CPUs / slots), got ", requested));
  }
  // More threads than CPUs only makes the rank's own threads wait for one another.
  if (requested > cpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads-per-rank must be at most the ", cpus,
                     " CPUs this process may use (its affinity mask, capped by its cgroup CPU "
                     "quota), got ",
                     requested));
  }
  if (requested > 0) return requested;
  return std::max(1, cpus / std::max(1, slots));
}

absl::StatusOr<std::vector<gptbuilder::v1::Slot>> MakeSlots(int slots, int64_t slot_memory_bytes,
                                                            int cuda_devices,
                                                            int64_t device_memory_bytes,
                                                            int64_t process_memory_bytes) {
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
    if (process_memory_bytes < 0) process_memory_bytes = ProcessMemoryLimit().bytes;
    budget = cuda_devices > 0 ? device_memory_bytes : process_memory_bytes / slots;
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
