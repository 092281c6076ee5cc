// Black-box tests of the real daemons: `gptbd coordinator` and `gptbd worker` processes on
// 127.0.0.1 with free ports, driven through `gptb` and the gRPC API.
#include <sched.h>
#include <signal.h>

#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "core/config/config_emitter.h"
#include "core/config/config_loader.h"
#include "core/config/overrides.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_status.h"
#include "rpc/status_details.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// A Llama-style model of ~50M parameters: big enough for RSS to show, small enough to build in
// seconds on CPU.
constexpr char kMediumConfig[] = R"(transformer:
  num_layers: 4
  hidden_size: 512
  num_attention_heads: 8
  num_query_groups: 4
  ffn_hidden_size: 2048
  normalization: RMSNorm
  activation_func: silu
  gated_linear_unit: true
  add_bias_linear: false
  tensor_model_parallel_size: 2
  pipeline_model_parallel_size: 2
vocab_size: 32000
seq_length: 256
position_embedding_type: rope
transformer_layer_spec: local
)";

std::vector<std::string> Tp2Pp2() {
  return {"--set", "tensor_model_parallel_size=2", "--set", "pipeline_model_parallel_size=2"};
}

class CoordinatorClusterTest : public ClusterTest {
 protected:
  std::string WriteConfig(const std::string& name, const std::string& text) {
    const std::string path = dir_.path() + "/" + name + ".yaml";
    std::ofstream(path) << text;
    return path;
  }

  // `gptb build CONFIG ... --name NAME --wait`, expecting READY.
  void BuildReady(const std::string& config, const std::string& name,
                  std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"build", config, "--name", name, "--wait"};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Gptb(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("READY"));
  }

  gptbuilder::v1::Model GetModel(const std::string& name, grpc::Status* status) {
    gptbuilder::v1::GetModelRequest request;
    request.set_name(name);
    gptbuilder::v1::Model model;
    *status = client_->stub()->GetModel(client_->Context().get(), request, &model);
    return model;
  }

  // Polls until `done(model)` or the timeout; returns the last model seen.
  template <typename Pred>
  gptbuilder::v1::Model WaitModel(const std::string& name, absl::Duration timeout, Pred done) {
    const absl::Time deadline = absl::Now() + timeout;
    gptbuilder::v1::Model model;
    while (absl::Now() < deadline) {
      grpc::Status status;
      model = GetModel(name, &status);
      if (status.ok() && done(model)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return model;
  }

  // `gptb plan CONFIG --set K=V... --format json`, computed locally.
  Json PlanJson(const std::string& config_path, const std::vector<std::string>& sets) {
    std::vector<std::string> args = {"plan", config_path, "--format", "json"};
    for (const std::string& set : sets) {
      args.push_back("--set");
      args.push_back(set);
    }
    CliResult r = Gptb(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out);
  }
};

TEST_F(CoordinatorClusterTest, TinyConfigsBuildAndDescribeEqualsPlan) {
  StartCluster();
  for (const std::string example : {"tiny-gpt", "tiny-llama", "tiny-moe"}) {
    SCOPED_TRACE(example);
    BuildReady(Example(example), example, Tp2Pp2());
    CliResult described = Gptb({"describe", example, "--format", "json"});
    ASSERT_EQ(described.exit_code, 0) << described.err;
    const Json held = Json::parse(described.out);
    const Json plan = PlanJson(Example(example),
                               {"tensor_model_parallel_size=2", "pipeline_model_parallel_size=2"});
    EXPECT_EQ(held["padded_vocab_size"], plan["padded_vocab_size"]);
    EXPECT_EQ(held["world_size"], plan["world_size"]);
    ASSERT_EQ(held["stages"].size(), plan["stages"].size());
    for (size_t i = 0; i < plan["stages"].size(); ++i) {
      const Json& h = held["stages"][i];
      const Json& p = plan["stages"][i];
      // Describe carries every key the plan carries, with the plan's values; each held
      // parameter adds only its checksum.
      for (const auto& [key, value] : p.items()) {
        ASSERT_TRUE(h.contains(key)) << "stage " << i << " lacks " << key;
        if (key != "params") {
          EXPECT_EQ(h[key], value) << "stage " << i << " " << key;
        }
      }
      ASSERT_EQ(h["params"].size(), p["params"].size()) << "stage " << i;
      for (size_t k = 0; k < p["params"].size(); ++k) {
        Json held_param = h["params"][k];
        EXPECT_EQ(held_param["checksum"].get<std::string>().size(), 16u);
        held_param.erase("checksum");
        EXPECT_EQ(held_param, p["params"][k]);
      }
    }
    EXPECT_TRUE(held["inconsistent_stages"].empty());
    CliResult released = Gptb({"release", example});
    EXPECT_EQ(released.exit_code, 0) << released.err;
  }
  CliResult models = Gptb({"models"});
  EXPECT_THAT(models.out, HasSubstr("no models"));
}

// The golden configs at tp=2, pp=2 (and MoE at tp=2, pp=2, ep=1), built by the daemons: every
// rank holds exactly the parameter names and shapes real Megatron Core gives that rank.
TEST_F(CoordinatorClusterTest, GoldenConfigsHoldWhatMegatronCoreHolds) {
  StartCluster();
  for (const std::string golden_name : {"A_tp2_pp2", "B_tp2_pp2", "D_tp2_pp2_ep1"}) {
    SCOPED_TRACE(golden_name);
    const Json golden = LoadGolden(golden_name);
    config::LoadedConfig config;
    config.model = GoldenUserConfig(golden);
    const std::string name = absl::AsciiStrToLower(absl::StrReplaceAll(golden_name, {{"_", "-"}}));
    BuildReady(WriteConfig(golden_name, config::EmitYaml(config)), name);
    CliResult described = Gptb({"describe", name, "--format", "json"});
    ASSERT_EQ(described.exit_code, 0) << described.err;
    const Json held = Json::parse(described.out);
    ASSERT_EQ(held["world_size"], golden["layout"]["world_size"]);
    EXPECT_EQ(held["padded_vocab_size"], golden["config"]["padded_vocab_size"]);
    // Every golden rank's (tp, pp, ep) coordinates name exactly one held stage.
    for (const Json& rank : golden["ranks"]) {
      SCOPED_TRACE(absl::StrCat("rank ", rank["global_rank"].get<int>()));
      const Json* stage = nullptr;
      for (const Json& s : held["stages"]) {
        if (s["tp_rank"] == rank["tp_rank"] && s["pp_rank"] == rank["pp_rank"] &&
            s["ep_rank"] == rank["ep_rank"] && s["vp_stage"] == rank["vp_stage"]) {
          EXPECT_EQ(stage, nullptr) << "two held stages with the same coordinates";
          stage = &s;
        }
      }
      ASSERT_NE(stage, nullptr);
      EXPECT_EQ((*stage)["pre_process"], rank["pre_process"]);
      EXPECT_EQ((*stage)["post_process"], rank["post_process"]);
      EXPECT_EQ((*stage)["num_params"], rank["num_params"]);
      const Json& params = (*stage)["params"];
      ASSERT_EQ(params.size(), rank["params"].size());
      for (size_t i = 0; i < params.size(); ++i) {
        EXPECT_EQ(params[i]["name"], rank["params"][i][0]) << "param " << i;
        EXPECT_EQ(params[i]["shape"], rank["params"][i][1]) << "param " << i;
      }
    }
    CliResult released = Gptb({"release", name});
    EXPECT_EQ(released.exit_code, 0) << released.err;
  }
}

TEST_F(CoordinatorClusterTest, ReleaseFreesTheWorkersMemory) {
  StartCluster();
  const std::string config = WriteConfig("medium", kMediumConfig);
  const pid_t worker = cluster_->worker(0).pid();
  const int64_t before = ResidentBytes(worker);
  BuildReady(config, "medium");
  const int64_t built = ResidentBytes(worker);
  CliResult released = Gptb({"release", "medium"});
  ASSERT_EQ(released.exit_code, 0) << released.err;
  const int64_t after = ResidentBytes(worker);
  // Worker 0 holds two ranks of ~50M parameters with fp32 weights and gradient buffers.
  EXPECT_GT(built - before, 100 << 20) << before << " -> " << built;
  EXPECT_LT(after - before, (built - before) * 3 / 10)
      << "RSS before " << before << ", built " << built << ", released " << after;
  const std::string metrics = Scrape(cluster_->worker_metrics()[0]);
  EXPECT_EQ(Sample(metrics, "gptb_worker_held_parameters"), 0);
  EXPECT_EQ(Sample(metrics, "gptb_worker_slots{state=\"free\"}"), 2);
}

TEST_F(CoordinatorClusterTest, InvalidConfigReturnsEveryFieldViolation) {
  StartCluster(1, 1);
  gptbuilder::v1::BuildModelRequest request;
  request.set_name("bad");
  auto* t = request.mutable_config()->mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(66);  // not divisible by the heads
  t->set_num_attention_heads(4);
  t->set_tensor_model_parallel_size(3);  // does not divide the heads
  google::longrunning::Operation op;
  grpc::Status status = client_->stub()->BuildModel(client_->Context().get(), request, &op);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const auto violations = config::ViolationsFromStatus(rpc::FromGrpcStatus(status));
  std::set<std::string> fields;
  for (const auto& v : violations) fields.insert(v.field);
  EXPECT_GE(violations.size(), 3u);
  EXPECT_TRUE(fields.count("vocab_size")) << status.error_message();
  EXPECT_TRUE(fields.count("transformer.num_attention_heads") ||
              fields.count("transformer.hidden_size"))
      << status.error_message();
  // The CLI: exit 2, one `field: message` line per violation.
  const std::string config = WriteConfig("bad",
                                         "transformer:\n  num_layers: 4\n  hidden_size: 66\n"
                                         "  num_attention_heads: 4\n");
  CliResult r = Gptb({"build", config, "--name", "bad"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("vocab_size: "));
  EXPECT_THAT(r.err, HasSubstr("transformer."));
}

TEST_F(CoordinatorClusterTest, OversizeIsResourceExhaustedAndTooFewSlotsFailedPrecondition) {
  StartCluster(2, 2, {"--slot-memory-bytes", "4194304"});  // 4 MiB per slot
  const pid_t worker = cluster_->worker(0).pid();
  const int64_t before = ResidentBytes(worker);
  gptbuilder::v1::BuildModelRequest request;
  request.set_name("big");
  auto loaded = config::LoadConfigText(kMediumConfig, config::ConfigFormat::kYaml);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  *request.mutable_config() = loaded->model;
  google::longrunning::Operation op;
  grpc::Status status = client_->stub()->BuildModel(client_->Context().get(), request, &op);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(rpc::ErrorReason(rpc::FromGrpcStatus(status)), "RANK_TOO_LARGE");
  EXPECT_THAT(status.error_message(), HasSubstr("the largest slot holds 4.00 MiB"));
  // Nothing was dispatched: no model, every slot free, no rank build on the worker.
  grpc::Status get;
  GetModel("big", &get);
  EXPECT_EQ(get.error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string metrics = Scrape(cluster_->worker_metrics()[0]);
  EXPECT_EQ(Sample(metrics, "gptb_worker_slots{state=\"free\"}"), 2);
  EXPECT_EQ(Sample(metrics, "gptb_rank_builds_total{result=\"failed\"}"), 0);
  EXPECT_LT(std::abs(ResidentBytes(worker) - before), 32 << 20);

  // Too few slots: 8 ranks on 4 registered slots.
  CliResult r = Gptb({"build", Example("tiny-gpt"), "--name", "wide", "--world-size", "8"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("needs 8 cpu slots"));
  request.set_name("wide");
  request.set_world_size(8);
  status = client_->stub()->BuildModel(client_->Context().get(), request, &op);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(CoordinatorClusterTest, AKilledWorkerFailsTheBuildAndTheOtherReleases) {
  // The ranks' store and process-group timeout bounds how long the survivors wait for the dead
  // peer; keep it short here.
  StartCluster(2, 2, {}, "4s");
  const std::string config = WriteConfig("medium", kMediumConfig);
  CliResult started = Gptb({"build", config, "--name", "victim"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  // Kill worker-1 once ranks are building.
  gptbuilder::v1::WatchBuildRequest watch;
  watch.set_name("victim");
  watch.set_rank_events(true);
  {
    auto context = client_->Context(absl::Seconds(60));
    auto reader = client_->stub()->WatchBuild(context.get(), watch);
    gptbuilder::v1::BuildEvent event;
    while (reader->Read(&event)) {
      if (event.has_rank()) break;
    }
    context->TryCancel();
  }
  const absl::Time killed = absl::Now();
  cluster_->worker(1).Signal(SIGKILL);
  gptbuilder::v1::Model model = WaitModel(
      "victim", absl::Seconds(20),
      [](const gptbuilder::v1::Model& m) { return m.state() == gptbuilder::v1::Model::FAILED; });
  ASSERT_EQ(model.state(), gptbuilder::v1::Model::FAILED) << model.reason();
  EXPECT_THAT(model.reason(), HasSubstr("worker-1"));
  EXPECT_LT(absl::Now() - killed, absl::Seconds(10));

  // The surviving worker gives everything back. Its ranks may be blocked creating a process
  // group with the dead peer, which each give up after the rank timeout.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  double free_slots = -1, held = -1;
  while (absl::Now() < deadline) {
    const std::string metrics = Scrape(cluster_->worker_metrics()[0]);
    free_slots = Sample(metrics, "gptb_worker_slots{state=\"free\"}");
    held = Sample(metrics, "gptb_worker_held_parameters");
    if (free_slots == 2 && held == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(free_slots, 2);
  EXPECT_EQ(held, 0);
  EXPECT_EQ(Sample(Scrape(cluster_->worker_metrics()[0]), "gptb_worker_held_models"), 0);

  // The coordinator keeps serving: worker-1 turns LOST and a model fits on worker-0.
  std::string workers;
  for (int i = 0; i < 100 && workers.find("LOST") == std::string::npos; ++i) {
    workers = Gptb({"workers"}).out;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(workers, HasSubstr("LOST"));
  BuildReady(Example("tiny-gpt"), "after", {"--set", "tensor_model_parallel_size=2"});
}

// Issue 15 item 4: each worker's ranks share its CPUs (ranks x intra-op threads <= cores) unless
// --threads-per-rank says otherwise, and `gptb workers` shows it; a bad flag stops the start.
TEST_F(CoordinatorClusterTest, RanksShareTheWorkersCoresAndWorkersShowTheirThreads) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int cpus = CPU_COUNT(&set);
  StartCluster(2, 2);
  const std::string table = Gptb({"workers"}).out;
  ASSERT_THAT(table, HasSubstr("THREADS")) << table;
  int rows = 0;
  for (size_t at = table.find("/rank"); at != std::string::npos; at = table.find("/rank", at + 1)) {
    const size_t begin = table.rfind(' ', at) + 1;
    const int threads = std::atoi(table.substr(begin, at - begin).c_str());
    EXPECT_GE(threads, 1) << table;
    // 2 slots: the default takes the CPUs over the slots (one each when there are fewer CPUs).
    EXPECT_LE(threads * 2, std::max(2, cpus)) << table;
    ++rows;
  }
  EXPECT_EQ(rows, 2) << table;
  // Again with the flag (the ready files go first: a new cluster waits for its own).
  cluster_.reset();
  for (const char* file : {"coordinator-0.json", "worker-0.json", "worker-1.json"}) {
    std::filesystem::remove(absl::StrCat(dir_.path(), "/", file));
  }
  StartCluster(1, 1, {"--threads-per-rank", "1"});
  EXPECT_THAT(Gptb({"workers"}).out, HasSubstr(" 1/rank "));

  for (const std::string& bad : {std::string("-1"), absl::StrCat(cpus + 1), std::string("two")}) {
    const std::string command =
        absl::StrCat(Quote(BinDir() + "/gptbd"), " worker --coordinator 127.0.0.1:1 --listen ",
                     "127.0.0.1:0 --metrics-listen 127.0.0.1:0 --threads-per-rank ", bad, " >",
                     dir_.path(), "/out 2>", dir_.path(), "/err");
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << bad;
    EXPECT_EQ(WEXITSTATUS(status), 2) << bad << ": " << ReadFile(dir_.path() + "/err");
    EXPECT_THAT(ReadFile(dir_.path() + "/err"), HasSubstr("threads-per-rank")) << bad;
  }
}

TEST_F(CoordinatorClusterTest, AReadyModelSurvivesACoordinatorRestart) {
  StartCluster();
  BuildReady(Example("tiny-llama"), "keeper", Tp2Pp2());
  grpc::Status status;
  const gptbuilder::v1::Model before = GetModel("keeper", &status);
  ASSERT_TRUE(status.ok());
  ASSERT_TRUE(cluster_->RestartCoordinator(/*kill=*/true).ok());
  gptbuilder::v1::Model after = WaitModel(
      "keeper", absl::Seconds(20),
      [](const gptbuilder::v1::Model& m) { return m.state() == gptbuilder::v1::Model::READY; });
  EXPECT_EQ(after.state(), gptbuilder::v1::Model::READY) << after.reason();
  EXPECT_EQ(after.build_id(), before.build_id());
  EXPECT_EQ(after.placement_size(), 4);
  CliResult models = Gptb({"models"});
  EXPECT_THAT(models.out, HasSubstr("keeper"));
  EXPECT_THAT(models.out, HasSubstr("READY"));
  CliResult described = Gptb({"describe", "keeper", "--format", "json"});
  EXPECT_EQ(described.exit_code, 0) << described.err;
  EXPECT_EQ(Gptb({"release", "keeper"}).exit_code, 0);
}

TEST_F(CoordinatorClusterTest, MetricsParseAndShowTheBuild) {
  StartCluster();
  BuildReady(Example("tiny-gpt"), "measured", Tp2Pp2());
  const std::string coordinator = Scrape(cluster_->coordinator_metrics());
  ASSERT_FALSE(coordinator.empty());
  const std::string path = dir_.path() + "/metrics.txt";
  std::ofstream(path) << coordinator;
  EXPECT_EQ(std::system(("promtool check metrics < " + path + " > " + path + ".lint 2>&1").c_str()),
            0)
      << ReadFile(path + ".lint");
  EXPECT_EQ(Sample(coordinator, "gptb_builds_total{result=\"ready\"}"), 1);
  EXPECT_EQ(Sample(coordinator, "gptb_models{state=\"ready\"}"), 1);
  EXPECT_EQ(Sample(coordinator, "gptb_workers{state=\"ready\"}"), 2);
  EXPECT_EQ(Sample(coordinator, "gptb_slots{state=\"used\"}"), 4);
  for (const char* phase :
       {"validate", "plan", "rendezvous", "process_groups", "construct", "init", "wrap"}) {
    EXPECT_EQ(Sample(coordinator, absl::StrCat("gptb_build_phase_duration_seconds_count{phase=\"",
                                               phase, "\"}")),
              1)
        << phase;
  }
  EXPECT_GE(Sample(coordinator,
                   "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"BuildModel\","
                   "grpc_service=\"gptbuilder.v1.Coordinator\",grpc_type=\"unary\"}"),
            1);
  const std::string worker = Scrape(cluster_->worker_metrics()[0]);
  EXPECT_GT(Sample(worker, "gptb_worker_held_parameters"), 0);
  EXPECT_EQ(Sample(worker, "gptb_rank_builds_total{result=\"ready\"}"), 2);
  std::ofstream(path) << worker;
  EXPECT_EQ(std::system(("promtool check metrics < " + path + " > /dev/null 2>&1").c_str()), 0);
}

TEST_F(CoordinatorClusterTest, ABearerTokenGuardsMutationsEndToEnd) {
  // The daemons and gptb inherit GPTB_AUTH_TOKEN; this test's own client does not send it.
  ::setenv("GPTB_AUTH_TOKEN", "integration-token", 1);
  StartCluster(2, 2);
  ::unsetenv("GPTB_AUTH_TOKEN");
  gptbuilder::v1::BuildModelRequest request;
  request.set_name("guarded");
  auto loaded = config::LoadConfigFile(Example("tiny-gpt"));
  ASSERT_TRUE(loaded.ok());
  *request.mutable_config() = loaded->model;
  google::longrunning::Operation op;
  grpc::Status status = client_->stub()->BuildModel(client_->Context().get(), request, &op);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  gptbuilder::v1::ListModelsResponse models;  // reads need no token
  EXPECT_TRUE(client_->stub()->ListModels(client_->Context().get(), {}, &models).ok());
  // With the token (workers registered with it; the coordinator sends it to them).
  const std::string token_file = dir_.path() + "/token";
  std::ofstream(token_file) << "integration-token\n";
  CliResult r = Gptb({"--auth-token-file", token_file, "build", Example("tiny-gpt"), "--name",
                      "guarded", "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Gptb({"--auth-token-file", token_file, "release", "guarded"}).exit_code, 0);
}

TEST(GptbUpTest, ExitAfterBuildDescribesTheDefaultModel) {
  TempDir dir;
  CliResult r = RunGptb({"up", "--exit-after-build", "--listen", "127.0.0.1:0", "--metrics-listen",
                         "127.0.0.1:0", Example("tiny-gpt"), "--set",
                         "tensor_model_parallel_size=2", "--set", "pipeline_model_parallel_size=2"},
                        dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("model default: READY"));
  EXPECT_THAT(r.out, HasSubstr("fingerprint"));
  EXPECT_THAT(r.out, HasSubstr("metrics: coordinator http://127.0.0.1:"));
}

}  // namespace
}  // namespace gptb::testing
