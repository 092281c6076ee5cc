#ifndef GPTB_CLIENTS_CLI_LOCAL_CLUSTER_H_
#define GPTB_CLIENTS_CLI_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gptb::cli {

// A child process whose output goes to a log file. It gets SIGTERM if its parent dies, so a
// killed `gptb up` (or test) never leaves daemons behind.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  ~ChildProcess();  // Stop(5s)

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  bool Alive();
  void Signal(int signal);
  // SIGTERM, then SIGKILL after `grace`; returns the exit status (as waitpid reports it), -1 when
  // already reaped.
  int Stop(absl::Duration grace);
  // The last `lines` lines of the log.
  std::string LogTail(int lines) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string log_path_;
};

struct LocalClusterOptions {
  std::string gptbd;  // the daemon binary
  std::string dir;    // logs and ready files
  int workers = 2;
  int slots = 2;
  std::string listen = "127.0.0.1:0";          // the coordinator's gRPC address
  std::string metrics_listen = "127.0.0.1:0";  // the coordinator's /metrics
  std::vector<std::string> coordinator_flags;  // extra flags
  std::vector<std::string> worker_flags;
  absl::Duration start_timeout = absl::Seconds(60);
};

// A coordinator and `workers` CPU workers as child processes on loopback, each worker with
// `slots` slots. Start() returns once every worker is registered.
class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();

  // HOST:PORT of the coordinator (its port stays the same across RestartCoordinator).
  const std::string& coordinator_address() const { return coordinator_address_; }
  const std::string& coordinator_metrics() const { return coordinator_metrics_; }
  const std::vector<std::string>& worker_metrics() const { return worker_metrics_; }
  ChildProcess& coordinator() { return *coordinator_; }
  ChildProcess& worker(int i) { return *workers_.at(i); }
  int num_workers() const { return static_cast<int>(workers_.size()); }

  // Stops the coordinator (SIGTERM, or SIGKILL with `kill`) and starts it again on the same
  // port; returns once it serves.
  absl::Status RestartCoordinator(bool kill);
  // Waits until `n` workers are registered and READY.
  absl::Status WaitForWorkers(int n, absl::Duration timeout);
  // Any daemon that exited: "<name> exited (log tail)"; "" when all run.
  std::string DeadDaemon();
  void Stop();

 private:
  LocalCluster() = default;
  absl::Status StartCoordinator(const std::string& listen, const std::string& metrics_listen);

  LocalClusterOptions options_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::string coordinator_address_;
  std::string coordinator_metrics_;
  std::vector<std::string> worker_metrics_;
  int restarts_ = 0;
};

// Reads a daemon's --ready-file, waiting up to `timeout` for it (or for `process` to die).
absl::StatusOr<std::string> WaitForReadyFile(const std::string& path, ChildProcess* process,
                                             absl::Duration timeout);

// The directory of the running executable (to find gptbd next to gptb).
std::string ExecutableDir();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_LOCAL_CLUSTER_H_
