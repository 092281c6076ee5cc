#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rpc/status_details.h"
#include "tests/unit/server/fake_workers.h"
#include "tests/unit/server/test_models.h"

namespace gptb::coordinator {
namespace {

using gptbuilder::v1::Model;
using testing::FakeConnector;
using testing::FakeWorker;
using ::testing::HasSubstr;
using testing::TinyGpt;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(); }

  // A fresh coordinator (the fake workers keep their state, like real ones across a restart).
  void Restart(absl::Duration heartbeat_timeout = absl::Seconds(60),
               const std::function<void(CoordinatorOptions&)>& more = nullptr) {
    if (coordinator_ != nullptr) coordinator_->Shutdown();
    CoordinatorOptions options;
    options.heartbeat_timeout = heartbeat_timeout;
    if (more) more(options);
    options.sweep_period = absl::Milliseconds(20);
    options.recovery_grace = absl::Seconds(30);
    coordinator_ = std::make_unique<Coordinator>(options, nullptr, connector_);
    coordinator_->Start();
  }

  void AddWorker(const std::string& name, int slots, int64_t budget = int64_t{1} << 30) {
    gptbuilder::v1::RegisterWorkerRequest request;
    request.set_name(name);
    request.set_address(name + ":1");
    for (int i = 0; i < slots; ++i) {
      auto* slot = request.add_slots();
      slot->set_index(i);
      slot->set_device("cpu");
      slot->set_memory_bytes(budget);
    }
    ASSERT_TRUE(coordinator_->RegisterWorker(request).ok());
  }

  gptbuilder::v1::BuildModelRequest Build(const std::string& name, int tp = 2, int pp = 2) {
    gptbuilder::v1::BuildModelRequest request;
    request.set_name(name);
    *request.mutable_config() = TinyGpt(tp, pp);
    return request;
  }

  // Waits (bounded) until the model reaches a terminal state and returns it.
  Model WaitTerminal(const std::string& name) {
    Model last;
    gptbuilder::v1::WatchBuildRequest watch;
    watch.set_name(name);
    absl::Status status = coordinator_->WatchBuild(
        watch,
        [&](const gptbuilder::v1::BuildEvent& event) {
          last.set_state(event.state());
          last.set_reason(event.reason());
          return true;
        },
        [] { return false; });
    EXPECT_TRUE(status.ok()) << status;
    return *coordinator_->GetModel(name);
  }

  // Whether `worker` released `model` within a bound (releases of a failed build go out to the
  // workers in parallel after the model turns FAILED, so they land in any order).
  bool Released(const std::string& worker, const std::string& model) {
    std::shared_ptr<FakeWorker> w = connector_->Worker(worker);
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(w->mu);
        if (std::find(w->releases.begin(), w->releases.end(), model) != w->releases.end()) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void HeartbeatAll(const std::vector<std::string>& names) {
    for (const auto& name : names) {
      gptbuilder::v1::HeartbeatRequest beat;
      beat.set_name(name);
      coordinator_->Heartbeat(beat);
    }
  }

  std::shared_ptr<FakeConnector> connector_ = std::make_shared<FakeConnector>();
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, ValidateConfigReportsEveryViolation) {
  gptbuilder::v1::ValidateConfigRequest request;
  *request.mutable_config() = TinyGpt(3, 1);  // 4 heads are not divisible by tp 3
  request.mutable_config()->mutable_transformer()->set_hidden_size(66);
  auto response = coordinator_->ValidateConfig(request);
  ASSERT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_GE(config::ViolationsFromStatus(response.status()).size(), 2u);
}

TEST_F(CoordinatorTest, ValidateConfigReturnsTheResolvedConfig) {
  gptbuilder::v1::ValidateConfigRequest request;
  *request.mutable_config() = TinyGpt(2, 2);
  auto response = coordinator_->ValidateConfig(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->padded_vocab_size(), 1024);
  EXPECT_EQ(response->config().transformer().kv_channels(), 16);
}

TEST_F(CoordinatorTest, PlanModelDefaultsToTheSmallestWorld) {
  gptbuilder::v1::PlanModelRequest request;
  *request.mutable_config() = TinyGpt(2, 2);
  auto plan = coordinator_->PlanModel(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->world_size(), 4);
  EXPECT_EQ(plan->stages_size(), 4);
  EXPECT_EQ(plan->ranks_size(), 4);
  EXPECT_EQ(plan->parallel().tp(), 2);
  EXPECT_EQ(plan->parallel().pp(), 2);
  // Ranks name their groups by index; PlanModel leaves the member lists out (O(world) per kind).
  EXPECT_EQ(plan->ranks(3).groups().at("tp"), 1);
  EXPECT_TRUE(plan->process_groups().empty());
  EXPECT_TRUE(plan->next_page_token().empty());
}

// Issue 13: a world of tens of thousands of ranks comes a page at a time; the limits are the
// coordinator's.
TEST_F(CoordinatorTest, PlanModelPagesItsRanksAndHonoursTheLimits) {
  gptbuilder::v1::PlanModelRequest request;
  *request.mutable_config() = TinyGpt(2, 2);
  request.set_world_size(8);
  request.set_page_size(3);
  std::vector<int> ranks;
  std::vector<std::string> tokens;
  while (true) {
    auto page = coordinator_->PlanModel(request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->ranks_size(), 3);
    for (const auto& r : page->ranks()) ranks.push_back(r.rank());
    if (page->next_page_token().empty()) break;
    tokens.push_back(page->next_page_token());
    request.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(ranks, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(tokens, (std::vector<std::string>{"3", "6"}));
  request.set_page_token("-5");
  EXPECT_EQ(coordinator_->PlanModel(request).status().code(), absl::StatusCode::kInvalidArgument);

  Restart(absl::Seconds(60), [](CoordinatorOptions& o) { o.limits.max_world_size = 4; });
  gptbuilder::v1::ValidateConfigRequest validate;
  *validate.mutable_config() = TinyGpt(2, 2);
  validate.set_world_size(8);
  auto refused = coordinator_->ValidateConfig(validate);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--max-world-size"));
}

// Issue 13: handlers kept working after the client's deadline; a cancelled plan stops before it
// is described.
TEST_F(CoordinatorTest, ACancelledPlanModelStops) {
  gptbuilder::v1::PlanModelRequest request;
  *request.mutable_config() = TinyGpt(2, 2);
  request.set_world_size(8);
  EXPECT_TRUE(coordinator_->PlanModel(request, [] { return false; }).ok());
  EXPECT_EQ(coordinator_->PlanModel(request, [] { return true; }).status().code(),
            absl::StatusCode::kCancelled);
}

// Issue 13: LOST workers used to stay in ListWorkers forever.
TEST_F(CoordinatorTest, LostWorkersLeaveTheListAfterTheRetention) {
  Restart(absl::Milliseconds(100),
          [](CoordinatorOptions& o) { o.lost_worker_retention = absl::Milliseconds(200); });
  AddWorker("w1", 1);
  for (int i = 0; i < 200 && coordinator_->ListWorkers().workers_size() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(coordinator_->ListWorkers().workers_size(), 0);
  // Back, it registers again.
  gptbuilder::v1::HeartbeatRequest beat;
  beat.set_name("w1");
  EXPECT_TRUE(coordinator_->Heartbeat(beat).register_again());
}

// Issue 13: the coordinator's --checkpoint-root confines saves even when a worker was started
// without one (a WIP once left only the workers' check).
TEST_F(CoordinatorTest, SavesOutsideTheCheckpointRootArePermissionDenied) {
  const std::string root = std::filesystem::canonical(std::filesystem::temp_directory_path());
  Restart(absl::Seconds(60), [&](CoordinatorOptions& o) { o.checkpoint_root = root; });
  gptbuilder::v1::SaveCheckpointRequest save;
  save.set_model("m");
  save.set_path("/proc/gptb-not-a-checkpoint-root/ck");
  absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> refused =
      coordinator_->SaveCheckpoint(save, [] { return false; });
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--checkpoint-root"));
  // Inside the root the request goes on (to the missing model).
  save.set_path(root + "/gptb-coordinator-test/ck");
  EXPECT_EQ(coordinator_->SaveCheckpoint(save, [] { return false; }).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, BuildWithoutEnoughSlotsIsFailedPrecondition) {
  AddWorker("w1", 2);
  auto op = coordinator_->BuildModel(Build("m"));
  ASSERT_EQ(op.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rpc::ErrorReason(op.status()), "NOT_ENOUGH_SLOTS");
  EXPECT_EQ(connector_->Worker("w1:1")->build_calls, 0);
  EXPECT_EQ(coordinator_->GetModel("m").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, OversizeModelIsResourceExhaustedBeforeAnythingIsDispatched) {
  AddWorker("w1", 2, 1024);
  AddWorker("w2", 2, 1024);
  auto op = coordinator_->BuildModel(Build("m"));
  ASSERT_EQ(op.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(op.status().message()), HasSubstr("the largest slot holds"));
  EXPECT_EQ(connector_->Worker("w1:1")->build_calls, 0);
  EXPECT_EQ(connector_->Worker("w2:1")->build_calls, 0);
}

TEST_F(CoordinatorTest, InvalidConfigOrNameIsInvalidArgument) {
  AddWorker("w1", 4);
  auto request = Build("m");
  request.mutable_config()->mutable_transformer()->set_num_attention_heads(3);
  EXPECT_EQ(coordinator_->BuildModel(request).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_name = coordinator_->BuildModel(Build("Bad Name"));
  ASSERT_EQ(bad_name.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config::ViolationsFromStatus(bad_name.status()).at(0).field, "name");
}

TEST_F(CoordinatorTest, BuildsReadyWithTensorParallelGroupsPackedPerWorker) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  auto op = coordinator_->BuildModel(Build("m"));
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_THAT(op->name(), HasSubstr("operations/"));
  Model model = WaitTerminal("m");
  ASSERT_EQ(model.state(), Model::READY) << model.reason();
  ASSERT_EQ(model.placement_size(), 4);
  EXPECT_EQ(model.placement(0).worker(), model.placement(1).worker());
  EXPECT_EQ(model.placement(2).worker(), model.placement(3).worker());
  EXPECT_NE(model.placement(0).worker(), model.placement(2).worker());
  EXPECT_EQ(model.progress().ranks_done(), 4);
  EXPECT_EQ(model.progress().layers_built(), 8);
  EXPECT_EQ(model.held_bytes(), 4000);
  EXPECT_DOUBLE_EQ(model.progress().phase_seconds().at("construct"), 0.5);
  EXPECT_EQ(model.progress().phase_seconds().count("rendezvous"), 1u);
  // Each worker got one BuildStages with its two ranks and the build's store prefix.
  for (const char* address : {"w1:1", "w2:1"}) {
    auto worker = connector_->Worker(address);
    ASSERT_EQ(worker->requests.size(), 1u);
    EXPECT_EQ(worker->requests[0].ranks_size(), 2);
    EXPECT_THAT(worker->requests[0].store_prefix(), HasSubstr("gptb/m/"));
  }
  auto done = coordinator_->GetOperation(op->name());
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->done());
  EXPECT_TRUE(done->has_response());
}

TEST_F(CoordinatorTest, DuplicateNameIsAlreadyExistsUnlessTheRequestIdRepeats) {
  AddWorker("w1", 4);
  auto request = Build("m");
  request.set_request_id("req-1");
  auto first = coordinator_->BuildModel(request);
  ASSERT_TRUE(first.ok());
  auto retry = coordinator_->BuildModel(request);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->name(), first->name());
  request.set_request_id("req-2");
  EXPECT_EQ(coordinator_->BuildModel(request).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(WaitTerminal("m").state(), Model::READY);
  EXPECT_EQ(connector_->Worker("w1:1")->build_calls, 1);
}

TEST_F(CoordinatorTest, ValidateOnlyPlacesWithoutBuilding) {
  AddWorker("w1", 4);
  auto request = Build("m");
  request.set_validate_only(true);
  auto op = coordinator_->BuildModel(request);
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_TRUE(op->done());
  Model model;
  ASSERT_TRUE(op->response().UnpackTo(&model));
  EXPECT_EQ(model.placement_size(), 4);
  EXPECT_EQ(coordinator_->GetModel("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(connector_->Worker("w1:1")->build_calls, 0);
}

TEST_F(CoordinatorTest, ARankFailureFailsTheBuildAndReleasesEveryWorker) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kFailFirstRank;
  connector_->Worker("w2:1")->mode = FakeWorker::Mode::kBlock;
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  Model model = WaitTerminal("m");
  ASSERT_EQ(model.state(), Model::FAILED);
  EXPECT_THAT(model.reason(), HasSubstr("out of memory"));
  EXPECT_THAT(model.reason(), HasSubstr("rank 0"));
  // The failed build's slots come back once its workers released it.
  EXPECT_TRUE(Released("w2:1", "m"));
  EXPECT_TRUE(Released("w1:1", "m"));
  auto op = coordinator_->GetOperation(model.operation());
  ASSERT_TRUE(op.ok());
  EXPECT_TRUE(op->has_error());
}

TEST_F(CoordinatorTest, ALostWorkerIsTheReasonEvenWhenItsPeersFailFirst) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  // w1's ranks report broken connections first; then w2's stream breaks: w2 is the cause.
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kFailFirstRank;
  connector_->Worker("w2:1")->mode = FakeWorker::Mode::kLoseConnection;
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  Model model = WaitTerminal("m");
  ASSERT_EQ(model.state(), Model::FAILED);
  EXPECT_THAT(model.reason(), HasSubstr("worker w2"));
  EXPECT_THAT(model.reason(), HasSubstr("was lost"));
}

TEST_F(CoordinatorTest, ALostWorkerFailsItsBuildWithinTheHeartbeatTimeout) {
  Restart(absl::Milliseconds(300));
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kBlock;
  connector_->Worker("w2:1")->mode = FakeWorker::Mode::kBlock;
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  // w2 keeps heart-beating, w1 goes silent.
  std::atomic<bool> stop{false};
  std::thread beats([&] {
    while (!stop) {
      HeartbeatAll({"w2"});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  Model model = WaitTerminal("m");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stop = true;
  beats.join();
  ASSERT_EQ(model.state(), Model::FAILED);
  EXPECT_THAT(model.reason(), HasSubstr("w1"));
  EXPECT_THAT(model.reason(), HasSubstr("heart"));
  EXPECT_LT(seconds, 5.0);
  EXPECT_TRUE(Released("w2:1", "m"));
  auto workers = coordinator_->ListWorkers();
  ASSERT_EQ(workers.workers_size(), 2);
  EXPECT_EQ(workers.workers(0).state(), gptbuilder::v1::WorkerInfo::LOST);
}

TEST_F(CoordinatorTest, DeleteReleasesEveryWorkerAndFreesTheSlots) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  ASSERT_EQ(WaitTerminal("m").state(), Model::READY);
  EXPECT_EQ(coordinator_->Snapshot().slots_used, 4);
  auto deleted = coordinator_->DeleteModel("m", absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->model().name(), "m");
  EXPECT_THAT(connector_->Worker("w1:1")->releases, ::testing::ElementsAre("m"));
  EXPECT_THAT(connector_->Worker("w2:1")->releases, ::testing::ElementsAre("m"));
  EXPECT_EQ(coordinator_->Snapshot().slots_used, 0);
  EXPECT_EQ(coordinator_->GetModel("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_->DeleteModel("m", absl::Now()).status().code(),
            absl::StatusCode::kNotFound);
  // The name is free again.
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  EXPECT_EQ(WaitTerminal("m").state(), Model::READY);
}

TEST_F(CoordinatorTest, DeleteWhileBuildingCancelsTheBuild) {
  AddWorker("w1", 4);
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kBlock;
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  ASSERT_TRUE(coordinator_->DeleteModel("m", absl::Now() + absl::Seconds(5)).ok());
  EXPECT_EQ(coordinator_->GetModel("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(connector_->Worker("w1:1")->releases, ::testing::Contains("m"));
}

TEST_F(CoordinatorTest, CancelOperationFailsTheBuildAsCancelled) {
  AddWorker("w1", 4);
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kBlock;
  auto op = coordinator_->BuildModel(Build("m"));
  ASSERT_TRUE(op.ok());
  ASSERT_TRUE(coordinator_->CancelOperation(op->name()).ok());
  Model model = WaitTerminal("m");
  EXPECT_EQ(model.state(), Model::FAILED);
  auto done = coordinator_->GetOperation(op->name());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->error().code(), static_cast<int>(absl::StatusCode::kCancelled));
}

TEST_F(CoordinatorTest, DescribeGathersStagesInPlanOrder) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  ASSERT_EQ(WaitTerminal("m").state(), Model::READY);
  auto described = coordinator_->DescribeModel("m", absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(described.ok()) << described.status();
  gptbuilder::v1::PlanModelRequest plan_request;
  *plan_request.mutable_config() = TinyGpt(2, 2);
  auto plan = coordinator_->PlanModel(plan_request);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(described->stages_size(), plan->stages_size());
  for (int i = 0; i < plan->stages_size(); ++i) {
    EXPECT_EQ(described->stages(i).tp_rank(), plan->stages(i).tp_rank());
    EXPECT_EQ(described->stages(i).pp_rank(), plan->stages(i).pp_rank());
    ASSERT_EQ(described->stages(i).params_size(), plan->stages(i).params_size());
    EXPECT_NE(described->stages(i).params(0).checksum(), 0u);
  }
  EXPECT_EQ(described->ranks_size(), 4);
  EXPECT_EQ(described->inconsistent_stages_size(), 0);
}

TEST_F(CoordinatorTest, DescribeFlagsReplicasThatDisagree) {
  AddWorker("w1", 4);
  auto request = Build("m", 2, 1);
  request.set_world_size(4);  // dp 2: ranks 0/2 and 1/3 are replicas
  connector_->Worker("w1:1")->checksum_salt = 7;
  ASSERT_TRUE(coordinator_->BuildModel(request).ok());
  ASSERT_EQ(WaitTerminal("m").state(), Model::READY);
  auto described = coordinator_->DescribeModel("m", absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->stages_size(), 2);
  EXPECT_EQ(described->inconsistent_stages_size(), 2);
}

TEST_F(CoordinatorTest, DescribeOfABuildingModelIsFailedPrecondition) {
  AddWorker("w1", 4);
  connector_->Worker("w1:1")->mode = FakeWorker::Mode::kBlock;
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  EXPECT_EQ(coordinator_->DescribeModel("m", absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, UnknownWorkersAreToldToRegisterAndUnknownModelsToRelease) {
  gptbuilder::v1::HeartbeatRequest beat;
  beat.set_name("ghost");
  EXPECT_TRUE(coordinator_->Heartbeat(beat).register_again());
  AddWorker("w1", 2);
  beat.set_name("w1");
  beat.add_held_models("forgotten");
  auto response = coordinator_->Heartbeat(beat);
  EXPECT_FALSE(response.register_again());
  EXPECT_THAT(response.release_models(), ::testing::ElementsAre("forgotten"));
}

TEST_F(CoordinatorTest, ReadyModelSurvivesACoordinatorRestart) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  Model before = WaitTerminal("m");
  ASSERT_EQ(before.state(), Model::READY);

  Restart();
  EXPECT_EQ(coordinator_->GetModel("m").status().code(), absl::StatusCode::kNotFound);
  // Each worker re-registers with what it holds.
  for (std::string worker : {"w1", "w2"}) {
    gptbuilder::v1::RegisterWorkerRequest request;
    request.set_name(worker);
    request.set_address(worker + ":1");
    for (int i = 0; i < 2; ++i) {
      auto* slot = request.add_slots();
      slot->set_index(i);
      slot->set_device("cpu");
      slot->set_memory_bytes(1 << 30);
    }
    auto* held = request.add_held_models();
    held->set_name("m");
    held->set_build_id(before.build_id());
    *held->mutable_config() = before.config();
    *held->mutable_ddp() = before.ddp();
    *held->mutable_build() = before.build();
    held->set_world_size(4);
    for (const auto& p : before.placement()) {
      if (p.worker() != worker) continue;
      auto* rank = held->add_ranks();
      rank->set_rank(p.rank());
      rank->set_slot(p.slot());
      rank->set_parameter_bytes(100);
    }
    ASSERT_TRUE(coordinator_->RegisterWorker(request).ok());
    auto model = coordinator_->GetModel("m");
    ASSERT_TRUE(model.ok());
    EXPECT_EQ(model->state(), worker == "w1" ? Model::RECOVERING : Model::READY) << model->reason();
  }
  auto model = coordinator_->GetModel("m");
  EXPECT_EQ(model->placement_size(), 4);
  EXPECT_EQ(model->operation(), before.operation());
  EXPECT_EQ(coordinator_->Snapshot().slots_used, 4);
  // And it still describes and releases.
  EXPECT_TRUE(coordinator_->DescribeModel("m", absl::Now() + absl::Seconds(5)).ok());
  EXPECT_TRUE(coordinator_->DeleteModel("m", absl::Now() + absl::Seconds(5)).ok());
}

TEST_F(CoordinatorTest, AWorkerThatRestartedEmptyFailsItsModels) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  ASSERT_TRUE(coordinator_->BuildModel(Build("m")).ok());
  ASSERT_EQ(WaitTerminal("m").state(), Model::READY);
  AddWorker("w1", 2);  // registers again holding nothing
  auto model = coordinator_->GetModel("m");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->state(), Model::FAILED);
  EXPECT_THAT(model->reason(), HasSubstr("restarted"));
  EXPECT_THAT(connector_->Worker("w2:1")->releases, ::testing::Contains("m"));
}

}  // namespace
}  // namespace gptb::coordinator
