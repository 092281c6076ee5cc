// The daemons load Debian's gRPC, protobuf, Abseil and civetweb next to the torch wheel's
// LibTorch in one process. This test runs what a user runs — a build of the default model over
// two workers, a train step, a /metrics scrape — and then reads the daemons' memory maps: every
// shared library is mapped from one file only (no second protobuf, Abseil, libstdc++ or OpenMP
// runtime came in with the wheel), LibTorch comes from the wheel, Gloo only from libtorch_cpu.

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"

namespace gptb::testing {
namespace {

using ::testing::HasSubstr;

// Shared objects mapped into a process: file name -> the distinct real paths it is mapped from.
std::map<std::string, std::set<std::string>> MappedLibraries(pid_t pid) {
  std::map<std::string, std::set<std::string>> libraries;
  const std::string maps = ReadFile(absl::StrCat("/proc/", pid, "/maps"));
  for (absl::string_view line : absl::StrSplit(maps, '\n', absl::SkipEmpty())) {
    const size_t slash = line.find('/');
    if (slash == absl::string_view::npos) continue;
    std::string path(line.substr(slash));
    if (absl::EndsWith(path, " (deleted)")) path.resize(path.size() - 10);
    const std::string name = std::filesystem::path(path).filename().string();
    if (!absl::StrContains(name, ".so")) continue;
    std::error_code error;
    const std::filesystem::path real = std::filesystem::canonical(path, error);
    libraries[name].insert(error ? path : real.string());
  }
  return libraries;
}

// The file names mapped from more than one real path, and the names sharing a library's stem
// (libgomp.so.1 next to libgomp.so.1.0.0 from another folder counts as two copies).
std::vector<std::string> Duplicates(const std::map<std::string, std::set<std::string>>& libs) {
  std::vector<std::string> out;
  std::map<std::string, std::set<std::string>> by_stem;
  for (const auto& [name, paths] : libs) {
    if (paths.size() > 1) out.push_back(absl::StrCat(name, ": ", absl::StrJoin(paths, ", ")));
    const std::string stem = name.substr(0, name.find(".so"));
    by_stem[stem].insert(paths.begin(), paths.end());
  }
  for (const auto& [stem, paths] : by_stem) {
    if (paths.size() > 1) out.push_back(absl::StrCat(stem, ": ", absl::StrJoin(paths, ", ")));
  }
  return out;
}

bool Mapped(const std::map<std::string, std::set<std::string>>& libs, const std::string& stem) {
  for (const auto& [name, paths] : libs) {
    if (name.substr(0, name.find(".so")) == stem) return true;
  }
  return false;
}

std::string MappedFrom(const std::map<std::string, std::set<std::string>>& libs,
                       const std::string& stem) {
  for (const auto& [name, paths] : libs) {
    if (name.substr(0, name.find(".so")) == stem) return *paths.begin();
  }
  return "";
}

class RuntimeLibrariesTest : public ClusterTest {};

TEST_F(RuntimeLibrariesTest, DebianLibrariesAndTheTorchWheelShareOneProcess) {
  StartCluster(/*workers=*/2, /*slots=*/2);
  CliResult built = Gptb({"build", Example("default"), "--name", "default", "--wait"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  CliResult trained = Gptb({"train", "default", "--steps", "1", "--lr", "1e-3", "--seq-length",
                            "32", "--micro-batches", "2", "--format", "json"});
  ASSERT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  EXPECT_THAT(trained.out, HasSubstr("\"loss\""));
  EXPECT_THAT(Scrape(cluster_->worker_metrics()[0]), HasSubstr("gptb_worker_held_parameters"));

  const std::string wheel =
      std::filesystem::canonical(std::string(GPTB_TORCH_LIBRARY_DIR)).string();
  for (auto [role, pid] :
       {std::pair<std::string, pid_t>{"coordinator", cluster_->coordinator().pid()},
        {"worker", cluster_->worker(0).pid()}}) {
    SCOPED_TRACE(role);
    const auto libs = MappedLibraries(pid);
    EXPECT_THAT(Duplicates(libs), ::testing::IsEmpty());
    // LibTorch from the wheel the build was configured with.
    EXPECT_TRUE(absl::StartsWith(MappedFrom(libs, "libtorch_cpu"), wheel))
        << MappedFrom(libs, "libtorch_cpu");
    EXPECT_TRUE(absl::StartsWith(MappedFrom(libs, "libc10"), wheel)) << MappedFrom(libs, "libc10");
    // Debian's RPC stack, not a copy from the wheel's folders.
    for (const char* stem : {"libprotobuf", "libgrpc++", "libabsl_base", "libstdc++"}) {
      ASSERT_TRUE(Mapped(libs, stem)) << stem;
      EXPECT_FALSE(absl::StrContains(MappedFrom(libs, stem), "site-packages"))
          << stem << " from " << MappedFrom(libs, stem);
    }
    // One OpenMP runtime (the wheel's libgomp); Gloo only inside libtorch_cpu.
    int openmp_runtimes = 0;
    for (const char* stem : {"libgomp", "libiomp5", "libomp"})
      openmp_runtimes += Mapped(libs, stem);
    EXPECT_EQ(openmp_runtimes, 1);
    EXPECT_FALSE(Mapped(libs, "libgloo"));
  }
}

}  // namespace
}  // namespace gptb::testing
