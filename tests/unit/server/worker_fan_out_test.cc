#include "server/coordinator/worker_fan_out.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::coordinator {
namespace {

using gptbuilder::v1::WorkerTrainStepRequest;
using gptbuilder::v1::WorkerTrainStepResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A worker whose TrainStep answers as scripted: at once with a status, or only once cancelled.
class ScriptedWorker : public WorkerConnection {
 public:
  enum class Mode { kOk, kFail, kBlockUntilCancelled, kOkAfterOthersEnd };
  explicit ScriptedWorker(Mode mode, std::atomic<int>* ended) : mode_(mode), ended_(ended) {}

  absl::Status BuildStages(const gptbuilder::v1::BuildStagesRequest&, absl::Time,
                           const std::function<void(const gptbuilder::v1::RankProgress&)>&,
                           CallCanceller*) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<gptbuilder::v1::ReleaseModelResponse> ReleaseModel(
      const gptbuilder::v1::ReleaseModelRequest&, absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> DescribeModel(
      const gptbuilder::v1::DescribeHeldModelRequest&, absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<WorkerTrainStepResponse> TrainStep(const WorkerTrainStepRequest& request,
                                                    absl::Time, CallCanceller* canceller) override {
    absl::StatusOr<WorkerTrainStepResponse> out = WorkerTrainStepResponse();
    switch (mode_) {
      case Mode::kOk:
        break;
      case Mode::kFail:
        out = absl::InternalError("rank 0: broke");
        break;
      case Mode::kBlockUntilCancelled:
        while (!canceller->cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        out = absl::CancelledError("cancelled");
        break;
      case Mode::kOkAfterOthersEnd:
        // Ends last: after every other worker's call (bounded by the test's own timeout).
        while (ended_->load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (canceller->cancelled()) out = absl::CancelledError("cancelled");
        break;
    }
    ++*ended_;
    return out;
  }

 private:
  const Mode mode_;
  std::atomic<int>* const ended_;
};

class ScriptedConnector : public WorkerConnector {
 public:
  void Add(const std::string& address, ScriptedWorker::Mode mode) {
    workers_[address] = std::make_shared<ScriptedWorker>(mode, &ended_);
  }
  std::shared_ptr<WorkerConnection> Connect(const std::string& address) override {
    return workers_.at(address);
  }

 private:
  std::atomic<int> ended_{0};
  std::map<std::string, std::shared_ptr<ScriptedWorker>> workers_;
};

FanOutAnswers<WorkerTrainStepResponse> TrainAll(WorkerFanOut& fan_out,
                                                const WorkerAddresses& targets) {
  WorkerTrainStepRequest request;
  return fan_out.Collect<WorkerTrainStepResponse>(
      targets, absl::Now() + absl::Seconds(30),
      [&request](WorkerConnection& connection, absl::Time deadline, CallCanceller* canceller) {
        return connection.TrainStep(request, deadline, canceller);
      });
}

TEST(WorkerFanOutTest, CollectsEveryAnswerByWorkerAndNamesTheFirstFailingWorkerByName) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kOk);
  connector->Add("b:1", ScriptedWorker::Mode::kFail);
  connector->Add("c:1", ScriptedWorker::Mode::kFail);
  WorkerFanOut fan_out(connector);
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}, {"c", "c:1"}});
  ASSERT_EQ(answers.by_worker.size(), 3u);
  EXPECT_TRUE(answers.by_worker.at("a").ok());
  EXPECT_EQ(answers.by_worker.at("c").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(answers.end_order.size(), 3u);
  ASSERT_TRUE(answers.FirstFailure().has_value());
  EXPECT_EQ(answers.FirstFailure()->worker, "b");
  EXPECT_THAT(answers.FirstFailure()->status.message(), HasSubstr("broke"));
}

TEST(WorkerFanOutTest, WithoutAGraceEveryCallIsLeftToFinish) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kFail);
  connector->Add("b:1", ScriptedWorker::Mode::kOk);
  connector->Add("c:1", ScriptedWorker::Mode::kOkAfterOthersEnd);
  WorkerFanOut fan_out(connector);
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}, {"c", "c:1"}});
  EXPECT_TRUE(answers.by_worker.at("c").ok()) << answers.by_worker.at("c").status();
  EXPECT_EQ(answers.end_order.size(), 3u);
}

TEST(WorkerFanOutTest, AFailureCancelsTheCallsStillRunningAfterTheGrace) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kFail);
  connector->Add("b:1", ScriptedWorker::Mode::kBlockUntilCancelled);
  WorkerFanOut fan_out(connector,
                       {.cancel_after_failure = absl::Milliseconds(20), .is_failure = {}});
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}});
  EXPECT_EQ(answers.by_worker.at("b").status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(answers.end_order, ElementsAre("a", "b"));
}

TEST(WorkerFanOutTest, OnlyWhatIsFailureCountsTowardsCancelling) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kFail);
  connector->Add("b:1", ScriptedWorker::Mode::kOk);
  connector->Add("c:1", ScriptedWorker::Mode::kOkAfterOthersEnd);
  // INTERNAL is not a failure here: the last call is left to finish.
  WorkerFanOut fan_out(connector, {.cancel_after_failure = absl::ZeroDuration(),
                                   .is_failure = [](const absl::Status& status) {
                                     return status.code() == absl::StatusCode::kDataLoss;
                                   }});
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}, {"c", "c:1"}});
  EXPECT_TRUE(answers.by_worker.at("c").ok()) << answers.by_worker.at("c").status();
}

TEST(WorkerFanOutTest, FailFromOutsideCancelsTheRunningCalls) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kBlockUntilCancelled);
  connector->Add("b:1", ScriptedWorker::Mode::kBlockUntilCancelled);
  WorkerFanOut fan_out(connector,
                       {.cancel_after_failure = absl::Milliseconds(5), .is_failure = {}});
  std::thread failer([&fan_out] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fan_out.Fail();
  });
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}});
  failer.join();
  EXPECT_EQ(answers.by_worker.at("a").status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(answers.by_worker.at("b").status().code(), absl::StatusCode::kCancelled);
}

TEST(WorkerFanOutTest, CancelAllBeforeRunStartsEveryCallCancelled) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kBlockUntilCancelled);
  connector->Add("b:1", ScriptedWorker::Mode::kBlockUntilCancelled);
  WorkerFanOut fan_out(connector);
  fan_out.CancelAll();
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"b", "b:1"}});
  EXPECT_EQ(answers.by_worker.at("a").status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(answers.by_worker.at("b").status().code(), absl::StatusCode::kCancelled);
}

TEST(WorkerFanOutTest, AWorkerWithoutAnAddressIsUnavailableWithoutACall) {
  auto connector = std::make_shared<ScriptedConnector>();
  connector->Add("a:1", ScriptedWorker::Mode::kOk);
  WorkerFanOut fan_out(connector);
  auto answers = TrainAll(fan_out, {{"a", "a:1"}, {"gone", ""}});
  EXPECT_TRUE(answers.by_worker.at("a").ok());
  EXPECT_EQ(answers.by_worker.at("gone").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(answers.by_worker.at("gone").status().message(), HasSubstr("gone"));
}

}  // namespace
}  // namespace gptb::coordinator
