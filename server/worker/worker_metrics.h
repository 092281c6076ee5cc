#ifndef GPTB_SERVER_WORKER_WORKER_METRICS_H_
#define GPTB_SERVER_WORKER_WORKER_METRICS_H_

#include <functional>
#include <memory>
#include <string>

#include "server/common/metrics.h"

namespace gptb::worker {

// What the worker's scrape-time collector reads.
struct WorkerSnapshot {
  int64_t parameters = 0;
  int64_t parameter_bytes = 0;
  int64_t gradient_bytes = 0;
  int models = 0;
  int slots_free = 0;
  int slots_building = 0;
  int slots_holding = 0;
  bool registered = false;
};

// The worker's metrics (names in server/common/metric_names.h).
class WorkerMetrics {
 public:
  explicit WorkerMetrics(server::Metrics* metrics);

  void ObserveRankPhase(const std::string& phase, double seconds);
  // result: "ready", "failed" or "cancelled".
  void RankFinished(const std::string& result);
  void RanksReleased(int ranks);
  void CollectFrom(std::function<WorkerSnapshot()> snapshot);

 private:
  server::Metrics* metrics_;
  prometheus::Family<prometheus::Histogram>* phase_seconds_;
  prometheus::Family<prometheus::Counter>* rank_builds_;
  prometheus::Counter* released_;
};

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_WORKER_METRICS_H_
