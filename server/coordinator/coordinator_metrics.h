#ifndef GPTB_SERVER_COORDINATOR_COORDINATOR_METRICS_H_
#define GPTB_SERVER_COORDINATOR_COORDINATOR_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/common/metrics.h"

namespace gptb::coordinator {

// What the coordinator's scrape-time collector reads.
struct CoordinatorSnapshot {
  std::map<std::string, int> models_by_state;   // "building", "ready", ...
  std::map<std::string, int> workers_by_state;  // "ready", "lost"
  int slots_free = 0;
  int slots_used = 0;
  std::map<std::string, double> heartbeat_age_seconds;  // by worker name
};

// The coordinator's metrics (names in server/common/metric_names.h).
class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(server::Metrics* metrics);

  void ObservePhase(const std::string& phase, double seconds);
  // result: "ready", "failed" or "cancelled".
  void BuildFinished(const std::string& result, double seconds);
  void BuildRejected(absl::StatusCode code);
  void WorkerLost();
  // A successful train step: its wall time (slowest rank), global batch tokens, tokens/s, loss.
  void TrainStepDone(double seconds, int64_t tokens, double tokens_per_second, double loss);
  // result: "failed" or "rejected".
  void TrainStepFailed(const std::string& result);
  void CheckpointSaved(bool ok, int64_t bytes, double seconds);
  // Registers the scrape-time collector for models, workers, slots and heartbeat ages.
  void CollectFrom(std::function<CoordinatorSnapshot()> snapshot);

 private:
  server::Metrics* metrics_;
  prometheus::Family<prometheus::Histogram>* phase_seconds_;
  prometheus::Family<prometheus::Histogram>* build_seconds_;
  prometheus::Family<prometheus::Counter>* builds_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Counter* workers_lost_;
  prometheus::Histogram* train_step_seconds_;
  prometheus::Family<prometheus::Counter>* train_steps_;
  prometheus::Counter* train_tokens_;
  prometheus::Gauge* train_tokens_per_second_;
  prometheus::Gauge* train_loss_;
  prometheus::Family<prometheus::Counter>* checkpoint_saves_;
  prometheus::Histogram* checkpoint_save_seconds_;
  prometheus::Counter* checkpoint_save_bytes_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_COORDINATOR_METRICS_H_
