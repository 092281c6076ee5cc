#ifndef GPTB_TESTS_UNIT_SERVER_FAKE_WORKERS_H_
#define GPTB_TESTS_UNIT_SERVER_FAKE_WORKERS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/plan/plan_description.h"
#include "rpc/grpc_status.h"
#include "server/coordinator/model_preparation.h"
#include "server/coordinator/worker_connection.h"

namespace gptb::testing {

// A worker that answers the coordinator without building anything: it reports progress for
// every rank, then succeeds, fails a rank, or blocks until cancelled.
class FakeWorker : public coordinator::WorkerConnection {
 public:
  enum class Mode { kSucceed, kFailFirstRank, kBlock, kLoseConnection };
  std::atomic<Mode> mode{Mode::kSucceed};
  std::atomic<int> build_calls{0};

  absl::Status BuildStages(
      const gptbuilder::v1::BuildStagesRequest& request, absl::Time deadline,
      const std::function<void(const gptbuilder::v1::RankProgress&)>& on_progress,
      coordinator::CallCanceller* canceller) override {
    ++build_calls;
    {
      std::lock_guard<std::mutex> lock(mu);
      requests.push_back(request);
    }
    for (const auto& a : request.ranks()) {
      gptbuilder::v1::RankProgress p;
      p.set_rank(a.rank());
      p.set_phase(gptbuilder::v1::BUILD_PHASE_CONSTRUCT);
      p.set_layers_built(1);
      p.set_layers_total(2);
      on_progress(p);
    }
    if (mode == Mode::kBlock) {
      while (!canceller->cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return absl::CancelledError("cancelled");
    }
    if (mode == Mode::kLoseConnection) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return absl::UnavailableError("Socket closed");
    }
    if (mode == Mode::kFailFirstRank) {
      gptbuilder::v1::RankProgress p;
      p.set_rank(request.ranks(0).rank());
      *p.mutable_result() = rpc::ToRpcStatus(absl::ResourceExhaustedError("out of memory"));
      on_progress(p);
      return absl::ResourceExhaustedError("rank failed: out of memory");
    }
    for (const auto& a : request.ranks()) {
      gptbuilder::v1::RankProgress p;
      p.set_rank(a.rank());
      p.set_phase(gptbuilder::v1::BUILD_PHASE_DONE);
      p.set_layers_built(2);
      p.set_layers_total(2);
      (*p.mutable_phase_seconds_by_phase())["construct"] = 0.5;
      p.set_parameter_bytes(1000);
      *p.mutable_result() = rpc::ToRpcStatus(absl::OkStatus());
      on_progress(p);
      std::lock_guard<std::mutex> lock(mu);
      held[request.model()].insert(a.rank());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<gptbuilder::v1::ReleaseModelResponse> ReleaseModel(
      const gptbuilder::v1::ReleaseModelRequest& request, absl::Time) override {
    std::lock_guard<std::mutex> lock(mu);
    releases.push_back(request.model());
    gptbuilder::v1::ReleaseModelResponse response;
    response.set_ranks_released(static_cast<int>(held[request.model()].size()));
    held.erase(request.model());
    return response;
  }

  absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> DescribeModel(
      const gptbuilder::v1::DescribeHeldModelRequest& request, absl::Time) override {
    std::lock_guard<std::mutex> lock(mu);
    gptbuilder::v1::BuildStagesRequest built;
    for (const auto& r : requests) {
      if (r.model() == request.model()) built = r;
    }
    auto plan =
        coordinator::PlanFinalized(built.config(), built.ddp(), built.build(), built.world_size());
    if (!plan.ok()) return plan.status();
    gptbuilder::v1::DescribeHeldModelResponse response;
    for (const auto& a : built.ranks()) {
      auto* rank = response.add_ranks();
      rank->set_rank(a.rank());
      rank->set_slot(a.slot());
      rank->set_device("cpu");
      for (int index : plan->Rank(a.rank()).stages) {
        auto stage = plan::DescribeStage(plan->stages()[index]);
        for (auto& p : *stage.mutable_params()) {
          p.set_checksum(std::hash<std::string>()(p.name()) + checksum_salt * a.rank());
        }
        *rank->add_stages() = stage;
      }
    }
    return response;
  }

  std::mutex mu;
  std::vector<gptbuilder::v1::BuildStagesRequest> requests;
  std::vector<std::string> releases;
  std::map<std::string, std::set<int>> held;
  uint64_t checksum_salt = 0;  // non-zero: data-parallel replicas disagree
};

class FakeConnector : public coordinator::WorkerConnector {
 public:
  std::shared_ptr<coordinator::WorkerConnection> Connect(const std::string& address) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& w = workers_[address];
    if (w == nullptr) w = std::make_shared<FakeWorker>();
    return w;
  }
  std::shared_ptr<FakeWorker> Worker(const std::string& address) {
    return std::static_pointer_cast<FakeWorker>(Connect(address));
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<FakeWorker>> workers_;
};

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_SERVER_FAKE_WORKERS_H_
