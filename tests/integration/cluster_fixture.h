#ifndef GPTB_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
#define GPTB_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "clients/cli/local_cluster.h"
#include "clients/cli/rpc_client.h"
#include "gtest/gtest.h"

namespace gptb::testing {

// The real binaries of this build.
inline std::string BinDir() { return std::string(GPTB_BINARY_DIR) + "/bin"; }
inline std::string Example(const std::string& name) {
  return std::string(GPTB_SOURCE_DIR) + "/examples/" + name + ".yaml";
}

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A per-test temporary directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/gptb-test-XXXXXX";
    path_ = mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs build/bin/gptb with `args`; captures its output.
inline CliResult RunGptb(const std::vector<std::string>& args, const std::string& dir) {
  std::string command = Quote(BinDir() + "/gptb");
  for (const std::string& a : args) absl::StrAppend(&command, " ", Quote(a));
  const std::string out = dir + "/cli.out", err = dir + "/cli.err";
  absl::StrAppend(&command, " >", out, " 2>", err, " </dev/null");
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

// VmRSS of a process in bytes.
inline int64_t ResidentBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      std::istringstream(line.substr(6)) >> kib;
      return kib * 1024;
    }
  }
  return -1;
}

// GET http://HOST:PORT/metrics with curl.
inline std::string Scrape(const std::string& url) {
  std::string text;
  FILE* pipe = popen(absl::StrCat("curl -sf --max-time 5 ", Quote(url)).c_str(), "r");
  if (pipe == nullptr) return text;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) text.append(buffer, n);
  pclose(pipe);
  return text;
}

// The value of one sample ("name{labels}" exactly as exposed, or a bare name); -1 when absent.
inline double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.rfind(series + " ", 0) != 0) continue;
    double value = -1;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
  }
  return -1;
}

// A coordinator and workers started from the real gptbd, with short liveness timeouts so
// failure tests take seconds.
class ClusterTest : public ::testing::Test {
 protected:
  void StartCluster(int workers = 2, int slots = 2, std::vector<std::string> worker_flags = {},
                    const std::string& rank_timeout = "8s",
                    const std::vector<std::string>& coordinator_flags = {}) {
    cli::LocalClusterOptions options;
    options.gptbd = BinDir() + "/gptbd";
    options.dir = dir_.path();
    options.workers = workers;
    options.slots = slots;
    options.coordinator_flags = {
        "--heartbeat-interval", "200ms",      "--heartbeat-timeout", "2s",
        "--rank-timeout",       rank_timeout, "--recovery-grace",    "30s"};
    options.coordinator_flags.insert(options.coordinator_flags.end(), coordinator_flags.begin(),
                                     coordinator_flags.end());
    options.worker_flags = std::move(worker_flags);
    auto cluster = cli::LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    auto client =
        cli::CoordinatorClient::Connect(cluster_->coordinator_address(), rpc::BearerToken());
    ASSERT_TRUE(client.ok());
    client_ = std::make_unique<cli::CoordinatorClient>(*std::move(client));
  }

  CliResult Gptb(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", cluster_->coordinator_address()});
    return RunGptb(args, dir_.path());
  }

  std::string Logs() {
    std::string out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      if (entry.path().extension() == ".log") {
        absl::StrAppend(&out, "---- ", entry.path().filename().string(), "\n",
                        ReadFile(entry.path().string()));
      }
    }
    return out;
  }

  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) std::cerr << Logs();
    cluster_.reset();
  }

  TempDir dir_;
  std::unique_ptr<cli::LocalCluster> cluster_;
  std::unique_ptr<cli::CoordinatorClient> client_;
};

}  // namespace gptb::testing

#endif  // GPTB_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
