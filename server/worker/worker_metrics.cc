#include "server/worker/worker_metrics.h"

#include "server/common/metric_names.h"

namespace gptb::worker {
namespace {

class SnapshotCollector : public prometheus::Collectable {
 public:
  explicit SnapshotCollector(std::function<WorkerSnapshot()> snapshot)
      : snapshot_(std::move(snapshot)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const WorkerSnapshot s = snapshot_();
    std::vector<prometheus::MetricFamily> out;
    auto params = server::MakeFamily(metrics::kHeldParameters,
                                     "Parameters (elements) held over every rank of this worker.",
                                     prometheus::MetricType::Gauge);
    server::AddSample(&params, {}, static_cast<double>(s.parameters));
    out.push_back(std::move(params));
    auto bytes = server::MakeFamily(metrics::kHeldBytes,
                                    "Bytes held over every rank of this worker, by kind.",
                                    prometheus::MetricType::Gauge);
    server::AddSample(&bytes, {{"kind", "parameters"}}, static_cast<double>(s.parameter_bytes));
    server::AddSample(&bytes, {{"kind", "gradients"}}, static_cast<double>(s.gradient_bytes));
    out.push_back(std::move(bytes));
    auto models = server::MakeFamily(metrics::kHeldModels, "Models this worker holds ranks of.",
                                     prometheus::MetricType::Gauge);
    server::AddSample(&models, {}, s.models);
    out.push_back(std::move(models));
    auto slots = server::MakeFamily(metrics::kWorkerSlots, "This worker's slots, by state.",
                                    prometheus::MetricType::Gauge);
    server::AddSample(&slots, {{"state", "free"}}, s.slots_free);
    server::AddSample(&slots, {{"state", "building"}}, s.slots_building);
    server::AddSample(&slots, {{"state", "holding"}}, s.slots_holding);
    out.push_back(std::move(slots));
    auto registered = server::MakeFamily(
        metrics::kWorkerRegistered,
        "1 while registered with the coordinator (its last heartbeat succeeded).",
        prometheus::MetricType::Gauge);
    server::AddSample(&registered, {}, s.registered ? 1 : 0);
    out.push_back(std::move(registered));
    return out;
  }

 private:
  std::function<WorkerSnapshot()> snapshot_;
};

}  // namespace

WorkerMetrics::WorkerMetrics(server::Metrics* metrics) : metrics_(metrics) {
  prometheus::Registry& registry = metrics->registry();
  phase_seconds_ = &prometheus::BuildHistogram()
                        .Name(metrics::kRankPhaseSeconds)
                        .Help("Seconds per build phase of each rank built on this worker.")
                        .Register(registry);
  rank_builds_ = &prometheus::BuildCounter()
                      .Name(metrics::kRankBuilds)
                      .Help("Rank builds finished on this worker, by result.")
                      .Register(registry);
  released_ = &prometheus::BuildCounter()
                   .Name(metrics::kRanksReleased)
                   .Help("Ranks released on this worker.")
                   .Register(registry)
                   .Add({});
  for (const char* result : {"ready", "failed", "cancelled"})
    rank_builds_->Add({{"result", result}});
}

void WorkerMetrics::ObserveRankPhase(const std::string& phase, double seconds) {
  phase_seconds_->Add({{"phase", phase}}, server::Metrics::PhaseBuckets()).Observe(seconds);
}

void WorkerMetrics::RankFinished(const std::string& result) {
  rank_builds_->Add({{"result", result}}).Increment();
}

void WorkerMetrics::RanksReleased(int ranks) { released_->Increment(ranks); }

void WorkerMetrics::CollectFrom(std::function<WorkerSnapshot()> snapshot) {
  metrics_->AddCollector(std::make_shared<SnapshotCollector>(std::move(snapshot)));
}

}  // namespace gptb::worker
