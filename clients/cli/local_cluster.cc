#include "clients/cli/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/cli/rpc_client.h"
#include "nlohmann/json.hpp"

namespace gptb::cli {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv, const std::string& log_path) {
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", log_path, ": ", strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(log);
    return absl::UnavailableError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Child: die with the parent, unblock the signals the parent may have blocked, log.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  ::close(log);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->pid_ = pid;
  child->log_path_ = log_path;
  return child;
}

ChildProcess::~ChildProcess() { Stop(absl::Seconds(5)); }

bool ChildProcess::Alive() {
  if (reaped_) return false;
  const pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

void ChildProcess::Signal(int signal) {
  if (Alive()) kill(pid_, signal);
}

int ChildProcess::Stop(absl::Duration grace) {
  if (pid_ <= 0) return -1;
  if (!Alive()) return status_;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    if (!Alive()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
  return status_;
}

std::string ChildProcess::LogTail(int lines) const {
  std::ifstream in(log_path_);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  return absl::StrJoin(tail, "\n");
}

std::string ExecutableDir() {
  char path[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string exe(path, n);
  return exe.substr(0, exe.rfind('/'));
}

absl::StatusOr<std::string> WaitForReadyFile(const std::string& path, ChildProcess* process,
                                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      return text.str();
    }
    if (process != nullptr && !process->Alive()) {
      return absl::UnavailableError(absl::StrCat("the daemon exited before serving; its log (",
                                                 process->log_path(), ") ends with:\n",
                                                 process->LogTail(15)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no ready file ", path, " after ", absl::FormatDuration(timeout)));
}

absl::Status LocalCluster::StartCoordinator(const std::string& listen,
                                            const std::string& metrics_listen) {
  const std::string ready = absl::StrCat(options_.dir, "/coordinator-", restarts_, ".json");
  std::vector<std::string> argv = {options_.gptbd,     "coordinator",  "--listen",     listen,
                                   "--metrics-listen", metrics_listen, "--ready-file", ready};
  argv.insert(argv.end(), options_.coordinator_flags.begin(), options_.coordinator_flags.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(argv, absl::StrCat(options_.dir, "/coordinator.log"));
  if (!child.ok()) return child.status();
  coordinator_ = *std::move(child);
  absl::StatusOr<std::string> text =
      WaitForReadyFile(ready, coordinator_.get(), options_.start_timeout);
  if (!text.ok())
    return absl::Status(text.status().code(),
                        absl::StrCat("coordinator: ", text.status().message()));
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded()) return absl::InternalError("the coordinator's ready file is not JSON");
  coordinator_address_ = doc.value("grpc", "");
  coordinator_metrics_ = doc.value("metrics", "");
  ++restarts_;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  if (access(options.gptbd.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run the daemon binary ", options.gptbd,
                     " (gptb up looks for gptbd next to gptb; build it with scripts/build)"));
  }
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  cluster->options_ = options;
  absl::Status status = cluster->StartCoordinator(options.listen, options.metrics_listen);
  if (!status.ok()) return status;
  std::vector<std::string> ready_files;
  for (int i = 0; i < options.workers; ++i) {
    const std::string ready = absl::StrCat(options.dir, "/worker-", i, ".json");
    std::vector<std::string> argv = {options.gptbd,      "worker",
                                     "--coordinator",    cluster->coordinator_address_,
                                     "--listen",         "127.0.0.1:0",
                                     "--metrics-listen", "127.0.0.1:0",
                                     "--slots",          absl::StrCat(options.slots),
                                     "--name",           absl::StrCat("worker-", i),
                                     "--ready-file",     ready};
    argv.insert(argv.end(), options.worker_flags.begin(), options.worker_flags.end());
    absl::StatusOr<std::unique_ptr<ChildProcess>> child =
        ChildProcess::Spawn(argv, absl::StrCat(options.dir, "/worker-", i, ".log"));
    if (!child.ok()) return child.status();
    cluster->workers_.push_back(*std::move(child));
    ready_files.push_back(ready);
  }
  for (int i = 0; i < options.workers; ++i) {
    absl::StatusOr<std::string> text =
        WaitForReadyFile(ready_files[i], cluster->workers_[i].get(), options.start_timeout);
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrCat("worker-", i, ": ", text.status().message()));
    }
    nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
    cluster->worker_metrics_.push_back(doc.is_discarded() ? "" : doc.value("metrics", ""));
  }
  status = cluster->WaitForWorkers(options.workers, options.start_timeout);
  if (!status.ok()) return status;
  return cluster;
}

LocalCluster::~LocalCluster() { Stop(); }

absl::Status LocalCluster::WaitForWorkers(int n, absl::Duration timeout) {
  absl::StatusOr<CoordinatorClient> client =
      CoordinatorClient::Connect(coordinator_address_, rpc::BearerToken());
  if (!client.ok()) return client.status();
  const absl::Time deadline = absl::Now() + timeout;
  int ready = 0;
  while (absl::Now() < deadline) {
    gptbuilder::v1::ListWorkersResponse response;
    if (client->stub()->ListWorkers(client->Context(absl::Seconds(2)).get(), {}, &response).ok()) {
      ready = 0;
      for (const auto& w : response.workers()) {
        ready += w.state() == gptbuilder::v1::WorkerInfo::READY ? 1 : 0;
      }
      if (ready >= n) return absl::OkStatus();
    }
    if (std::string dead = DeadDaemon(); !dead.empty()) return absl::UnavailableError(dead);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(ready, " of ", n, " workers registered within ", absl::FormatDuration(timeout)));
}

std::string LocalCluster::DeadDaemon() {
  if (coordinator_ != nullptr && !coordinator_->Alive()) {
    return absl::StrCat("the coordinator exited; its log ends with:\n", coordinator_->LogTail(15));
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i] != nullptr && !workers_[i]->Alive()) {
      return absl::StrCat("worker-", i, " exited; its log ends with:\n", workers_[i]->LogTail(15));
    }
  }
  return "";
}

absl::Status LocalCluster::RestartCoordinator(bool kill) {
  if (kill) {
    coordinator_->Signal(SIGKILL);
    coordinator_->Stop(absl::Seconds(5));
  } else {
    coordinator_->Stop(absl::Seconds(10));
  }
  // Same gRPC port, so the workers find it again; a fresh metrics port.
  return StartCoordinator(coordinator_address_, "127.0.0.1:0");
}

void LocalCluster::Stop() {
  // Workers first: they would only retry a vanished coordinator.
  for (auto& worker : workers_) {
    if (worker != nullptr) worker->Signal(SIGTERM);
  }
  for (auto& worker : workers_) {
    if (worker != nullptr) worker->Stop(absl::Seconds(10));
  }
  if (coordinator_ != nullptr) coordinator_->Stop(absl::Seconds(10));
}

}  // namespace gptb::cli
