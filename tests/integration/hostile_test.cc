// Hostile and careless clients against the real daemons on 127.0.0.1 (issue 13): every request
// is answered within bounded work, checkpoint paths never touch data the service did not write,
// the rendezvous store listens only where the coordinator was told to, and unknown method names
// cannot grow /metrics. Each test reproduces one item of the issue as it was found.
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_status.h"
#include "tests/integration/cluster_fixture.h"

namespace gptb::testing {
namespace {

using gptbuilder::v1::GPTModelConfig;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

constexpr char kSecret[] = "SECRET-7c1f0e-ROOT-PASSWORD-HASH";

GPTModelConfig Tiny() {
  GPTModelConfig c;
  c.set_vocab_size(128);
  c.set_seq_length(16);
  auto* t = c.mutable_transformer();
  t->set_num_layers(2);
  t->set_hidden_size(16);
  t->set_num_attention_heads(2);
  return c;
}

class HostileClientTest : public ClusterTest {
 protected:
  // A call with a deadline; the status as the client sees it.
  grpc::Status Validate(const GPTModelConfig& config, int world_size = 0,
                        std::chrono::seconds deadline = std::chrono::seconds(20)) {
    gptbuilder::v1::ValidateConfigRequest request;
    *request.mutable_config() = config;
    request.set_world_size(world_size);
    gptbuilder::v1::ValidateConfigResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    return client_->stub()->ValidateConfig(&context, request, &response);
  }

  grpc::Status Plan(const GPTModelConfig& config, int world_size,
                    gptbuilder::v1::PlanDescription* response, const std::string& token = "") {
    gptbuilder::v1::PlanModelRequest request;
    *request.mutable_config() = config;
    request.set_world_size(world_size);
    request.set_page_token(token);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return client_->stub()->PlanModel(&context, request, response);
  }

  grpc::Status Build(const GPTModelConfig& config, const std::string& name, bool validate_only,
                     const std::string& load_from = "") {
    gptbuilder::v1::BuildModelRequest request;
    request.set_name(name);
    *request.mutable_config() = config;
    request.set_validate_only(validate_only);
    request.set_load_from(load_from);
    google::longrunning::Operation op;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return client_->stub()->BuildModel(&context, request, &op);
  }

  grpc::Status Save(const std::string& model, const std::string& path, bool overwrite,
                    std::string* message = nullptr) {
    gptbuilder::v1::SaveCheckpointRequest request;
    request.set_model(model);
    request.set_path(path);
    request.set_overwrite(overwrite);
    gptbuilder::v1::SaveCheckpointResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status status = client_->stub()->SaveCheckpoint(&context, request, &response);
    if (message != nullptr) *message = status.error_message();
    return status;
  }

  std::vector<config::FieldViolation> Violations(const grpc::Status& status) {
    return config::ViolationsFromStatus(rpc::FromGrpcStatus(status));
  }

  bool HasViolation(const grpc::Status& status, const std::string& field,
                    const std::string& reason) {
    for (const config::FieldViolation& v : Violations(status)) {
      if (v.field == field && v.reason == reason) return true;
    }
    return false;
  }

  void BuildTiny(const std::string& name) {
    CliResult r = Gptb({"build", Example("tiny-gpt"), "--name", name, "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
};

// Item 1 and the minor ones on sizes: bounded work per request, limits named with their flag.
TEST_F(HostileClientTest, OversizedRequestsAreRefusedBeforeAnyWork) {
  StartCluster(1, 2);
  const pid_t coordinator = cluster_->coordinator().pid();
  const int64_t rss_before = ResidentBytes(coordinator);

  // 10^9 layers grew the coordinator to 23.7 GB until the kernel killed it; 10^6 was UNKNOWN.
  for (int layers : {1000000000, 1000000}) {
    GPTModelConfig c = Tiny();
    c.mutable_transformer()->set_num_layers(layers);
    const grpc::Status s = Validate(c);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_TRUE(HasViolation(s, "transformer.num_layers", "LIMIT_EXCEEDED")) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("--max-num-layers"));
  }
  // World sizes: 10^6 was accepted, -1 silently read as 0.
  EXPECT_TRUE(HasViolation(Validate(Tiny(), 1000000), "world_size", "LIMIT_EXCEEDED"));
  EXPECT_TRUE(HasViolation(Validate(Tiny(), -1), "world_size", "NOT_POSITIVE"));
  // vocab_size 2^62 planned to 208,256 parameters; 2^58 passed validate_only.
  for (int shift : {62, 58}) {
    GPTModelConfig c = Tiny();
    c.set_vocab_size(int64_t{1} << shift);
    const grpc::Status s = Build(c, "huge", /*validate_only=*/true);
    EXPECT_TRUE(HasViolation(s, "vocab_size", "LIMIT_EXCEEDED")) << s.error_message();
  }
  // Within the fixed bounds but far beyond the cluster: refused at admission, not on a worker.
  {
    GPTModelConfig c = Tiny();
    c.set_vocab_size(int64_t{1} << 30);
    c.mutable_transformer()->set_hidden_size(1 << 14);
    c.mutable_transformer()->set_num_attention_heads(128);
    const grpc::Status s = Build(c, "toolarge", /*validate_only=*/true);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  }
  // A 10 MB name is refused with a bounded message the client can receive (it used to see
  // RESOURCE_EXHAUSTED on metadata size instead).
  {
    const grpc::Status s = Build(Tiny(), std::string(10 << 20, 'a'), true);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_TRUE(HasViolation(s, "name", "INVALID_NAME"));
    EXPECT_LT(s.error_message().size(), 4096u);
  }
  // Many violations at once still reach the client, bounded, with their details.
  {
    GPTModelConfig c = Tiny();
    for (int i = 0; i < 2; ++i) c.mutable_transformer()->add_moe_layer_freq(7);
    c.mutable_transformer()->set_num_moe_experts(4);
    auto* t = c.mutable_transformer();
    t->set_hidden_size(-1);
    t->set_num_attention_heads(-1);
    t->set_ffn_hidden_size(-1);
    t->set_kv_channels(-1);
    t->set_num_query_groups(-1);
    c.set_seq_length(-1);
    c.set_rotary_percent(-1);
    t->set_activation_func(std::string(100000, 'z'));
    t->set_normalization(std::string(100000, 'y'));
    const grpc::Status s = Validate(c);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_GE(Violations(s).size(), 5u);
  }
  EXPECT_EQ(cluster_->DeadDaemon(), "");
  // Nothing above grew the coordinator (a generous bound: its RSS is ~50 MB).
  EXPECT_LT(ResidentBytes(coordinator) - rss_before, int64_t{256} << 20);
}

// PlanModel grew with world_size^2 (4000 ranks: 2.2 GB peak; 10000: bad_alloc and a crash).
TEST_F(HostileClientTest, PlansOfHugeWorldsArePagedAndLinear) {
  StartCluster(1, 1);
  const pid_t coordinator = cluster_->coordinator().pid();
  gptbuilder::v1::PlanDescription page;
  ASSERT_TRUE(Plan(Tiny(), 10000, &page).ok());
  EXPECT_EQ(page.world_size(), 10000);
  EXPECT_EQ(page.ranks_size(), 1000);
  EXPECT_EQ(page.next_page_token(), "1000");
  int seen = page.ranks_size();
  std::string token = page.next_page_token();
  while (!token.empty()) {
    gptbuilder::v1::PlanDescription next;
    ASSERT_TRUE(Plan(Tiny(), 10000, &next, token).ok());
    EXPECT_EQ(next.ranks(0).rank(), seen);
    seen += next.ranks_size();
    token = next.next_page_token();
  }
  EXPECT_EQ(seen, 10000);
  EXPECT_LT(ResidentBytes(coordinator), int64_t{512} << 20);
  gptbuilder::v1::PlanDescription bad;
  EXPECT_EQ(Plan(Tiny(), 10000, &bad, "not-a-token").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Item 9: 3,000 calls to random unknown methods grew /metrics from 141 KB to 19.5 MB.
TEST_F(HostileClientTest, UnknownMethodNamesDoNotGrowMetrics) {
  StartCluster(1, 1);
  auto channel =
      grpc::CreateChannel(cluster_->coordinator_address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  std::mt19937 rng(7);
  auto call_unknown_methods = [&](int calls) {
    for (int i = 0; i < calls; ++i) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      grpc::Slice empty("");
      grpc::ByteBuffer request(&empty, 1), response;
      std::mutex mu;
      std::condition_variable done;
      bool finished = false;
      stub.UnaryCall(&context, absl::StrCat("/x", rng(), ".S/M", rng()), grpc::StubOptions(),
                     &request, &response, [&](grpc::Status) {
                       std::lock_guard<std::mutex> lock(mu);
                       finished = true;
                       done.notify_all();
                     });
      std::unique_lock<std::mutex> lock(mu);
      done.wait(lock, [&] { return finished; });
    }
  };
  // Lines of series labelled with the unknown method (the workers' registration and heartbeats
  // add series of their own whenever they come, so the page's size is no measure under load).
  auto unknown_series = [](const std::string& page) {
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(page, '\n')) {
      if (absl::StrContains(line, "grpc_method=\"unknown\"")) ++lines;
    }
    return lines;
  };
  call_unknown_methods(30);
  const std::string before = Scrape(cluster_->coordinator_metrics());
  call_unknown_methods(270);
  const std::string after = Scrape(cluster_->coordinator_metrics());
  EXPECT_GT(unknown_series(before), 0);
  EXPECT_EQ(unknown_series(after), unknown_series(before));
  EXPECT_THAT(after, Not(HasSubstr(".S/M")));
}

// Item 2: SaveCheckpoint deleted data it did not write.
TEST_F(HostileClientTest, SavesNeverTouchDataTheyDidNotWrite) {
  StartCluster(1, 2);
  BuildTiny("m");
  const std::string d = dir_.path();
  // overwrite=true on an ordinary directory and an ordinary file: refused, untouched.
  fs::create_directories(d + "/data");
  Write(d + "/data/keep.txt", "mine");
  Write(d + "/file", "mine");
  std::string message;
  EXPECT_EQ(Save("m", d + "/data", true, &message).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION)
      << message;
  EXPECT_EQ(ReadFile(d + "/data/keep.txt"), "mine");
  EXPECT_EQ(Save("m", d + "/file", true).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ReadFile(d + "/file"), "mine");
  // Neighbours named like the old staging and backup directories survive a save.
  fs::create_directories(d + "/ck.partial");
  Write(d + "/ck.partial/keep.txt", "mine");
  fs::create_directories(d + "/ck.old");
  Write(d + "/ck.old/keep.txt", "mine");
  // The partial of a save that crashed here (its lock free) goes with the next save here.
  const std::string crashed = d + "/.ck0.gptb-partial-00000000000000cc";
  fs::create_directories(crashed);
  Write(crashed + "/.gptb-save.lock", "");
  Write(crashed + "/model.safetensors", "half a file");
  ASSERT_TRUE(Save("m", d + "/ck", false, &message).ok()) << message;
  EXPECT_FALSE(fs::exists(crashed));
  ASSERT_TRUE(Save("m", d + "/ck", true, &message).ok()) << message;  // ours: replaced
  EXPECT_EQ(ReadFile(d + "/ck.partial/keep.txt"), "mine");
  EXPECT_EQ(ReadFile(d + "/ck.old/keep.txt"), "mine");
  // x/../ck created x.
  EXPECT_EQ(Save("m", d + "/x/../ck2", false).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(fs::exists(d + "/x"));
  // A failed save leaves the model READY.
  CliResult train = Gptb({"train", "m", "--steps", "1", "--lr", "0.001"});
  EXPECT_EQ(train.exit_code, 0) << train.out << train.err;
}

// Item 3: load_from read arbitrary files into error messages and a FIFO hung a handler.
TEST_F(HostileClientTest, LoadFromNeverEchoesFilesOrHangsOnAFifo) {
  StartCluster(1, 1);
  const std::string d = dir_.path();
  Write(d + "/shadow", std::string("root:") + kSecret + ":19000:0:99999:7:::\n");
  grpc::Status s = Build(Tiny(), "a", false, d + "/shadow");
  EXPECT_NE(s.error_code(), grpc::StatusCode::OK);
  EXPECT_THAT(s.error_message(), Not(HasSubstr(kSecret)));
  fs::create_directories(d + "/json");
  Write(d + "/json/model.safetensors.index.json", std::string("{\"") + kSecret + "\" oops");
  s = Build(Tiny(), "b", false, d + "/json");
  EXPECT_NE(s.error_code(), grpc::StatusCode::OK);
  EXPECT_THAT(s.error_message(), Not(HasSubstr(kSecret)));
  ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0600), 0);
  fs::create_directories(d + "/fifodir");
  ASSERT_EQ(::mkfifo((d + "/fifodir/model.safetensors").c_str(), 0600), 0);
  for (int i = 0; i < 5; ++i) {
    for (const std::string& path : {d + "/fifo", d + "/fifodir"}) {
      s = Build(Tiny(), "c", false, path);
      // Refused, not DEADLINE_EXCEEDED after the handler blocked in open().
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << path << ": " << s.error_message();
    }
  }
  EXPECT_TRUE(Validate(Tiny()).ok());
}

// --checkpoint-root: saves and loads resolve inside it after symlinks; an unset root is said.
TEST_F(HostileClientTest, ACheckpointRootConfinesSavesAndLoads) {
  const std::string root = dir_.path() + "/root";
  fs::create_directories(root);
  fs::create_directories(dir_.path() + "/outside");
  fs::create_directory_symlink(dir_.path() + "/outside", root + "/escape");
  StartCluster(1, 2, {"--checkpoint-root", root}, "8s", {"--checkpoint-root", root});
  BuildTiny("m");
  std::string message;
  EXPECT_EQ(Save("m", dir_.path() + "/elsewhere", false).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(fs::exists(dir_.path() + "/elsewhere"));
  const grpc::Status escaped = Save("m", root + "/escape/ck", false, &message);
  EXPECT_EQ(escaped.error_code(), grpc::StatusCode::PERMISSION_DENIED) << message;
  EXPECT_FALSE(fs::exists(dir_.path() + "/outside/ck"));
  ASSERT_TRUE(Save("m", root + "/ck", false, &message).ok()) << message;
  EXPECT_EQ(Build(Tiny(), "n", false, "/etc/passwd").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(Logs(), HasSubstr("checkpoint root " + fs::canonical(root).string()));
}

TEST_F(HostileClientTest, AnUnsetRootIsSaidAtStartUp) {
  StartCluster(1, 1);
  EXPECT_THAT(Logs(), HasSubstr("no --checkpoint-root"));
}

// A save killed on the rank-0 worker left a 1.2 GB <path>.partial forever: a worker starting
// with a checkpoint root removes partials nobody holds the lock of.
TEST_F(HostileClientTest, AWorkerStartRemovesPartialsOfCrashedSaves) {
  const std::string root = dir_.path() + "/root";
  fs::create_directories(root + "/runs/.ck.gptb-partial-00000000000000aa");
  Write(root + "/runs/.ck.gptb-partial-00000000000000aa/.gptb-save.lock", "");
  Write(root + "/runs/.ck.gptb-partial-00000000000000aa/model.safetensors", "half a file");
  fs::create_directories(root + "/runs/.not-ours.gptb-partial-00000000000000bb");  // no lock
  StartCluster(1, 1, {"--checkpoint-root", root});
  EXPECT_FALSE(fs::exists(root + "/runs/.ck.gptb-partial-00000000000000aa"));
  EXPECT_TRUE(fs::exists(root + "/runs/.not-ours.gptb-partial-00000000000000bb"));
}

// Whitespace-only GPTB_AUTH_TOKEN disabled auth silently; now the daemon refuses to start.
TEST_F(HostileClientTest, ABlankTokenIsRefusedAtStart) {
  const std::string command =
      absl::StrCat("GPTB_AUTH_TOKEN='   ' ", Quote(BinDir() + "/gptbd"),
                   " coordinator --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >", dir_.path(),
                   "/out 2>", dir_.path(), "/err");
  const int status = std::system(command.c_str());
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_THAT(ReadFile(dir_.path() + "/err"), HasSubstr("GPTB_AUTH_TOKEN"));
}

// The rendezvous store's port, from the coordinator's ready file.
int StorePort(const std::string& dir) {
  const std::string text = ReadFile(dir + "/coordinator-0.json");
  const size_t at = text.find("\"store\"");
  if (at == std::string::npos) return -1;
  const size_t colon = text.find(':', text.find(':', at) + 1);
  return std::atoi(text.c_str() + text.find(':', colon) + 1);
}

// Item 6: the c10d TCPStore listened on all interfaces and never deleted a build's keys.
TEST_F(HostileClientTest, TheStoreListensOnTheCoordinatorsAddressAndForgetsBuilds) {
  StartCluster(1, 2);
  const int port = StorePort(dir_.path());
  ASSERT_GT(port, 0);
  // /proc/net/tcp lists the local address of every listening socket: 0100007F is 127.0.0.1.
  bool found = false;
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  const std::string hex_port = absl::StrFormat(":%04X ", port);
  while (std::getline(tcp, line)) {
    const size_t at = line.find(hex_port);
    if (at == std::string::npos || at > 20 || line.find(" 0A ") == std::string::npos) continue;
    found = true;
    EXPECT_THAT(line, HasSubstr("0100007F" + hex_port)) << line;
  }
  EXPECT_TRUE(found) << "no listening socket on the store's port " << port;
  // The store's keys after two builds and a release are what they were before.
  auto keys = [&] {
    const std::string script =
        absl::StrCat("import datetime, torch.distributed as d; s = d.TCPStore('127.0.0.1', ", port,
                     ", is_master=False, timeout=datetime.timedelta(seconds=10)); "
                     "print(len([k for k in s.list_keys() if k.startswith('gptb/')]))");
    FILE* pipe = popen(absl::StrCat(GPTB_PYTHON, " -c ", Quote(script), " 2>&1").c_str(), "r");
    std::string out;
    char buffer[256];
    while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
    if (pipe != nullptr) pclose(pipe);
    return out;
  };
  CliResult r = Gptb({"build", Example("tiny-gpt"), "--name", "a", "--wait", "--set",
                      "tensor_model_parallel_size=2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // (Before this change the two ranks' rendezvous left 20 keys under gptb/.)
  EXPECT_EQ(keys(), "0\n");
  // The held model still trains: nothing it needs was in the deleted keys.
  r = Gptb({"train", "a", "--steps", "1", "--lr", "0.001"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// Item 5: `build med; sleep 0.3; release; build tiny --wait` failed with "slot 0 is still running
// rank 0 of model 'r' ... retry shortly" though other slots were free (3/3 runs).
TEST_F(HostileClientTest, ABuildRightAfterReleasingABuildingModelSucceeds) {
  StartCluster(1, 2);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string name = absl::StrCat("r", attempt);
    CliResult r = Gptb({"build", Example("tiny-llama"), "--name", name, "--set",
                        "tensor_model_parallel_size=2", "--set", "hidden_size=1024", "--set",
                        "num_layers=16", "--set", "ffn_hidden_size=4096"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    r = Gptb({"release", name});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = Gptb({"build", Example("tiny-gpt"), "--name", absl::StrCat("a", attempt), "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = Gptb({"release", absl::StrCat("a", attempt)});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
}

// Item 4: TrainStep had no bounds and no abort, and a mistyped data_path failed the model.
TEST_F(HostileClientTest, TrainStepsAreBoundedAbortableAndRejectionsKeepTheModel) {
  StartCluster(1, 2);
  BuildTiny("m");
  auto step = [&](int mbs, int num_mb, const std::string& data_path,
                  std::chrono::milliseconds deadline) {
    gptbuilder::v1::TrainStepRequest request;
    request.set_model("m");
    request.set_steps(1);
    if (data_path.empty()) {
      request.mutable_batch()->set_synthetic_seed(1);
    } else {
      request.mutable_batch()->set_data_path(data_path);
    }
    request.mutable_options()->set_micro_batch_size(mbs);
    request.mutable_options()->set_num_micro_batches(num_mb);
    request.mutable_options()->mutable_optimizer()->set_lr(1e-3);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    auto reader = client_->stub()->TrainStep(&context, request);
    gptbuilder::v1::TrainStepResult result;
    while (reader->Read(&result)) {
    }
    return reader->Finish();
  };
  auto state = [&] {
    grpc::ClientContext context;
    gptbuilder::v1::GetModelRequest request;
    request.set_name("m");
    gptbuilder::v1::Model model;
    grpc::Status s = client_->stub()->GetModel(&context, request, &model);
    return s.ok() ? model.state() : gptbuilder::v1::Model::STATE_UNSPECIFIED;
  };
  const std::chrono::seconds long_deadline(60);
  grpc::Status s = step(1, 2147483647, "", long_deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = step(1000000000, 1, "", long_deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("micro_batch_size"));
  s = step(1, 1, dir_.path() + "/no-such-dataset", long_deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(state(), gptbuilder::v1::Model::READY);
  s = step(1, 1, "", long_deadline);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // A long step whose deadline passes is aborted, not run on for minutes: the handler answers
  // soon after the deadline and the model (its ranks now out of step) is released.
  const auto start = std::chrono::steady_clock::now();
  s = step(16, 2000, "", std::chrono::milliseconds(1500));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  for (int i = 0; i < 200 && state() == gptbuilder::v1::Model::READY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(state(), gptbuilder::v1::Model::READY);
  // (No timing assertion; the abort is what lets the next build have the slots.)
  (void)start;
  CliResult r = Gptb({"release", "m"});
  r = Gptb({"build", Example("tiny-gpt"), "--name", "m2", "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(HostileClientTest, ReleaseAbortsARunningTrainStep) {
  StartCluster(1, 2);
  BuildTiny("m");
  std::thread trainer([&] {
    CliResult r = Gptb({"train", "m", "--steps", "100000", "--lr", "0.001", "--micro-batch-size",
                        "16", "--micro-batches", "64"});
    EXPECT_NE(r.exit_code, 0);
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  CliResult r = Gptb({"release", "m"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  trainer.join();
  r = Gptb({"build", Example("tiny-gpt"), "--name", "m2", "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// Item 8: admission counts the optimizer state when training is requested.
TEST_F(HostileClientTest, AdmissionForTrainingCountsTheOptimizerState) {
  // The plan's bytes for rank 0, from `gptb plan` (no server needed).
  const std::string config = dir_.path() + "/tiny.yaml";
  Write(config,
        "vocab_size: 128\nseq_length: 16\ntransformer:\n  num_layers: 2\n  hidden_size: 16\n"
        "  num_attention_heads: 2\n");
  CliResult plan = RunGptb({"plan", config, "--format", "json"}, dir_.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const nlohmann::json bytes = nlohmann::json::parse(plan.out)["ranks"][0]["bytes"];
  const int64_t state = bytes["params"].get<int64_t>() + bytes["grads"].get<int64_t>();
  const int64_t with_optimizer = bytes["total"].get<int64_t>();
  ASSERT_GT(with_optimizer, state);
  // A slot between the two: the model fits for inference, not for training.
  StartCluster(1, 1, {"--slot-memory-bytes", absl::StrCat((state + with_optimizer) / 2)});
  gptbuilder::v1::BuildModelRequest request;
  request.set_name("m");
  *request.mutable_config() = Tiny();
  request.set_validate_only(true);
  google::longrunning::Operation op;
  {
    grpc::ClientContext context;
    const grpc::Status s = client_->stub()->BuildModel(&context, request, &op);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  request.set_for_training(true);
  {
    grpc::ClientContext context;
    EXPECT_EQ(client_->stub()->BuildModel(&context, request, &op).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
}

// Minor items: LOST workers leave ListWorkers; a FAILED model shows no held bytes.
TEST_F(HostileClientTest, LostWorkersAreForgottenAndFailedModelsHoldNothing) {
  StartCluster(2, 1, {}, "8s", {"--lost-worker-retention", "1s"});
  CliResult r = Gptb({"build", Example("tiny-gpt"), "--name", "m", "--wait", "--set",
                      "tensor_model_parallel_size=2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  cluster_->worker(1).Signal(SIGKILL);
  auto model = [&] {
    grpc::ClientContext context;
    gptbuilder::v1::GetModelRequest request;
    request.set_name("m");
    gptbuilder::v1::Model m;
    client_->stub()->GetModel(&context, request, &m);
    return m;
  };
  auto workers = [&] {
    grpc::ClientContext context;
    gptbuilder::v1::ListWorkersResponse response;
    client_->stub()->ListWorkers(&context, {}, &response);
    return response.workers_size();
  };
  for (int i = 0; i < 100 && model().state() != gptbuilder::v1::Model::FAILED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(model().state(), gptbuilder::v1::Model::FAILED);
  EXPECT_EQ(model().held_bytes(), 0);
  for (int i = 0; i < 100 && workers() != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(workers(), 1);
}

}  // namespace
}  // namespace gptb::testing
