#ifndef GPTB_SERVER_COMMON_METRICS_H_
#define GPTB_SERVER_COMMON_METRICS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/common/metrics_endpoint.h"

namespace gptb::server {

// One daemon's metrics (names in metric_names.h): a registry for counters and histograms, the
// gRPC server metrics (filled by the interceptor from MakeGrpcInterceptorFactory), process
// metrics, gptb_build_info, and scrape-time collectors for state that is cheaper to read than
// to keep in gauges. Serve() exposes everything on http://HOST:PORT/metrics.
class Metrics {
 public:
  // `role` is "coordinator" or "worker" (a gptb_build_info label).
  explicit Metrics(const std::string& role);
  ~Metrics();

  prometheus::Registry& registry() { return *registry_; }

  // Starts the HTTP endpoint; port 0 picks a free one. Returns the bound port.
  absl::StatusOr<int> Serve(const std::string& listen);
  // "http://HOST:PORT/metrics" once serving, else "".
  const std::string& url() const { return url_; }

  // A collector consulted on every scrape. Kept alive by this object.
  void AddCollector(std::shared_ptr<prometheus::Collectable> collector);

  // The server interceptor that counts and times every RPC by method and status code.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  MakeGrpcInterceptorFactory();

  // Everything registered, in the text exposition format (what /metrics serves).
  std::string Scrape() const;

  // Buckets for build-phase durations (10 ms .. 30 min).
  static prometheus::Histogram::BucketBoundaries PhaseBuckets();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex collectors_mu_;  // scrapes run on the endpoint's threads
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
  std::string url_;
};

// Helpers for scrape-time collectors.
prometheus::MetricFamily MakeFamily(const std::string& name, const std::string& help,
                                    prometheus::MetricType type);
void AddSample(prometheus::MetricFamily* family, const std::map<std::string, std::string>& labels,
               double value);

}  // namespace gptb::server

#endif  // GPTB_SERVER_COMMON_METRICS_H_
