#include "server/common/metrics.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/codegen/interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/text_serializer.h"
#include "server/common/metric_names.h"

#ifndef GPTB_VERSION
#define GPTB_VERSION "0.0.0"
#endif

namespace gptb::server {
namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unary";
}

// Whether a generated service in this binary declares `service`.`method`.
bool IsDeclaredMethod(const std::string& service, const std::string& method) {
  if (service.empty() || method.empty()) return false;
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
             absl::StrCat(service, ".", method)) != nullptr;
}

struct GrpcFamilies {
  prometheus::Family<prometheus::Counter>* started;
  prometheus::Family<prometheus::Counter>* handled;
  prometheus::Family<prometheus::Histogram>* seconds;
};

class GrpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(const GrpcFamilies& families, grpc::experimental::ServerRpcInfo* info)
      : families_(families), start_(std::chrono::steady_clock::now()) {
    // "/package.Service/Method". The name is whatever the client sent, so only methods some
    // linked-in service declares get their own series; any other name (answered UNIMPLEMENTED)
    // counts under "unknown", or 3,000 random names would make 3,000 series.
    absl::string_view full = info->method() == nullptr ? "" : info->method();
    if (!full.empty() && full.front() == '/') full.remove_prefix(1);
    std::pair<std::string, std::string> parts = absl::StrSplit(full, absl::MaxSplits('/', 1));
    if (!IsDeclaredMethod(parts.first, parts.second)) parts = {"unknown", "unknown"};
    labels_ = {{"grpc_service", parts.first},
               {"grpc_method", parts.second},
               {"grpc_type", TypeName(info->type())}};
    families_.started->Add(labels_).Increment();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      std::map<std::string, std::string> handled = labels_;
      handled["grpc_code"] = CodeName(status.error_code());
      families_.handled->Add(handled).Increment();
      families_.seconds->Add(labels_, LatencyBuckets()).Observe(seconds);
    }
    methods->Proceed();
  }

  static const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
    static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    return *buckets;
  }

 private:
  GrpcFamilies families_;
  std::chrono::steady_clock::time_point start_;
  std::map<std::string, std::string> labels_;
};

class GrpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsInterceptorFactory(const GrpcFamilies& families) : families_(families) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new GrpcMetricsInterceptor(families_, info);
  }

 private:
  GrpcFamilies families_;
};

// process_* metrics from /proc/self (the standard names client libraries export).
class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector()
      : start_time_(
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    prometheus::MetricFamily rss =
        MakeFamily(metrics::kProcessResidentMemory, "Resident memory size in bytes.",
                   prometheus::MetricType::Gauge);
    AddSample(&rss, {}, static_cast<double>(ResidentBytes()));
    out.push_back(std::move(rss));
    prometheus::MetricFamily start = MakeFamily(
        metrics::kProcessStartTime, "Start time of the process since unix epoch in seconds.",
        prometheus::MetricType::Gauge);
    AddSample(&start, {}, start_time_);
    out.push_back(std::move(start));
    prometheus::MetricFamily cpu =
        MakeFamily(metrics::kProcessCpuSeconds, "Total user and system CPU time spent in seconds.",
                   prometheus::MetricType::Counter);
    AddSample(&cpu, {}, CpuSeconds());
    out.push_back(std::move(cpu));
    return out;
  }

 private:
  static int64_t ResidentBytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) {
        std::istringstream fields(line.substr(6));
        int64_t kib = 0;
        fields >> kib;
        return kib * 1024;
      }
    }
    return 0;
  }

  static double CpuSeconds() {
    std::ifstream in("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    if (fields.size() < 13) return 0;
    double utime = 0, stime = 0;
    if (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) return 0;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  double start_time_;
};

}  // namespace

prometheus::MetricFamily MakeFamily(const std::string& name, const std::string& help,
                                    prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

void AddSample(prometheus::MetricFamily* family, const std::map<std::string, std::string>& labels,
               double value) {
  prometheus::ClientMetric metric;
  for (const auto& [name, label_value] : labels) metric.label.push_back({name, label_value});
  if (family->type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family->metric.push_back(std::move(metric));
}

prometheus::Histogram::BucketBoundaries Metrics::PhaseBuckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
}

Metrics::Metrics(const std::string& role) : registry_(std::make_shared<prometheus::Registry>()) {
#ifdef GPTB_WITH_CUDA
  const char* backend = "nccl";
#else
  const char* backend = "gloo";
#endif
  prometheus::BuildGauge()
      .Name(metrics::kBuildInfo)
      .Help("Build information of the gptbuilder daemon (always 1).")
      .Register(*registry_)
      .Add({{"version", GPTB_VERSION}, {"role", role}, {"backend", backend}})
      .Set(1);
  collectors_.push_back(std::make_shared<ProcessCollector>());
}

Metrics::~Metrics() = default;

absl::StatusOr<int> Metrics::Serve(const std::string& listen) {
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(listen, [this] { return Scrape(); });
  if (!endpoint.ok()) return endpoint.status();
  endpoint_ = *std::move(endpoint);
  std::string host, port;
  if (!ParseListenAddress(listen, &host, &port).ok() || host.empty() || host == "0.0.0.0" ||
      host == "::") {
    host = "127.0.0.1";
  } else if (host.find(':') != std::string::npos) {
    host = absl::StrCat("[", host, "]");
  }
  url_ = absl::StrCat("http://", host, ":", endpoint_->port(), "/metrics");
  return endpoint_->port();
}

void Metrics::AddCollector(std::shared_ptr<prometheus::Collectable> collector) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.push_back(std::move(collector));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::MakeGrpcInterceptorFactory() {
  GrpcFamilies families;
  families.started = &prometheus::BuildCounter()
                          .Name(metrics::kGrpcStarted)
                          .Help("Total number of RPCs started on the server.")
                          .Register(*registry_);
  families.handled = &prometheus::BuildCounter()
                          .Name(metrics::kGrpcHandled)
                          .Help("Total number of RPCs completed on the server, by status code.")
                          .Register(*registry_);
  families.seconds = &prometheus::BuildHistogram()
                          .Name(metrics::kGrpcHandlingSeconds)
                          .Help("Seconds from receiving an RPC to sending its status.")
                          .Register(*registry_);
  return std::make_unique<GrpcMetricsInterceptorFactory>(families);
}

std::string Metrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::lock_guard<std::mutex> lock(collectors_mu_);
  for (const auto& collector : collectors_) {
    std::vector<prometheus::MetricFamily> more = collector->Collect();
    families.insert(families.end(), more.begin(), more.end());
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace gptb::server
