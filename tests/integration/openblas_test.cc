// The daemons with OpenBLAS loaded into them: what most machines have, whatever LibTorch carries.
// OpenBLAS takes 60 KiB of static TLS; with LibTorch's share that left civetweb (the HTTP server
// under prometheus-cpp's Exposer, built with a fixed 100 KiB thread stack) no room for a thread,
// so `--metrics-listen` failed with "null context when constructing CivetServer" and neither
// daemon started. Here both start with it loaded, serve /metrics, build and train.
#include <filesystem>

#include "gmock/gmock.h"
#include "tests/integration/cluster_fixture.h"

namespace gptb::testing {
namespace {

// Debian's libopenblas0-pthread (scripts/bootstrap installs it).
constexpr char kOpenBlas[] = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0";

bool Maps(pid_t pid, const std::string& library) {
  return ReadFile(absl::StrCat("/proc/", pid, "/maps")).find(library) != std::string::npos;
}

class OpenBlasClusterTest : public ClusterTest {};

TEST_F(OpenBlasClusterTest, DaemonsStartServeMetricsAndTrainWithOpenBlasLoaded) {
  ASSERT_TRUE(std::filesystem::exists(kOpenBlas))
      << kOpenBlas << " is missing: install libopenblas0-pthread (scripts/bootstrap does)";
  // The daemons inherit the environment; the CLI and curl started later do not need it.
  ASSERT_EQ(setenv("LD_PRELOAD", kOpenBlas, 1), 0);
  StartCluster(/*workers=*/1, /*slots=*/2);
  unsetenv("LD_PRELOAD");
  ASSERT_FALSE(HasFatalFailure()) << "the daemons did not start with OpenBLAS loaded";

  for (pid_t pid : {cluster_->coordinator().pid(), cluster_->worker(0).pid()}) {
    EXPECT_TRUE(Maps(pid, "libopenblas")) << "OpenBLAS is not loaded in process " << pid;
  }
  const std::string coordinator = Scrape(cluster_->coordinator_metrics());
  EXPECT_THAT(coordinator, ::testing::HasSubstr("gptb_build_info{"));
  EXPECT_THAT(coordinator, ::testing::HasSubstr("role=\"coordinator\""));
  const std::string worker = Scrape(cluster_->worker_metrics().at(0));
  EXPECT_THAT(worker, ::testing::HasSubstr("role=\"worker\""));

  // A model built and trained in a daemon holding both MKL (in LibTorch) and OpenBLAS.
  CliResult built = Gptb({"build", Example("tiny-gpt"), "--name", "blas", "--wait", "--set",
                          "tensor_model_parallel_size=2"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  CliResult trained = Gptb({"train", "blas", "--steps", "2", "--micro-batch-size", "2", "--lr",
                            "1e-3", "--format", "json"});
  EXPECT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  EXPECT_THAT(trained.out, ::testing::HasSubstr("\"loss\""));
  EXPECT_EQ(cluster_->DeadDaemon(), "");
}

}  // namespace
}  // namespace gptb::testing
