// The RPC layer in one process: a real gRPC server with the coordinator's services over a
// coordinator whose workers are fakes. Covers status details on the wire, auth, TLS, health,
// request size limits and the gRPC metrics.
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "core/config/config_loader.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "rpc/auth.h"
#include "rpc/grpc_status.h"
#include "rpc/status_details.h"
#include "server/common/grpc_server.h"
#include "server/common/metrics.h"
#include "server/coordinator/coordinator_service.h"
#include "tests/unit/server/fake_workers.h"
#include "tests/unit/server/test_models.h"

namespace gptb::server {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(GrpcStatusTest, DetailsSurviveTheRoundTrip) {
  config::Violations violations;
  violations.Add("transformer.num_attention_heads", "NOT_DIVISIBLE", "must divide by tp");
  violations.Add("vocab_size", "REQUIRED", "set vocab_size");
  absl::Status status = rpc::WithErrorInfo(violations.ToStatus(), "INVALID_CONFIG");
  grpc::Status wire = rpc::ToGrpcStatus(status);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(wire.error_details()));
  EXPECT_EQ(rpc.details_size(), 2);
  absl::Status back = rpc::FromGrpcStatus(wire);
  EXPECT_EQ(back.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config::ViolationsFromStatus(back).size(), 2u);
  EXPECT_EQ(rpc::ErrorReason(back), "INVALID_CONFIG");
}

TEST(GrpcStatusTest, LongMessagesAreTruncated) {
  grpc::Status wire = rpc::ToGrpcStatus(absl::InternalError(std::string(100000, 'x')));
  EXPECT_LT(wire.error_message().size(), rpc::kMaxStatusMessageBytes + 100);
  EXPECT_THAT(wire.error_message(), HasSubstr("(100000 bytes)"));
}

// A status with many long violations still fits gRPC's default 8 KiB of trailers (a client
// saw RESOURCE_EXHAUSTED on metadata size instead of the error), keeping what fits.
TEST(GrpcStatusTest, DetailsAreBoundedKeepingWhatFits) {
  config::Violations violations;
  for (int i = 0; i < 500; ++i) {
    violations.Add(absl::StrCat("field", i), "INVALID_VALUE", std::string(900, 'd'));
  }
  grpc::Status wire = rpc::ToGrpcStatus(violations.ToStatus());
  EXPECT_LE(wire.error_message().size(), rpc::kMaxStatusMessageBytes + 64);
  EXPECT_LE(wire.error_details().size(),
            rpc::kMaxStatusMessageBytes + rpc::kMaxStatusDetailsBytes + 128);
  const std::vector<config::FieldViolation> back =
      config::ViolationsFromStatus(rpc::FromGrpcStatus(wire));
  ASSERT_GE(back.size(), 5u);
  EXPECT_EQ(back.front().field, "field0");
  EXPECT_EQ(back.back().reason, "TOO_MANY_VIOLATIONS");
}

class RpcTest : public ::testing::Test {
 protected:
  void Start(const std::string& token, const rpc::TlsFiles& tls = {}) {
    coordinator_ = std::make_unique<coordinator::Coordinator>(
        coordinator::CoordinatorOptions(), nullptr, std::make_shared<testing::FakeConnector>());
    service_ = std::make_unique<coordinator::CoordinatorService>(coordinator_.get(),
                                                                 rpc::BearerToken(token));
    GrpcServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tls = tls;
    options.max_receive_message_bytes = 64 * 1024;
    options.services = {service_.get()};
    options.ready_service = "gptbuilder.v1.Coordinator";
    options.metrics = &metrics_;
    auto server = GrpcServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  std::unique_ptr<gptbuilder::v1::Coordinator::Stub> Stub(
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials()) {
    return gptbuilder::v1::Coordinator::NewStub(rpc::MakeChannel(address_, credentials));
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  Metrics metrics_{"coordinator"};
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::unique_ptr<coordinator::CoordinatorService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::string address_;
};

TEST_F(RpcTest, InvalidConfigCarriesEveryFieldViolationOnTheWire) {
  Start("");
  gptbuilder::v1::ValidateConfigRequest request;
  *request.mutable_config() = testing::TinyGpt(3, 1);
  request.mutable_config()->mutable_transformer()->set_hidden_size(66);
  gptbuilder::v1::ValidateConfigResponse response;
  grpc::ClientContext context;
  Deadline(&context);
  grpc::Status status = Stub()->ValidateConfig(&context, request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(status.error_details()));
  google::rpc::BadRequest bad_request;
  bool found = false;
  for (const auto& detail : rpc.details()) {
    if (detail.type_url() == config::kBadRequestTypeUrl) {
      found = bad_request.ParseFromString(detail.value());
    }
  }
  ASSERT_TRUE(found);
  EXPECT_GE(bad_request.field_violations_size(), 2);
}

// The field violations of a failed call, "field: description" each.
std::vector<std::string> WireViolations(const grpc::Status& status) {
  std::vector<std::string> out;
  for (const config::FieldViolation& v :
       config::ViolationsFromStatus(rpc::FromGrpcStatus(status))) {
    out.push_back(v.field + ": " + v.description);
  }
  return out;
}

std::string ReadTestFile(const std::string& relative) {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(RpcTest, ConfigTextInEveryFormatIsParsedByTheServer) {
  Start("");
  const std::string yaml = ReadTestFile("examples/tiny-llama.yaml");
  ASSERT_FALSE(yaml.empty());
  struct Case {
    std::string name, text, format;
    int64_t layers, hidden;
  };
  const std::vector<Case> cases = {
      {"yaml", yaml, "", 4, 64},
      {"yaml named", yaml, "yaml", 4, 64},
      {"json", R"({"transformer": {"num_layers": 3, "hidden_size": 32, "num_attention_heads": 4},
                   "vocab_size": 500, "build": {"seed": 7}})",
       "", 3, 32},
      {"textproto",
       "transformer { num_layers: 2 hidden_size: 48 num_attention_heads: 4 }\n"
       "vocab_size: 300\nbuild { seed: 7 }\n",
       "textproto", 2, 48},
      // A Hugging Face config.json, imported (GPT-2 small).
      {"hf", ReadTestFile("tests/unit/config/testdata/gpt2.json"), "", 12, 768},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    gptbuilder::v1::ValidateConfigRequest request;
    request.mutable_config_text()->set_text(c.text);
    request.mutable_config_text()->set_format(c.format);
    gptbuilder::v1::ValidateConfigResponse response;
    grpc::ClientContext context;
    Deadline(&context);
    grpc::Status status = Stub()->ValidateConfig(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.config().transformer().num_layers(), c.layers);
    EXPECT_EQ(response.config().transformer().hidden_size(), c.hidden);
    if (c.name == "json" || c.name == "textproto") {
      EXPECT_EQ(response.build().seed(), 7);
    }

    // The same text with overrides, through PlanModel: later overrides win, dotted paths reach
    // the ddp and build sections.
    gptbuilder::v1::PlanModelRequest plan_request;
    *plan_request.mutable_config_text() = request.config_text();
    plan_request.mutable_config_text()->add_overrides("num_layers=8");
    plan_request.mutable_config_text()->add_overrides("transformer.num_layers=6");
    plan_request.mutable_config_text()->add_overrides("transformer.pipeline_model_parallel_size=2");
    plan_request.mutable_config_text()->add_overrides("build.seed=11");
    gptbuilder::v1::PlanDescription plan;
    grpc::ClientContext plan_context;
    Deadline(&plan_context);
    status = Stub()->PlanModel(&plan_context, plan_request, &plan);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(plan.world_size(), 2);
    int64_t layers = 0;
    for (const auto& stage : plan.stages()) layers += stage.layers_size();
    EXPECT_EQ(layers, 6);
  }
}

TEST_F(RpcTest, ConfigTextProblemsNameTheFieldOrLine) {
  Start("");
  auto validate = [&](const gptbuilder::v1::ValidateConfigRequest& request) {
    gptbuilder::v1::ValidateConfigResponse response;
    grpc::ClientContext context;
    Deadline(&context);
    return Stub()->ValidateConfig(&context, request, &response);
  };
  // Every loader problem at once, on field paths.
  gptbuilder::v1::ValidateConfigRequest request;
  request.mutable_config_text()->set_text(
      "transformer:\n  num_layerz: 2\n  hidden_size: wide\nvocab_sise: 10\n");
  grpc::Status status = validate(request);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<std::string> violations = WireViolations(status);
  EXPECT_THAT(violations, ::testing::Contains(::testing::StartsWith("transformer.num_layerz:")));
  EXPECT_THAT(violations, ::testing::Contains(::testing::StartsWith("transformer.hidden_size:")));
  EXPECT_THAT(violations, ::testing::Contains(::testing::StartsWith("vocab_sise:")));

  // A syntax error names the source and the line.
  request.mutable_config_text()->set_text("transformer:\n  num_layers: [2\nvocab_size: 10\n");
  request.mutable_config_text()->set_source_name("my.yaml");
  status = validate(request);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message() + ::testing::PrintToString(WireViolations(status)),
              ::testing::AllOf(::testing::HasSubstr("my.yaml"), ::testing::HasSubstr("line")));

  // A bad override names its key; an unknown format and both forms at once are refused.
  request.mutable_config_text()->set_text(ReadTestFile("examples/tiny-llama.yaml"));
  request.mutable_config_text()->add_overrides("num_layerss=3");
  request.mutable_config_text()->set_format("toml");
  *request.mutable_config() = testing::TinyGpt(2, 1);
  status = validate(request);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  violations = WireViolations(status);
  EXPECT_THAT(violations, ::testing::Contains(::testing::StartsWith("config: set either")));
  EXPECT_THAT(violations, ::testing::Contains(::testing::StartsWith("config_text.format:")));
  request.clear_config();
  request.mutable_config_text()->clear_format();
  status = validate(request);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(WireViolations(status), ::testing::Contains(::testing::HasSubstr("num_layerss")));

  // More overrides than a config needs are refused before any is applied.
  for (int i = 0; i <= config::kMaxConfigOverrides; ++i) {
    request.mutable_config_text()->add_overrides("num_layers=2");
  }
  status = validate(request);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(WireViolations(status),
              ::testing::Contains(::testing::StartsWith("config_text.overrides:")));

  // BuildModel takes the same text (validate_only: nothing is placed).
  gptbuilder::v1::BuildModelRequest build;
  build.set_name("from-text");
  build.set_validate_only(true);
  build.mutable_config_text()->set_text("transformer: {num_layers: 0}\n");
  google::longrunning::Operation op;
  grpc::ClientContext context;
  Deadline(&context);
  status = Stub()->BuildModel(&context, build, &op);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(WireViolations(status),
              ::testing::Contains(::testing::StartsWith("transformer.num_layers:")));
}

TEST_F(RpcTest, MutatingMethodsNeedTheBearerToken) {
  Start("s3cret");
  gptbuilder::v1::BuildModelRequest request;
  request.set_name("m");
  *request.mutable_config() = testing::TinyGpt(1, 1);
  google::longrunning::Operation op;
  {
    grpc::ClientContext context;
    Deadline(&context);
    EXPECT_EQ(Stub()->BuildModel(&context, request, &op).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    rpc::BearerToken("wrong").Attach(&context);
    EXPECT_EQ(Stub()->BuildModel(&context, request, &op).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    rpc::BearerToken("s3cret").Attach(&context);
    // Authenticated: now it fails for the real reason (no workers).
    EXPECT_EQ(Stub()->BuildModel(&context, request, &op).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    // Reads need no token.
    grpc::ClientContext context;
    Deadline(&context);
    gptbuilder::v1::ListModelsResponse models;
    EXPECT_TRUE(Stub()->ListModels(&context, {}, &models).ok());
  }
}

TEST_F(RpcTest, OversizedRequestsAreRefused) {
  Start("");
  gptbuilder::v1::ValidateConfigRequest request;
  *request.mutable_config() = testing::TinyGpt(1, 1);
  request.mutable_config()->set_hf_model_id(std::string(200 * 1024, 'x'));
  gptbuilder::v1::ValidateConfigResponse response;
  grpc::ClientContext context;
  Deadline(&context);
  EXPECT_EQ(Stub()->ValidateConfig(&context, request, &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(RpcTest, HealthSeparatesLiveFromReady) {
  Start("");
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  auto check = [&](const std::string& service) {
    grpc::ClientContext context;
    Deadline(&context);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_TRUE(health->Check(&context, request, &response).ok());
    return response.status();
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("gptbuilder.v1.Coordinator"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  server_->SetReady(true);
  EXPECT_EQ(check("gptbuilder.v1.Coordinator"), grpc::health::v1::HealthCheckResponse::SERVING);
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo through the generic stub (its
// generated messages live inside libgrpc++_reflection and cannot be generated twice):
// ServerReflectionRequest{list_services: ""} is the bytes 0x3a 0x00.
TEST_F(RpcTest, ReflectionListsTheServices) {
  Start("");
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  Deadline(&context);
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto next = [&cq](intptr_t expected) {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == expected && ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(next(1));
  const std::string request("\x3a\x00", 2);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  ASSERT_TRUE(next(2));
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  ASSERT_TRUE(next(3));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string response;
  for (const grpc::Slice& s : slices) response.append(s.begin(), s.end());
  EXPECT_THAT(response, HasSubstr("gptbuilder.v1.Coordinator"));
  EXPECT_THAT(response, HasSubstr("grpc.health.v1.Health"));
  call->WritesDone(reinterpret_cast<void*>(4));
  next(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  next(5);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(RpcTest, EveryRpcIsCountedByMethodAndCode) {
  Start("");
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    Deadline(&context);
    gptbuilder::v1::Model model;
    gptbuilder::v1::GetModelRequest request;
    request.set_name("missing");
    EXPECT_EQ(Stub()->GetModel(&context, request, &model).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  const std::string text = metrics_.Scrape();
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"NOT_FOUND\",grpc_method="
                              "\"GetModel\",grpc_service=\"gptbuilder.v1.Coordinator\",grpc_type="
                              "\"unary\"} 3"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_count{grpc_method=\"GetModel\""));
  EXPECT_THAT(text, HasSubstr("gptb_build_info{"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes"));
}

// Over real gRPC: an answer with many violations and one echoing a 10 MB name both reach the
// client as INVALID_ARGUMENT with their details.
TEST_F(RpcTest, LargeErrorsReachTheClient) {
  Start("");
  {
    grpc::ClientContext context;
    Deadline(&context);
    gptbuilder::v1::ValidateConfigRequest request;
    *request.mutable_config() = testing::TinyGpt(1, 1);
    auto* t = request.mutable_config()->mutable_transformer();
    t->set_num_moe_experts(4);
    t->set_num_layers(1000);
    for (int i = 0; i < 1000; ++i) t->add_moe_layer_freq(7);
    gptbuilder::v1::ValidateConfigResponse response;
    grpc::Status status = Stub()->ValidateConfig(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_GE(config::ViolationsFromStatus(rpc::FromGrpcStatus(status)).size(), 5u);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    gptbuilder::v1::BuildModelRequest request;
    request.set_name(std::string(50000, 'a'));  // the server here takes 64 KiB requests
    *request.mutable_config() = testing::TinyGpt(1, 1);
    google::longrunning::Operation op;
    grpc::Status status = Stub()->BuildModel(&context, request, &op);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 1024u);
  }
}

// Method names are whatever a client sends: unknown ones share one series (issue 13: 3,000 random
// names grew /metrics from 141 KB to 19.5 MB).
TEST_F(RpcTest, UnknownMethodNamesShareOneSeries) {
  Start("");
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    Deadline(&context);
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    grpc::Status status;
    std::mutex mu;
    std::condition_variable done;
    bool finished = false;
    stub.UnaryCall(&context, "/evil.Service" + std::to_string(i) + "/Method" + std::to_string(i),
                   grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
                     std::lock_guard<std::mutex> lock(mu);
                     status = s;
                     finished = true;
                     done.notify_all();
                   });
    std::unique_lock<std::mutex> lock(mu);
    done.wait(lock, [&] { return finished; });
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  const std::string text = metrics_.Scrape();
  EXPECT_THAT(text, Not(HasSubstr("evil.Service")));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"UNIMPLEMENTED\",grpc_method="
                              "\"unknown\",grpc_service=\"unknown\""));
  EXPECT_THAT(text,
              ContainsRegex(
                  "grpc_method=\"unknown\",grpc_service=\"unknown\",grpc_type=\"[a-z_]+\"[}] 20"));
}

// Writes a CA, a server certificate for 127.0.0.1 and a client certificate with openssl.
class TlsFixture {
 public:
  TlsFixture() {
    dir_ = std::filesystem::temp_directory_path() /
           ("gptb_tls_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string script =
        "cd " + d +
        " && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=gptb-test-ca 2>/dev/null && "
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
        "for n in server client; do "
        "openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n "
        "2>/dev/null && "
        "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem "
        "-days 1 -extfile san.ext 2>/dev/null; done";
    ok_ = std::system(script.c_str()) == 0;
  }
  ~TlsFixture() { std::filesystem::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
  bool ok_ = false;
};

TEST_F(RpcTest, MutualTlsAcceptsOnlyClientsWithACertificate) {
  TlsFixture tls;
  ASSERT_TRUE(tls.ok());
  Start("", {tls.Path("server.pem"), tls.Path("server.key"), tls.Path("ca.pem"), ""});
  auto list = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    gptbuilder::v1::ListModelsResponse response;
    return Stub(credentials)->ListModels(&context, {}, &response);
  };
  auto with_cert = rpc::MakeChannelCredentials(
      {tls.Path("client.pem"), tls.Path("client.key"), tls.Path("ca.pem"), ""});
  ASSERT_TRUE(with_cert.ok()) << with_cert.status();
  EXPECT_TRUE(list(*with_cert).ok());
  auto without_cert = rpc::MakeChannelCredentials({"", "", tls.Path("ca.pem"), ""});
  ASSERT_TRUE(without_cert.ok());
  EXPECT_FALSE(list(*without_cert).ok());
  EXPECT_FALSE(list(grpc::InsecureChannelCredentials()).ok());
}

// --tls-client-auth none: TLS under a private CA without client certificates (issue 13). The CA
// still verifies the server: a client trusting another CA is refused.
TEST_F(RpcTest, ServerOnlyTlsWithAPrivateCaNeedsNoClientCertificate) {
  TlsFixture tls;
  ASSERT_TRUE(tls.ok());
  Start("", {tls.Path("server.pem"), tls.Path("server.key"), tls.Path("ca.pem"), "none"});
  auto list = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    gptbuilder::v1::ListModelsResponse response;
    return Stub(credentials)->ListModels(&context, {}, &response);
  };
  auto without_cert = rpc::MakeChannelCredentials({"", "", tls.Path("ca.pem"), ""});
  ASSERT_TRUE(without_cert.ok());
  EXPECT_TRUE(list(*without_cert).ok());
  // The server certificate is not a CA: trusting it instead of the CA fails verification.
  auto wrong_ca = rpc::MakeChannelCredentials({"", "", tls.Path("client.pem"), ""});
  ASSERT_TRUE(wrong_ca.ok());
  EXPECT_FALSE(list(*wrong_ca).ok());
  EXPECT_FALSE(list(grpc::InsecureChannelCredentials()).ok());
  auto bad = rpc::MakeServerCredentials(
      {tls.Path("server.pem"), tls.Path("server.key"), tls.Path("ca.pem"), "optional"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--tls-client-auth"));
}

TEST(CredentialsTest, MisconfiguredTlsIsAnErrorNamingTheFlag) {
  auto missing = rpc::MakeServerCredentials({"/nonexistent.pem", "/nonexistent.key", "", ""});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("--tls-cert"));
  EXPECT_FALSE(rpc::MakeServerCredentials({"cert.pem", "", "", ""}).ok());
  EXPECT_FALSE(rpc::MakeServerCredentials({"", "", "ca.pem", ""}).ok());
}

TEST(BearerTokenTest, LoadsFromAFileOrTheEnvironment) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("gptb_token_" + std::to_string(::getpid())))
          .string();
  std::ofstream(path) << "  tok-123  \n";
  auto from_file = rpc::BearerToken::Load(path);
  ASSERT_TRUE(from_file.ok());
  EXPECT_TRUE(from_file->enabled());
  std::filesystem::remove(path);
  EXPECT_FALSE(rpc::BearerToken::Load(path).ok());
  ::setenv("GPTB_AUTH_TOKEN", "env-token", 1);
  EXPECT_TRUE(rpc::BearerToken::Load("")->enabled());
  ::unsetenv("GPTB_AUTH_TOKEN");
  EXPECT_FALSE(rpc::BearerToken::Load("")->enabled());
  // Set but blank is refused rather than read as "no authentication" (issue 13).
  ::setenv("GPTB_AUTH_TOKEN", "   \t ", 1);
  auto blank = rpc::BearerToken::Load("");
  ::unsetenv("GPTB_AUTH_TOKEN");
  ASSERT_FALSE(blank.ok());
  EXPECT_THAT(std::string(blank.status().message()), HasSubstr("GPTB_AUTH_TOKEN"));
}

}  // namespace
}  // namespace gptb::server
