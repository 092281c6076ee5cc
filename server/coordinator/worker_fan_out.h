#ifndef GPTB_SERVER_COORDINATOR_WORKER_FAN_OUT_H_
#define GPTB_SERVER_COORDINATOR_WORKER_FAN_OUT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "server/coordinator/worker_connection.h"

namespace gptb::coordinator {

// Worker name -> the address the coordinator reaches it at.
using WorkerAddresses = std::map<std::string, std::string>;

// A worker whose call did not succeed, and how.
struct WorkerFailure {
  std::string worker;
  absl::Status status;
};

// The statuses of one call per worker.
struct FanOutStatuses {
  std::map<std::string, absl::Status> by_worker;
  // The workers in the order their calls ended (to name the one that failed first).
  std::vector<std::string> end_order;
};

// The answers of one call per worker.
template <typename T>
struct FanOutAnswers {
  std::map<std::string, absl::StatusOr<T>> by_worker;
  // The workers in the order their calls ended (to name the one that failed first).
  std::vector<std::string> end_order;

  // The first worker by name whose call did not succeed; nullopt when every call did.
  std::optional<WorkerFailure> FirstFailure() const {
    for (const auto& [worker, answer] : by_worker) {
      if (!answer.ok()) return WorkerFailure{worker, answer.status()};
    }
    return std::nullopt;
  }
};

// Calls every worker of a set at once, each call on its own thread and with the same deadline,
// and waits for every call to end. Optionally the first failure cancels the calls still running
// once a grace has passed: ranks that meet in collectives would otherwise wait for the failed
// ones until their own timeout, and the grace lets a more fundamental failure (a dead worker's
// own call, which often ends after its peers saw the broken connection) arrive first.
// One WorkerFanOut runs one round of calls; CancelAll and Fail may come from any thread, also
// before Run.
class WorkerFanOut {
 public:
  struct Options {
    // Once a call fails (see `is_failure`) or Fail() is called, the calls still running are
    // cancelled after this grace; infinite: every call is left to finish.
    absl::Duration cancel_after_failure = absl::InfiniteDuration();
    // Which call statuses count as failures. Default: every one that is not OK and not
    // CANCELLED.
    std::function<bool(const absl::Status&)> is_failure;
  };
  // One call: `connection` is null when the worker has no address (it left).
  using Call = std::function<absl::Status(const std::string& worker, WorkerConnection* connection,
                                          absl::Time deadline, CallCanceller* canceller)>;

  WorkerFanOut(std::shared_ptr<WorkerConnector> connector, Options options);
  explicit WorkerFanOut(std::shared_ptr<WorkerConnector> connector)
      : WorkerFanOut(std::move(connector), Options()) {}

  // Cancels the calls running now and every call started later (a lost worker, a shutdown).
  void CancelAll();
  // A failure seen outside the calls (a rank's failure in a progress event, a lost worker):
  // starts the grace after which the calls still running are cancelled.
  void Fail();

  // Makes `call` once per worker of `targets` at once and returns each call's status by worker,
  // with the order they ended.
  FanOutStatuses Run(const WorkerAddresses& targets, absl::Time deadline, const Call& call);

  // Run for calls that answer a message.
  template <typename T>
  FanOutAnswers<T> Collect(
      const WorkerAddresses& targets, absl::Time deadline,
      const std::function<absl::StatusOr<T>(WorkerConnection& connection, absl::Time deadline,
                                            CallCanceller* canceller)>& call) {
    FanOutAnswers<T> out;
    for (const auto& [worker, address] : targets) {
      out.by_worker.emplace(worker, absl::UnknownError("no answer"));
    }
    // Each thread writes only its own worker's entry; the map's shape does not change.
    FanOutStatuses ran = Run(targets, deadline,
                             [&out, &call](const std::string& worker, WorkerConnection* connection,
                                           absl::Time until, CallCanceller* canceller) {
                               absl::StatusOr<T>& answer = out.by_worker.at(worker);
                               answer = connection == nullptr
                                            ? absl::StatusOr<T>(absl::UnavailableError(absl::StrCat(
                                                  "worker ", worker, " has no address")))
                                            : call(*connection, until, canceller);
                               return answer.status();
                             });
    out.end_order = std::move(ran.end_order);
    return out;
  }

 private:
  bool IsFailure(const absl::Status& status) const;

  const std::shared_ptr<WorkerConnector> connector_;
  const Options options_;

  Mutex mu_;
  CondVar changed_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Time> failed_at_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<CallCanceller>> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_WORKER_FAN_OUT_H_
