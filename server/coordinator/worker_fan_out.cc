#include "server/coordinator/worker_fan_out.h"

#include <thread>

namespace gptb::coordinator {

WorkerFanOut::WorkerFanOut(std::shared_ptr<WorkerConnector> connector, Options options)
    : connector_(std::move(connector)), options_(std::move(options)) {}

bool WorkerFanOut::IsFailure(const absl::Status& status) const {
  if (options_.is_failure) return options_.is_failure(status);
  return !status.ok() && status.code() != absl::StatusCode::kCancelled;
}

void WorkerFanOut::CancelAll() {
  MutexLock lock(&mu_);
  cancelled_ = true;
  for (const auto& call : calls_) call->Cancel();
}

void WorkerFanOut::Fail() {
  {
    MutexLock lock(&mu_);
    if (!failed_at_.has_value()) failed_at_ = absl::Now();
  }
  changed_.NotifyAll();
}

FanOutStatuses WorkerFanOut::Run(const WorkerAddresses& targets, absl::Time deadline,
                                 const Call& call) {
  FanOutStatuses out;
  for (const auto& [worker, address] : targets) {
    out.by_worker.emplace(worker, absl::UnknownError("no answer"));
  }
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    running_ = static_cast<int>(targets.size());
  }
  for (const auto& [worker, address] : targets) {
    auto canceller = std::make_shared<CallCanceller>();
    {
      MutexLock lock(&mu_);
      calls_.push_back(canceller);
      if (cancelled_) canceller->Cancel();
    }
    absl::Status* status = &out.by_worker.at(worker);
    threads.emplace_back(
        [this, &call, &out, status, worker = worker, address = address, deadline, canceller] {
          std::shared_ptr<WorkerConnection> connection =
              address.empty() ? nullptr : connector_->Connect(address);
          *status = call(worker, connection.get(), deadline, canceller.get());
          {
            MutexLock lock(&mu_);
            --running_;
            out.end_order.push_back(worker);
            if (!failed_at_.has_value() && IsFailure(*status)) failed_at_ = absl::Now();
          }
          changed_.NotifyAll();
        });
  }
  {
    MutexLock lock(&mu_);
    changed_.Wait(&mu_, [this] {
      mu_.AssertHeld();
      return running_ == 0 || failed_at_.has_value();
    });
    if (running_ > 0 && options_.cancel_after_failure != absl::InfiniteDuration()) {
      const absl::Time cancel_at = *failed_at_ + options_.cancel_after_failure;
      const bool ended = changed_.WaitFor(&mu_, cancel_at - absl::Now(), [this] {
        mu_.AssertHeld();
        return running_ == 0;
      });
      if (!ended) {
        for (const auto& c : calls_) c->Cancel();
      }
    }
  }
  // A cancelled call still ends on its own thread: ranks cannot stop mid-step.
  for (std::thread& t : threads) t.join();
  return out;
}

}  // namespace gptb::coordinator
