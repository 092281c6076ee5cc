#include "server/coordinator/coordinator_metrics.h"

#include "absl/status/status.h"
#include "server/common/metric_names.h"

namespace gptb::coordinator {
namespace {

class SnapshotCollector : public prometheus::Collectable {
 public:
  explicit SnapshotCollector(std::function<CoordinatorSnapshot()> snapshot)
      : snapshot_(std::move(snapshot)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const CoordinatorSnapshot s = snapshot_();
    std::vector<prometheus::MetricFamily> out;
    auto models = server::MakeFamily(metrics::kModels, "Models known to the coordinator, by state.",
                                     prometheus::MetricType::Gauge);
    for (const char* state : {"building", "ready", "failed", "releasing", "recovering"}) {
      auto it = s.models_by_state.find(state);
      server::AddSample(&models, {{"state", state}},
                        it == s.models_by_state.end() ? 0 : it->second);
    }
    out.push_back(std::move(models));
    auto workers = server::MakeFamily(metrics::kWorkers, "Registered workers, by state.",
                                      prometheus::MetricType::Gauge);
    for (const char* state : {"ready", "lost"}) {
      auto it = s.workers_by_state.find(state);
      server::AddSample(&workers, {{"state", state}},
                        it == s.workers_by_state.end() ? 0 : it->second);
    }
    out.push_back(std::move(workers));
    auto slots = server::MakeFamily(metrics::kSlots, "Slots over all live workers, by state.",
                                    prometheus::MetricType::Gauge);
    server::AddSample(&slots, {{"state", "free"}}, s.slots_free);
    server::AddSample(&slots, {{"state", "used"}}, s.slots_used);
    out.push_back(std::move(slots));
    auto ages = server::MakeFamily(metrics::kWorkerHeartbeatAge,
                                   "Seconds since the worker's last heartbeat.",
                                   prometheus::MetricType::Gauge);
    for (const auto& [worker, age] : s.heartbeat_age_seconds) {
      server::AddSample(&ages, {{"worker", worker}}, age);
    }
    out.push_back(std::move(ages));
    return out;
  }

 private:
  std::function<CoordinatorSnapshot()> snapshot_;
};

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(server::Metrics* metrics) : metrics_(metrics) {
  prometheus::Registry& registry = metrics->registry();
  phase_seconds_ = &prometheus::BuildHistogram()
                        .Name(metrics::kBuildPhaseSeconds)
                        .Help("Seconds per build phase; rank phases take the slowest rank.")
                        .Register(registry);
  build_seconds_ = &prometheus::BuildHistogram()
                        .Name(metrics::kBuildSeconds)
                        .Help("Seconds from BuildModel to the end of the build, by result.")
                        .Register(registry);
  builds_ = &prometheus::BuildCounter()
                 .Name(metrics::kBuilds)
                 .Help("Builds finished, by result.")
                 .Register(registry);
  rejected_ = &prometheus::BuildCounter()
                   .Name(metrics::kBuildsRejected)
                   .Help("BuildModel requests rejected before anything was allocated, by code.")
                   .Register(registry);
  workers_lost_ = &prometheus::BuildCounter()
                       .Name(metrics::kWorkersLost)
                       .Help("Workers that stopped heart-beating.")
                       .Register(registry)
                       .Add({});
  train_step_seconds_ = &prometheus::BuildHistogram()
                             .Name(metrics::kTrainStepSeconds)
                             .Help("Seconds per train step, over the model's slowest rank.")
                             .Register(registry)
                             .Add({}, server::Metrics::PhaseBuckets());
  train_steps_ = &prometheus::BuildCounter()
                      .Name(metrics::kTrainSteps)
                      .Help("Train steps, by result.")
                      .Register(registry);
  train_tokens_ = &prometheus::BuildCounter()
                       .Name(metrics::kTrainTokens)
                       .Help("Tokens of the global batches of successful train steps.")
                       .Register(registry)
                       .Add({});
  train_tokens_per_second_ = &prometheus::BuildGauge()
                                  .Name(metrics::kTrainTokensPerSecond)
                                  .Help("Global batch tokens per second of the last train step.")
                                  .Register(registry)
                                  .Add({});
  train_loss_ = &prometheus::BuildGauge()
                     .Name(metrics::kTrainLoss)
                     .Help("LM loss of the last successful train step.")
                     .Register(registry)
                     .Add({});
  checkpoint_saves_ = &prometheus::BuildCounter()
                           .Name(metrics::kCheckpointSaves)
                           .Help("SaveCheckpoint calls, by result.")
                           .Register(registry);
  checkpoint_save_seconds_ = &prometheus::BuildHistogram()
                                  .Name(metrics::kCheckpointSaveSeconds)
                                  .Help("Seconds per successful checkpoint save.")
                                  .Register(registry)
                                  .Add({}, server::Metrics::PhaseBuckets());
  checkpoint_save_bytes_ = &prometheus::BuildCounter()
                                .Name(metrics::kCheckpointSaveBytes)
                                .Help("Bytes written by successful checkpoint saves.")
                                .Register(registry)
                                .Add({});
  for (const char* result : {"ok", "failed"}) checkpoint_saves_->Add({{"result", result}});
  // Results exist from the start so that rate() and absent() behave.
  for (const char* result : {"ready", "failed", "cancelled"}) builds_->Add({{"result", result}});
  for (const char* result : {"ok", "failed", "rejected"}) train_steps_->Add({{"result", result}});
}

void CoordinatorMetrics::TrainStepDone(double seconds, int64_t tokens, double tokens_per_second,
                                       double loss) {
  train_step_seconds_->Observe(seconds);
  train_steps_->Add({{"result", "ok"}}).Increment();
  train_tokens_->Increment(static_cast<double>(tokens));
  train_tokens_per_second_->Set(tokens_per_second);
  train_loss_->Set(loss);
}

void CoordinatorMetrics::CheckpointSaved(bool ok, int64_t bytes, double seconds) {
  checkpoint_saves_->Add({{"result", ok ? "ok" : "failed"}}).Increment();
  if (!ok) return;
  checkpoint_save_seconds_->Observe(seconds);
  checkpoint_save_bytes_->Increment(static_cast<double>(bytes));
}

void CoordinatorMetrics::TrainStepFailed(const std::string& result) {
  train_steps_->Add({{"result", result}}).Increment();
}

void CoordinatorMetrics::ObservePhase(const std::string& phase, double seconds) {
  phase_seconds_->Add({{"phase", phase}}, server::Metrics::PhaseBuckets()).Observe(seconds);
}

void CoordinatorMetrics::BuildFinished(const std::string& result, double seconds) {
  builds_->Add({{"result", result}}).Increment();
  build_seconds_->Add({{"result", result}}, server::Metrics::PhaseBuckets()).Observe(seconds);
}

void CoordinatorMetrics::BuildRejected(absl::StatusCode code) {
  rejected_->Add({{"code", absl::StatusCodeToString(code)}}).Increment();
}

void CoordinatorMetrics::WorkerLost() { workers_lost_->Increment(); }

void CoordinatorMetrics::CollectFrom(std::function<CoordinatorSnapshot()> snapshot) {
  metrics_->AddCollector(std::make_shared<SnapshotCollector>(std::move(snapshot)));
}

}  // namespace gptb::coordinator
