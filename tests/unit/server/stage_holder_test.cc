#include "server/worker/stage_holder.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "core/config/finalize.h"
#include "core/plan/plan_description.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/model_preparation.h"
#include "server/worker/rank_jobs.h"
#include "tests/unit/server/test_models.h"

namespace gptb::worker {
namespace {

using ::testing::HasSubstr;

// A rank "built" from the plan: it describes the plan's stages with made-up checksums.
class FakeRankModel : public model::RankModel {
 public:
  FakeRankModel(std::shared_ptr<plan::ModelPlan> plan, int rank, std::atomic<int>* alive)
      : plan_(std::move(plan)), rank_(rank), alive_(alive) {
    ++*alive_;
  }
  ~FakeRankModel() override { --*alive_; }
  int rank() const override { return rank_; }
  const plan::ModelPlan& plan() const override { return *plan_; }
  absl::StatusOr<std::vector<gptbuilder::v1::StageDescription>> Describe() const override {
    std::vector<gptbuilder::v1::StageDescription> out;
    for (int index : plan_->Rank(rank_).stages) {
      gptbuilder::v1::StageDescription held = plan::DescribeStage(plan_->stages()[index]);
      for (auto& p : *held.mutable_params()) p.set_checksum(42);
      out.push_back(std::move(held));
    }
    return out;
  }
  int64_t parameter_bytes() const override { return plan_->Rank(rank_).memory.param_bytes; }
  int64_t gradient_bytes() const override { return 0; }
  std::vector<std::pair<model::BuildPhase, double>> phase_seconds() const override {
    return {{model::BuildPhase::kConstruct, 0.25}};
  }
  // Nothing to train: no stages, context or groups.
  const std::vector<std::shared_ptr<model::GptStage>>& stages() const override { return stages_; }
  model::ParallelContext* parallel_context() const override { return nullptr; }
  const parallel::ProcessGroupCollection* groups() const override { return nullptr; }
  distributed::DistributedDataParallel* ddp(int) const override { return nullptr; }
  distributed::FullyShardedDataParallel* fsdp(int) const override { return nullptr; }
  const distributed::Float16Module* float16(int) const override { return nullptr; }

 private:
  std::shared_ptr<plan::ModelPlan> plan_;
  int rank_;
  std::atomic<int>* alive_;
  std::vector<std::shared_ptr<model::GptStage>> stages_;
};

class StageHolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto prepared = coordinator::PrepareModel(testing::TinyGpt(2, 1), {}, {}, 2);
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    plan_ = std::make_shared<plan::ModelPlan>(*prepared->plan);
    request_.set_model("m");
    request_.set_build_id("b1");
    *request_.mutable_config() = prepared->finalized.model;
    request_.set_world_size(2);
    for (int r = 0; r < 2; ++r) {
      auto* a = request_.add_ranks();
      a->set_rank(r);
      a->set_slot(r);
    }
    for (int i = 0; i < 2; ++i) {
      gptbuilder::v1::Slot slot;
      slot.set_index(i);
      slot.set_device("cpu");
      slot.set_memory_bytes(1 << 30);
      slots_.push_back(slot);
    }
  }

  // Builds ranks that report progress, wait for `release_` (or cancellation) and then succeed,
  // except `fail_rank_`, which fails.
  RankBuilder Builder() {
    return [this](const model::RankBuildOptions& options)
               -> absl::StatusOr<std::unique_ptr<model::RankModel>> {
      model::BuildProgress p;
      p.rank = options.rank;
      p.phase = model::BuildPhase::kConstruct;
      p.layers_total = 4;
      for (int layer = 1; layer <= 4; ++layer) {
        p.layers_built = layer;
        options.on_progress(p);
      }
      if (options.rank == fail_rank_) return absl::InternalError("gloo: connection refused");
      while (!release_ && !options.cancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (options.cancelled()) return absl::CancelledError("cancelled between layers");
      return std::unique_ptr<model::RankModel>(
          std::make_unique<FakeRankModel>(plan_, options.rank, &alive_));
    };
  }

  // Drains a session; returns its final status and the events seen.
  absl::Status Drain(BuildSession* session, std::vector<gptbuilder::v1::RankProgress>* events) {
    gptbuilder::v1::RankProgress event;
    for (int i = 0; i < 5000; ++i) {
      switch (session->Poll(&event, std::chrono::milliseconds(10))) {
        case BuildSession::Next::kEvent:
          events->push_back(event);
          break;
        case BuildSession::Next::kIdle:
          break;
        case BuildSession::Next::kFinished:
          return session->status();
      }
    }
    return absl::DeadlineExceededError("the session did not finish");
  }

  std::shared_ptr<plan::ModelPlan> plan_;
  gptbuilder::v1::BuildStagesRequest request_;
  std::vector<gptbuilder::v1::Slot> slots_;
  std::atomic<bool> release_{true};
  std::atomic<int> alive_{0};
  int fail_rank_ = -1;
};

TEST_F(StageHolderTest, BuildsHoldsDescribesAndReleases) {
  StageHolder holder(slots_, "127.0.0.1", Builder());
  auto session = holder.StartBuild(request_);
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<gptbuilder::v1::RankProgress> events;
  ASSERT_TRUE(Drain(session->get(), &events).ok());
  int finals = 0;
  for (const auto& e : events) {
    if (e.has_result()) {
      ++finals;
      EXPECT_EQ(e.result().code(), 0);
      EXPECT_EQ(e.phase(), gptbuilder::v1::BUILD_PHASE_DONE);
      EXPECT_DOUBLE_EQ(e.phase_seconds_by_phase().at("construct"), 0.25);
      EXPECT_GT(e.parameter_bytes(), 0);
    }
  }
  EXPECT_EQ(finals, 2);
  EXPECT_EQ(alive_, 2);
  EXPECT_THAT(holder.HeldModelNames(), ::testing::ElementsAre("m"));
  WorkerSnapshot snapshot = holder.Snapshot();
  EXPECT_EQ(snapshot.slots_holding, 2);
  EXPECT_EQ(snapshot.parameters,
            plan_->Rank(0).memory.num_params + plan_->Rank(1).memory.num_params);

  auto described = holder.Describe("m");
  ASSERT_TRUE(described.ok()) << described.status();
  ASSERT_EQ(described->ranks_size(), 2);
  EXPECT_EQ(described->ranks(1).stages(0).tp_rank(), 1);
  EXPECT_EQ(described->ranks(0).stages(0).params(0).checksum(), 42u);
  auto held = holder.HeldModels();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].build_id(), "b1");
  EXPECT_EQ(held[0].ranks_size(), 2);

  // A second build of the same model is refused while it is held.
  EXPECT_EQ(holder.StartBuild(request_).status().code(), absl::StatusCode::kFailedPrecondition);
  // Another build id does not release it; the right one does.
  EXPECT_EQ(holder.Release("m", "other").ranks_released(), 0);
  auto released = holder.Release("m", "b1");
  EXPECT_EQ(released.ranks_released(), 2);
  EXPECT_EQ(alive_, 0);
  EXPECT_EQ(holder.Snapshot().slots_free, 2);
  EXPECT_EQ(holder.Describe("m").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StageHolderTest, AFailedRankCancelsItsSiblingAndNothingIsHeld) {
  release_ = false;
  fail_rank_ = 1;
  StageHolder holder(slots_, "127.0.0.1", Builder());
  auto session = holder.StartBuild(request_);
  ASSERT_TRUE(session.ok());
  std::vector<gptbuilder::v1::RankProgress> events;
  absl::Status status = Drain(session->get(), &events);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("rank 1"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("connection refused"));
  EXPECT_TRUE(holder.HeldModelNames().empty());
  EXPECT_EQ(holder.Snapshot().slots_free, 2);
  EXPECT_EQ(alive_, 0);
}

TEST_F(StageHolderTest, CancellingTheSessionReleasesWhatWasBuilt) {
  release_ = false;
  StageHolder holder(slots_, "127.0.0.1", Builder());
  auto session = holder.StartBuild(request_);
  ASSERT_TRUE(session.ok());
  (*session)->Cancel();
  std::vector<gptbuilder::v1::RankProgress> events;
  EXPECT_EQ(Drain(session->get(), &events).code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(holder.HeldModelNames().empty());
  EXPECT_EQ(holder.Snapshot().slots_free, 2);
}

TEST_F(StageHolderTest, ReleaseDuringABuildCancelsIt) {
  release_ = false;
  StageHolder holder(slots_, "127.0.0.1", Builder());
  auto session = holder.StartBuild(request_);
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(holder.Describe("m").status().code(), absl::StatusCode::kFailedPrecondition);
  // The slots stay busy until the ranks return.
  EXPECT_EQ(holder.StartBuild(request_).status().code(), absl::StatusCode::kFailedPrecondition);
  holder.Release("m", "");
  std::vector<gptbuilder::v1::RankProgress> events;
  EXPECT_FALSE(Drain(session->get(), &events).ok());
  EXPECT_TRUE(holder.HeldModelNames().empty());
  EXPECT_EQ(alive_, 0);
}

TEST_F(StageHolderTest, UnknownSlotIsFailedPrecondition) {
  StageHolder holder(slots_, "127.0.0.1", Builder());
  request_.mutable_ranks(1)->set_slot(5);
  auto session = holder.StartBuild(request_);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(holder.Snapshot().slots_free, 2);
}

TEST_F(StageHolderTest, DestructorReleasesEverything) {
  {
    StageHolder holder(slots_, "127.0.0.1", Builder());
    auto session = holder.StartBuild(request_);
    ASSERT_TRUE(session.ok());
    std::vector<gptbuilder::v1::RankProgress> events;
    ASSERT_TRUE(Drain(session->get(), &events).ok());
    EXPECT_EQ(alive_, 2);
  }
  EXPECT_EQ(alive_, 0);
}

// ---- RankJobs: work on every held rank at once ----------------------------------------------

class RankJobsTest : public StageHolderTest {
 protected:
  void Hold(StageHolder* holder) {
    auto session = holder->StartBuild(request_);
    ASSERT_TRUE(session.ok()) << session.status();
    std::vector<gptbuilder::v1::RankProgress> events;
    ASSERT_TRUE(Drain(session->get(), &events).ok());
  }
  static bool Never() { return false; }
};

TEST_F(RankJobsTest, RunsOnEveryHeldRankConcurrentlyAndPrefixesTheFailingRank) {
  StageHolder holder(slots_, "127.0.0.1", Builder());
  RankJobs jobs(&holder);
  Hold(&holder);
  // Both ranks must be inside the job at the same time (as ranks meeting in a collective are).
  auto arrived = std::make_shared<std::atomic<int>>(0);
  absl::Status status = jobs.RunOnEveryRank(
      "m", "b1", "test job",
      [arrived](int, RankJobs::RankSlot& slot) {
        EXPECT_NE(slot.model, nullptr);
        arrived->fetch_add(1);
        for (int i = 0; i < 2000 && arrived->load() < 2; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return arrived->load() == 2 ? absl::OkStatus() : absl::DeadlineExceededError("alone");
      },
      Never);
  EXPECT_TRUE(status.ok()) << status;
  status = jobs.RunOnEveryRank(
      "m", "", "test job",
      [](int rank, RankJobs::RankSlot&) {
        return rank == 1 ? absl::UnavailableError("peer lost") : absl::OkStatus();
      },
      Never);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "rank 1: peer lost");
  EXPECT_EQ(jobs.RunOnEveryRank("nope", "", "x", nullptr, Never).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs.RunOnEveryRank("m", "b2", "x", nullptr, Never).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RankJobsTest, OneJobAtATimeAndACancelledCallLeavesTheRanksToFinish) {
  StageHolder holder(slots_, "127.0.0.1", Builder());
  RankJobs jobs(&holder);
  Hold(&holder);
  auto go = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<int>>(0);
  auto finished = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> cancel{false};
  std::thread first([&] {
    absl::Status status = jobs.RunOnEveryRank(
        "m", "b1", "slow job",
        [go, started, finished](int, RankJobs::RankSlot&) {
          started->fetch_add(1);
          while (!go->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          finished->fetch_add(1);
          return absl::OkStatus();
        },
        [&] { return cancel.load(); });
    EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  });
  for (int i = 0; i < 5000 && started->load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(started->load(), 2);
  // Busy: a second job is refused.
  const absl::Status busy = jobs.RunOnEveryRank(
      "m", "", "x", [](int, RankJobs::RankSlot&) { return absl::OkStatus(); }, Never);
  EXPECT_EQ(busy.code(), absl::StatusCode::kAborted) << busy;
  cancel = true;
  first.join();  // returned while its ranks still run
  EXPECT_EQ(finished->load(), 0);
  EXPECT_EQ(jobs.RunOnEveryRank(
                    "m", "", "x", [](int, RankJobs::RankSlot&) { return absl::OkStatus(); }, Never)
                .code(),
            absl::StatusCode::kAborted);
  *go = true;
  absl::Status after;
  for (int i = 0; i < 2000; ++i) {
    after = jobs.RunOnEveryRank(
        "m", "", "x", [](int, RankJobs::RankSlot&) { return absl::OkStatus(); }, Never);
    if (after.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(after.ok()) << after;
  EXPECT_EQ(finished->load(), 2);
}

TEST_F(RankJobsTest, PerRankStateLivesAsLongAsTheHeldBuild) {
  StageHolder holder(slots_, "127.0.0.1", Builder());
  RankJobs jobs(&holder);
  Hold(&holder);
  auto make = [](int, RankJobs::RankSlot& slot) {
    if (slot.trainer == nullptr) {
      slot.trainer = std::make_unique<train::RankTrainer>(slot.model.get());
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError("kept");
  };
  EXPECT_TRUE(jobs.RunOnEveryRank("m", "", "x", make, Never).ok());
  EXPECT_EQ(jobs.RunOnEveryRank("m", "", "x", make, Never).code(),
            absl::StatusCode::kAlreadyExists);
  // Releasing another build of the name keeps it; releasing the held build drops it.
  holder.Release("m", "other");
  EXPECT_EQ(jobs.RunOnEveryRank("m", "", "x", make, Never).code(),
            absl::StatusCode::kAlreadyExists);
  holder.Release("m", "b1");
  EXPECT_EQ(alive_, 0) << "the held ranks outlived their release";
  Hold(&holder);
  EXPECT_TRUE(jobs.RunOnEveryRank("m", "", "x", make, Never).ok());
}

}  // namespace
}  // namespace gptb::worker
