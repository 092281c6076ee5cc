// Planning speed: a ~1T-parameter MoE on 16,384 ranks and GPT-2 small on one rank.
//
// ModelPlan plans each DISTINCT stage (tp rank, pp rank, ep rank, expert-tp rank, vp chunk)
// once. The baseline, measured in the same run, is the naive planner that walks the parameter
// table of every global rank (what a per-rank `build_model` dry run does).
#include <chrono>
#include <cstdio>
#include <functional>

#include "core/plan/model_plan.h"
#include "core/plan/plan_format.h"

namespace {

using gptbuilder::v1::GPTModelConfig;
using Clock = std::chrono::steady_clock;

double Seconds(const std::function<void()>& f, int repeats) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

// ~1.0T parameters: 80 layers, hidden 8192, 64 heads / 8 query groups, 256 experts of ffn 2048
// (top-8) plus one shared expert, SwiGLU, RMSNorm, rope, untied 163,840 vocab.
GPTModelConfig TrillionMoe() {
  GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(80);
  t->set_hidden_size(8192);
  t->set_num_attention_heads(64);
  t->set_num_query_groups(8);
  t->set_kv_channels(128);
  t->set_ffn_hidden_size(24576);
  t->set_normalization("RMSNorm");
  t->set_activation_func("silu");
  t->set_gated_linear_unit(true);
  t->set_add_bias_linear(false);
  t->set_num_moe_experts(256);
  t->set_moe_router_topk(8);
  t->set_moe_ffn_hidden_size(2048);
  t->set_moe_shared_expert_intermediate_size(2048);
  t->set_tensor_model_parallel_size(8);
  t->set_pipeline_model_parallel_size(16);
  t->set_expert_model_parallel_size(64);
  t->set_expert_tensor_parallel_size(1);
  t->set_pipeline_dtype("bfloat16");
  t->set_params_dtype("bfloat16");
  t->set_bf16(true);
  c.set_vocab_size(163840);
  c.set_position_embedding_type("rope");
  c.set_seq_length(4096);
  return c;
}

GPTModelConfig Gpt2Small() {
  GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(12);
  t->set_hidden_size(768);
  t->set_num_attention_heads(12);
  t->set_num_query_groups(12);
  t->set_kv_channels(64);
  t->set_ffn_hidden_size(3072);
  t->set_expert_tensor_parallel_size(1);
  c.set_vocab_size(50257);
  c.set_should_pad_vocab(true);
  c.set_share_embeddings_and_output_weights(true);
  return c;
}

// The baseline: every global rank's parameter table planned on its own.
size_t NaivePlanEveryRank(const gptb::plan::ModelPlan& plan) {
  const GPTModelConfig& c = plan.config();
  size_t params = 0;
  for (int r = 0; r < plan.world_size(); ++r) {
    const gptb::plan::RankCoords coords = plan.topology().Coords(r);
    for (int chunk = 0; chunk < plan.layout().num_chunks(); ++chunk) {
      const gptb::plan::ChunkLayout& layout = plan.layout().Chunk(coords.pp, chunk);
      auto specs = gptb::layer_spec::ResolveStageLayerSpecs(c, layout.LayerIds());
      auto mtp = gptb::layer_spec::MtpBlockSpec(c, *specs, layout.num_mtp_layers);
      gptb::plan::StageContext context;
      context.config = &c;
      context.vocab_size = plan.padded_vocab_size();
      context.dtype = plan.dtype();
      context.position_embedding_dtype = plan.dtype();
      context.chunk = &layout;
      context.specs = &*specs;
      context.mtp_specs = mtp->has_value() ? &**mtp : nullptr;
      auto table = gptb::plan::PlanStageParameters(context, {coords.tp, coords.etp, coords.ep});
      params += table->size();
    }
  }
  return params;
}

void Report(const char* name, const GPTModelConfig& config, int world, int repeats) {
  gptb::plan::PlanOptions options;
  options.world_size = world;
  absl::StatusOr<gptb::plan::ModelPlan> plan = gptb::plan::ModelPlan::Create(config, options);
  if (!plan.ok()) {
    std::printf("%s: %s\n", name, std::string(plan.status().message()).c_str());
    return;
  }
  size_t entries = 0;
  for (const auto& s : plan->stages()) entries += s.params.size();
  const double create =
      Seconds([&] { (void)gptb::plan::ModelPlan::Create(config, options); }, repeats);
  const double ranks = Seconds(
      [&] {
        int64_t sum = 0;
        for (int r = 0; r < world; ++r) sum += plan->Rank(r).memory.total_bytes();
        if (sum < 0) std::printf("?");
      },
      repeats);
  size_t naive_entries = 0;
  const double naive = Seconds([&] { naive_entries = NaivePlanEveryRank(*plan); }, 1);
  std::printf("%-22s world %6d  params %16lld  stages %6zu  table entries %8zu\n", name, world,
              static_cast<long long>(plan->TotalParameters()), plan->stages().size(), entries);
  std::printf("  ModelPlan::Create (distinct stages) %9.3f ms\n", create * 1e3);
  std::printf("  + memory of every rank              %9.3f ms\n", ranks * 1e3);
  std::printf("  baseline: plan every rank (%8zu entries) %9.3f ms  -> %.1fx\n", naive_entries,
              naive * 1e3, naive / (create + ranks));
}

}  // namespace

int main() {
  Report("1T MoE (tp8 pp16 ep64)", TrillionMoe(), 16384, 3);
  Report("GPT-2 small", Gpt2Small(), 1, 20);
  return 0;
}
