#include "tests/numerics/numerics_harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "core/checkpoint/canonical_checkpoint.h"
#include "core/checkpoint/safetensors_reader.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/train/finalize_grads.h"
#include "core/train/schedule.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/checkpoint/checkpoint_harness.h"

namespace gptb::testing {
namespace {

namespace fs = std::filesystem;
using plan::GroupKind;

// Every tensor of a safetensors file, as float32 (int64 for I64).
std::map<std::string, torch::Tensor> ReadSafetensors(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  auto reader = checkpoint::SafetensorsReader::Open(path);
  EXPECT_TRUE(reader.ok()) << path << ": " << reader.status();
  if (!reader.ok()) return out;
  for (const checkpoint::TensorInfo& info : (*reader)->tensors()) {
    const bool ints = info.dtype == DType::kInt64;
    EXPECT_TRUE(ints || info.dtype == DType::kFloat32)
        << path << ": " << info.name << " is neither F32 nor I64";
    torch::Tensor t = torch::empty(info.shape, ints ? torch::kInt64 : torch::kFloat32);
    absl::Status s = (*reader)->ReadTensor(info.name, t.data_ptr());
    EXPECT_TRUE(s.ok()) << path << ": " << s;
    out[info.name] = t;
  }
  return out;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path << " is missing";
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

gptbuilder::v1::GPTModelConfig ConfigAt(const NumericsCase& c, const NumericsLayout& layout) {
  gptbuilder::v1::GPTModelConfig config = c.config;
  auto* t = config.mutable_transformer();
  t->set_tensor_model_parallel_size(layout.tp);
  t->set_pipeline_model_parallel_size(layout.pp);
  if (layout.vp > 0) {
    t->set_virtual_pipeline_model_parallel_size(layout.vp);
  } else {
    t->clear_virtual_pipeline_model_parallel_size();
  }
  t->set_expert_model_parallel_size(layout.ep);
  t->set_sequence_parallel(layout.sequence_parallel);
  if (!layout.layer_spec.empty())
    config.mutable_transformer_layer_spec()->set_name(layout.layer_spec);
  // The oracle runs Megatron without dropout.
  t->set_hidden_dropout(0.0);
  t->set_attention_dropout(0.0);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized =
      config::Finalize(config, config::FinalizeOptions{layout.world_size()});
  EXPECT_TRUE(finalized.ok()) << c.name << " at " << layout.Name() << ": " << finalized.status();
  return finalized.ok() ? *finalized : config;
}

// Megatron's local-spec name of a canonical tensor: canonical names are Transformer Engine's,
// whose fused linears hold the norms the local spec keeps as modules of their own.
std::string MegatronLocalName(const std::string& canonical) {
  static const std::pair<const char*, const char*> kRenames[] = {
      {".self_attention.linear_qkv.layer_norm_", ".input_layernorm."},
      {".mlp.linear_fc1.layer_norm_", ".pre_mlp_layernorm."},
      // Multi-latent attention: the q/kv norms fused into the up projections.
      {".self_attention.linear_q_up_proj.layer_norm_", ".self_attention.q_layernorm."},
      {".self_attention.linear_kv_up_proj.layer_norm_", ".self_attention.kv_layernorm."},
  };
  for (const auto& [te, local] : kRenames) {
    const size_t at = canonical.find(te);
    if (at != std::string::npos) {
      return canonical.substr(0, at) + local + canonical.substr(at + std::strlen(te));
    }
  }
  return canonical;
}

// Calls fn(chunk, name, info, local tensor) for every parameter and persistent buffer a rank
// holds, in the order of its chunks' checkpoint_tensors.
template <typename Fn>
void ForEachHeldSlice(const model::RankModel& rank, Fn fn) {
  for (size_t c = 0; c < rank.stages().size(); ++c) {
    auto tensors = rank.stages()[c]->CheckpointTensors();
    if (!tensors.ok()) throw std::runtime_error(std::string(tensors.status().message()));
    for (const auto& [info, tensor] : *tensors) fn(static_cast<int>(c), info->name, *info, tensor);
  }
}

}  // namespace

std::string NumericsLayout::Name() const {
  std::string name;
  auto add = [&](const char* what, int n) {
    if (!name.empty()) name += "_";
    name += what + std::to_string(n);
  };
  if (tp > 1) add("tp", tp);
  if (pp > 1) add("pp", pp);
  if (vp > 0) add("vp", vp);
  if (ep > 1) add("ep", ep);
  if (dp > 1) add("dp", dp);
  if (sequence_parallel) name += "_sp";
  if (!layer_spec.empty()) name += (name.empty() ? "" : "_") + layer_spec;
  return name.empty() ? "one rank" : name;
}

const std::vector<NumericsLayout> kExtraNumericsLayouts = {
    {.tp = 2, .sequence_parallel = true, .layer_spec = "transformer_engine"}};

bool HasBatchStatistics(const gptbuilder::v1::GPTModelConfig& config) {
  const auto& t = config.transformer();
  return t.has_num_moe_experts() && t.num_moe_experts() > 0 && t.moe_aux_loss_coeff() != 0.0 &&
         t.moe_router_load_balancing_type() != "none";
}

std::vector<NumericsLayout> NumericsLayoutsFor(const gptbuilder::v1::GPTModelConfig& config) {
  const auto& t = config.transformer();
  const bool moe = t.has_num_moe_experts() && t.num_moe_experts() > 0;
  const bool batch_statistics = HasBatchStatistics(config);
  std::vector<NumericsLayout> candidates = {
      {.tp = 2}, {.pp = 2}, {.pp = 2, .vp = 2}, {.dp = 2}, {.ep = 2, .dp = 2}};
  candidates.insert(candidates.end(), kExtraNumericsLayouts.begin(), kExtraNumericsLayouts.end());
  const int heads = t.num_attention_heads();
  const int groups = t.has_num_query_groups() ? t.num_query_groups() : heads;
  std::vector<NumericsLayout> out;
  for (const NumericsLayout& l : candidates) {
    if (heads % l.tp != 0 || groups % l.tp != 0) continue;
    // Megatron requires sequence parallelism for MoE with tensor parallelism.
    if (moe && l.tp > 1 && !l.sequence_parallel) continue;
    // gptbuilder builds multi-latent attention without sequence parallelism (refused).
    if (t.multi_latent_attention() && l.sequence_parallel) continue;
    if (t.num_layers() % (l.pp * std::max(l.vp, 1)) != 0) continue;
    if (l.ep > 1 && (!moe || t.num_moe_experts() % l.ep != 0)) continue;
    // A data-parallel replica sees half the batch, and an interleaved pipeline needs as many
    // micro-batches as stages: their load-balancing losses are other functions of the tokens.
    if (batch_statistics && (l.dp > 1 || l.vp > 1)) continue;
    out.push_back(l);
  }
  return out;
}

std::string GoldenNumericsDir(const std::string& name) {
  return std::string(GPTB_SOURCE_DIR) + "/tests/golden/numerics/" + name;
}

std::vector<std::string> GoldenNumericsCases() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(GoldenNumericsDir(""))) {
    if (entry.is_directory() && fs::exists(entry.path() / "config.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

NumericsCase LoadNumericsCase(const std::string& dir) {
  NumericsCase c;
  c.dir = dir;
  c.name = fs::path(dir).filename().string();
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigFile(dir + "/config.json");
  EXPECT_TRUE(loaded.ok()) << dir << ": " << loaded.status();
  if (loaded.ok()) c.config = loaded->model;
  const nlohmann::json tokens = ReadJson(dir + "/tokens.json");
  std::vector<int64_t> ids;
  int64_t rows = 0;
  for (const auto& row : tokens) {
    for (const auto& id : row) ids.push_back(id.get<int64_t>());
    ++rows;
  }
  EXPECT_GT(rows, 0) << dir << ": no tokens";
  c.tokens = torch::tensor(ids, torch::kInt64).reshape({rows, -1});
  c.weights = ReadSafetensors(dir + "/weights.safetensors");
  return c;
}

NumericsResult LoadMegatronResult(const std::string& dir) {
  NumericsResult r;
  const nlohmann::json result = ReadJson(dir + "/result.json");
  EXPECT_TRUE(result.contains("loss")) << dir << "/result.json has no loss";
  if (result.contains("loss")) r.loss = result["loss"].get<double>();
  std::map<std::string, torch::Tensor> logits = ReadSafetensors(dir + "/logits.safetensors");
  EXPECT_TRUE(logits.count("logits")) << dir << "/logits.safetensors has no logits";
  if (logits.count("logits")) r.logits = logits["logits"];
  r.grads = ReadSafetensors(dir + "/grads.safetensors");
  for (int step = 1;; ++step) {
    const std::string path = dir + "/buffers_step" + std::to_string(step) + ".safetensors";
    if (!std::filesystem::exists(path)) break;
    r.buffer_steps.push_back(ReadSafetensors(path));
  }
  return r;
}

void WriteCanonicalCheckpoint(const NumericsCase& c, const std::string& dir) {
  const gptbuilder::v1::GPTModelConfig config = ConfigAt(c, {});
  BuiltWorld built = BuildWith(config, 1);
  ASSERT_TRUE(built.ok()) << c.name << ": " << built.statuses[0];
  std::set<std::string> used;
  {
    torch::NoGradGuard no_grad;
    ForEachHeldSlice(
        *built.world.ranks[0],
        [&](int, const std::string&, const plan::ParamInfo& info, const torch::Tensor& value) {
          const std::string name = MegatronLocalName(info.canonical_name);
          auto it = c.weights.find(name);
          if (it == c.weights.end()) {
            ADD_FAILURE() << c.name << ": Megatron has no weight " << name;
            return;
          }
          if (it->second.sizes() != value.sizes()) {
            ADD_FAILURE() << c.name << ": " << name << " is " << value.sizes() << " here, "
                          << it->second.sizes() << " in Megatron";
            return;
          }
          value.copy_(it->second);
          used.insert(name);
        });
  }
  for (const auto& [name, tensor] : c.weights) {
    EXPECT_TRUE(used.count(name)) << c.name << ": Megatron's " << name << " is not a tensor here";
  }
  checkpoint::SaveOptions options;
  options.overwrite = true;
  options.sync = false;
  for (const auto& r : SaveWorld(built.world, dir, options)) {
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
  }
}

NumericsResult RunNumericsLayout(const NumericsCase& c, const NumericsLayout& layout,
                                 const std::string& checkpoint) {
  NumericsResult result;
  const gptbuilder::v1::GPTModelConfig config = ConfigAt(c, layout);
  const std::string where = c.name + " at " + layout.Name();
  BuiltWorld built = BuildWith(config, layout.world_size(),
                               [&](model::RankBuildOptions& o) { o.load_from = checkpoint; });
  for (size_t r = 0; r < built.statuses.size(); ++r) {
    EXPECT_TRUE(built.statuses[r].ok()) << where << " rank " << r << ": " << built.statuses[r];
  }
  if (!built.ok()) return result;
  World& world = built.world;
  const int n = layout.world_size();
  const int64_t samples = c.tokens.size(0), seq = c.tokens.size(1) - 1;

  // The logits first: the step's FinalizeGrads updates the routers' expert_bias, and Megatron's
  // logits are of the weights as given.
  result.logits = PipelineForward(world, c.tokens.narrow(1, 0, seq).contiguous());

  // Forward and backward as a train step runs them; loss terms per rank.
  std::vector<train::LossSums> sums(n);
  // Holds the output layer, first of its tp group. Not vector<bool>: ranks write their own entry
  // from their own threads, and vector<bool> packs entries into shared words (a data race that
  // dropped a dp replica's loss now and then).
  std::vector<char> reports(n, 0);
  std::vector<int> micro_batches(n, 0), replicas(n, 1);
  auto step = [&](int r) {
    model::RankModel& model = *world.ranks[r];
    const parallel::ProcessGroupCollection& groups = *model.groups();
    const int dp = groups.size(GroupKind::kDp), dp_rank = groups.rank(GroupKind::kDp);
    if (samples % dp != 0) throw std::runtime_error("samples not divisible by dp");
    const int64_t share = samples / dp;
    // One sample per micro-batch when a pipeline can interleave them, unless the loss depends on
    // the micro-batch's statistics (Megatron's oracle ran the batch as one micro-batch).
    const int64_t mbs =
        groups.size(GroupKind::kPp) > 1 && !HasBatchStatistics(c.config) ? 1 : share;
    std::vector<train::MicroBatch> batches;
    for (int64_t m = 0; m < share / mbs; ++m) {
      const torch::Tensor rows = c.tokens.narrow(0, dp_rank * share + m * mbs, mbs);
      batches.push_back({rows.narrow(1, 0, seq).contiguous(), rows.narrow(1, 1, seq).contiguous()});
    }
    for (size_t k = 0; k < model.stages().size(); ++k)
      model.ddp(static_cast<int>(k))->ZeroGradBuffer();
    absl::StatusOr<train::LossSums> s = train::ForwardBackward(model, batches, {});
    if (!s.ok()) throw std::runtime_error(std::string(s.status().message()));
    if (absl::Status f = train::FinalizeGrads(model); !f.ok()) {
      throw std::runtime_error(std::string(f.message()));
    }
    sums[r] = *s;
    micro_batches[r] = static_cast<int>(batches.size());
    replicas[r] = dp;
    bool post = false;
    for (const auto& stage : model.stages()) post = post || stage->post_process();
    reports[r] = post && groups.rank(GroupKind::kTp) == 0;
  };
  OnEveryRank(n, step);
  double loss = 0.0;
  for (int r = 0; r < n; ++r) {
    if (reports[r]) loss += sums[r].lm / (micro_batches[r] * replicas[r]);
  }
  result.loss = loss;

  // Canonical gradients from every rank's main_grad; copies must agree.
  for (auto& [name, grad] : CanonicalGradients(world, 1e-6, where)) {
    result.grads[MegatronLocalName(name)] = grad;
  }
  // The buffers after each step; every rank's copy must be the same. Models with expert bias
  // take kExpertBiasSteps steps on the same batch without an optimizer, as the oracle does.
  auto record_buffers = [&] {
    std::map<std::string, torch::Tensor> buffers;
    for (const auto& rank : world.ranks) {
      for (const auto& stage : rank->stages()) {
        const auto held = stage->named_buffers();
        for (const plan::ParamInfo& info : stage->plan().buffers) {
          const torch::Tensor* value = held.find(info.name);
          if (value == nullptr) {
            ADD_FAILURE() << where << ": the stage has no buffer " << info.name;
            continue;
          }
          auto [it, inserted] = buffers.emplace(info.canonical_name, value->clone());
          EXPECT_TRUE(inserted || torch::equal(it->second, *value))
              << where << ": the ranks' copies of " << info.canonical_name << " differ";
        }
      }
    }
    if (!buffers.empty()) result.buffer_steps.push_back(std::move(buffers));
  };
  record_buffers();
  if (config.transformer().moe_router_enable_expert_bias()) {
    for (int k = 1; k < kExpertBiasSteps; ++k) {
      OnEveryRank(n, step);
      record_buffers();
    }
  }
  return result;
}

NumericsErrors CompareNumerics(const NumericsResult& got, const NumericsResult& want) {
  NumericsErrors e;
  e.loss = std::abs(got.loss - want.loss) / std::max(std::abs(want.loss), 1e-30);
  if (got.logits.defined() && want.logits.defined()) {
    const int64_t v = std::min(got.logits.size(-1), want.logits.size(-1));
    e.logits = MaxRelativeError(got.logits.narrow(-1, 0, v), want.logits.narrow(-1, 0, v));
  } else {
    e.logits = INFINITY;
  }
  for (const auto& [name, g] : want.grads) {
    auto it = got.grads.find(name);
    const double err = it == got.grads.end() || it->second.sizes() != g.sizes()
                           ? INFINITY
                           : MaxRelativeError(it->second, g);
    if (e.worst_grad.empty() || err > e.grads) {
      e.grads = err;
      e.worst_grad = name;
    }
  }
  return e;
}

void ExpectMatchesMegatron(const NumericsResult& got, const NumericsResult& want,
                           const std::string& what) {
  const NumericsErrors e = CompareNumerics(got, want);
  EXPECT_LE(e.loss, 1e-5) << what << ": loss " << got.loss << ", Megatron " << want.loss;
  EXPECT_LE(e.logits, 1e-5) << what << ": logits";
  EXPECT_LE(e.grads, 1e-4) << what << ": gradient of " << e.worst_grad;
  EXPECT_EQ(got.grads.size(), want.grads.size()) << what << ": number of gradients";
  for (const auto& [name, g] : got.grads) {
    EXPECT_TRUE(want.grads.count(name)) << what << ": Megatron has no gradient for " << name;
  }
  // Buffers updated by each step (expert_bias += rate * sign(...)): Megatron's values.
  ASSERT_EQ(got.buffer_steps.size(), want.buffer_steps.size()) << what << ": steps of buffers";
  for (size_t k = 0; k < want.buffer_steps.size(); ++k) {
    const auto& mine = got.buffer_steps[k];
    EXPECT_EQ(mine.size(), want.buffer_steps[k].size()) << what << ": number of buffers";
    for (const auto& [name, b] : want.buffer_steps[k]) {
      auto it = mine.find(name);
      if (it == mine.end()) {
        ADD_FAILURE() << what << ": no buffer " << name << " after step " << k + 1;
        continue;
      }
      EXPECT_LE((it->second - b).abs().max().item<double>(), 1e-6)
          << what << ": " << name << " after step " << k + 1 << " is " << it->second
          << ", Megatron's " << b;
    }
  }
  // Megatron's logits are wider than ours only if the vocabulary was padded differently.
  if (got.logits.defined() && want.logits.defined()) {
    EXPECT_EQ(got.logits.sizes(), want.logits.sizes()) << what << ": logits shape";
  }
}

}  // namespace gptb::testing
