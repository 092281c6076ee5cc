#include "core/plan/model_plan.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <tuple>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config/vocab.h"
#include "core/layer_spec/layer_specs.h"
#include "core/plan/memory.h"

namespace gptb::plan {

absl::StatusOr<ModelPlan> ModelPlan::Create(const gptbuilder::v1::GPTModelConfig& config,
                                            const PlanOptions& options) {
  const gptbuilder::v1::TransformerConfig& t = config.transformer();
  absl::StatusOr<int64_t> vocab = config::ModelVocabSize(config);
  if (!vocab.ok()) return vocab.status();

  RankTopology::Options topo;
  topo.world_size = options.world_size;
  topo.tensor_model_parallel_size = t.tensor_model_parallel_size();
  topo.pipeline_model_parallel_size = t.pipeline_model_parallel_size();
  topo.context_parallel_size = t.context_parallel_size();
  topo.expert_model_parallel_size = t.expert_model_parallel_size();
  topo.expert_tensor_parallel_size = t.has_expert_tensor_parallel_size()
                                         ? t.expert_tensor_parallel_size()
                                         : t.tensor_model_parallel_size();
  topo.order = options.order;
  absl::StatusOr<RankTopology> topology = RankTopology::Create(topo);
  if (!topology.ok()) return topology.status();
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  if (!layout.ok()) return layout.status();

  ModelPlan plan(config, options, *std::move(topology), *std::move(layout));
  plan.vocab_size_ = *vocab;

  // Parameter dtype after build: params_dtype, or the half dtype when Float16Module wraps.
  std::optional<DType> params_dtype = ParseParameterDType(t.params_dtype());
  if (!params_dtype.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("transformer.params_dtype: unknown dtype '", t.params_dtype(), "'"));
  }
  const bool wrapped = (t.bf16() || t.fp16()) && options.build.mixed_precision_wrapper();
  plan.dtype_ = wrapped ? (t.bf16() ? DType::kBFloat16 : DType::kFloat16) : *params_dtype;
  const DType position_dtype = wrapped ? plan.dtype_ : DType::kFloat32;

  // The distinct shard positions (tp rank, ep rank, expert-tp rank) of each pp rank.
  const RankTopology& topo_ref = plan.topology_;
  const int p = topo_ref.pp();
  std::vector<std::set<std::tuple<int, int, int>>> positions(p);
  for (int r = 0; r < topo_ref.world_size(); ++r) {
    const RankCoords c = topo_ref.Coords(r);
    positions[c.pp].insert({c.tp, c.ep, c.etp});
  }

  const int chunks = plan.layout_.num_chunks();
  int64_t remaining = options.max_plan_tensors;
  const auto over_budget = [&] {
    return absl::ResourceExhaustedError(absl::StrCat(
        "planning this model for ", options.world_size, " ranks would list more than ",
        options.max_plan_tensors,
        " distinct stages and parameter tensors, the per-request plan limit; plan a smaller "
        "model or world, or raise --max-plan-tensors (a flag of gptbd coordinator and of gptb)"));
  };
  // Every size of the plan fits in int64: each tensor's element and byte counts, local and
  // canonical, and the sum of every memory figure over all distinct stages (so any rank's sum,
  // a part of it, fits too).
  int64_t total_bytes = 0, total_grads = 0, total_state = 0, total_params = 0;
  const auto too_large = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model is too large to plan: ", what,
        " does not fit in a 64-bit count; reduce vocab_size, the hidden sizes or the layer count"));
  };
  for (int pp_rank = 0; pp_rank < p; ++pp_rank) {
    for (int c = 0; c < chunks; ++c) {
      const ChunkLayout& chunk = plan.layout_.Chunk(pp_rank, c);
      absl::StatusOr<layer_spec::StageLayerSpecs> specs =
          layer_spec::ResolveStageLayerSpecs(config, chunk.LayerIds());
      if (!specs.ok()) return specs.status();
      auto mtp = layer_spec::MtpBlockSpec(config, *specs, chunk.num_mtp_layers);
      if (!mtp.ok()) return mtp.status();
      StageContext context;
      context.config = &plan.config_;
      context.vocab_size = plan.vocab_size_;
      context.dtype = plan.dtype_;
      context.position_embedding_dtype = position_dtype;
      context.chunk = &chunk;
      context.specs = &*specs;
      context.mtp_specs = mtp->has_value() ? &**mtp : nullptr;
      context.remaining_params = &remaining;
      for (const auto& [tp_rank, ep_rank, etp_rank] : positions[pp_rank]) {
        if (--remaining < 0) return over_budget();
        StagePlan stage;
        stage.tp_rank = tp_rank;
        stage.pp_rank = pp_rank;
        stage.ep_rank = ep_rank;
        stage.etp_rank = etp_rank;
        stage.vp_stage = chunk.vp_stage;
        stage.chunk_index = c;
        stage.pre_process = chunk.pre_process;
        stage.post_process = chunk.post_process;
        stage.layers = chunk.LayerIds();
        for (int i = 0; i < chunk.num_mtp_layers; ++i)
          stage.mtp_layers.push_back(chunk.mtp_offset + i);
        stage.layer_spec = specs->spec_name;
        absl::StatusOr<std::vector<ParamInfo>> params =
            PlanStageParameters(context, StageCoords{tp_rank, etp_rank, ep_rank});
        if (!params.ok()) {
          return params.status().code() == absl::StatusCode::kResourceExhausted ? over_budget()
                                                                                : params.status();
        }
        stage.params = *std::move(params);
        absl::StatusOr<std::vector<ParamInfo>> buffers = PlanStageBuffers(context);
        if (!buffers.ok()) return buffers.status();
        stage.buffers = *std::move(buffers);
        remaining -= static_cast<int64_t>(stage.buffers.size());
        if (remaining < 0) return over_budget();
        stage.checkpoint_tensors = stage.params;
        stage.checkpoint_tensors.insert(stage.checkpoint_tensors.end(), stage.buffers.begin(),
                                        stage.buffers.end());
        const int grad_reduce_fp32 = options.ddp.grad_reduce_in_fp32();
        for (const ParamInfo& param : stage.params) {
          int64_t numel = 1, canonical = 1, bytes = 0, grads = 0, state = 0;
          for (int64_t d : param.shape) {
            if (!config::CheckedMul(numel, d, &numel)) return too_large(param.name);
          }
          for (int64_t d : param.canonical_shape) {
            if (!config::CheckedMul(canonical, d, &canonical)) {
              return too_large(param.canonical_name);
            }
          }
          // memory.h: grads in fp32 with grad_reduce_in_fp32, else the parameter dtype; Adam
          // state 8 bytes per parameter, 12 with an fp32 main copy of a half parameter.
          const int width = static_cast<int>(DTypeSize(param.dtype));
          if (!config::CheckedMul(numel, width, &bytes) ||
              !config::CheckedMul(numel, grad_reduce_fp32 ? 4 : width, &grads) ||
              !config::CheckedMul(numel, param.dtype == DType::kFloat32 ? 8 : 12, &state) ||
              !config::CheckedMul(canonical, width, &canonical) ||
              !config::CheckedAdd(stage.num_params, numel, &stage.num_params) ||
              !config::CheckedAdd(stage.param_bytes, bytes, &stage.param_bytes) ||
              !config::CheckedAdd(stage.grad_bytes, grads, &stage.grad_bytes) ||
              !config::CheckedAdd(total_params, numel, &total_params) ||
              !config::CheckedAdd(total_bytes, bytes, &total_bytes) ||
              !config::CheckedAdd(total_grads, grads, &total_grads) ||
              !config::CheckedAdd(total_state, state, &total_state)) {
            return too_large(absl::StrCat("the parameter bytes of stage pp ", pp_rank, " (through ",
                                          param.name, ")"));
          }
          int64_t& state_sum =
              param.is_expert ? stage.expert_optimizer_bytes : stage.dense_optimizer_bytes;
          state_sum += state;                                 // bounded by total_state
          if (param.is_expert) stage.expert_params += numel;  // bounded by total_params
        }
        plan.stage_index_[{c, pp_rank, tp_rank, ep_rank, etp_rank}] =
            static_cast<int>(plan.stages_.size());
        plan.stages_.push_back(std::move(stage));
      }
    }
  }
  return plan;
}

int ModelPlan::StageIndex(const RankCoords& coords, int chunk_index) const {
  return stage_index_.at({chunk_index, coords.pp, coords.tp, coords.ep, coords.etp});
}

RankPlan ModelPlan::Rank(int rank) const {
  RankPlan r;
  r.coords = topology_.Coords(rank);
  std::vector<const StagePlan*> held;
  for (int c = 0; c < layout_.num_chunks(); ++c) {
    const int index = StageIndex(r.coords, c);
    r.stages.push_back(index);
    held.push_back(&stages_[index]);
  }
  r.memory = ComputeRankMemory(held, options_, topology_.dp() * topology_.cp(), topology_.edp());
  return r;
}

int64_t ModelPlan::TotalParameters() const {
  std::unordered_map<std::string, int64_t> canonical;
  for (const StagePlan& stage : stages_) {
    for (const ParamInfo& p : stage.params) {
      int64_t n = 1;
      for (int64_t d : p.canonical_shape) n *= d;
      canonical.emplace(p.canonical_name, n);
    }
  }
  int64_t total = 0;
  for (const auto& [name, n] : canonical) total += n;
  return total;
}

int MinimalWorldSize(const gptbuilder::v1::GPTModelConfig& finalized) {
  const auto& t = finalized.transformer();
  const int dense = t.tensor_model_parallel_size() * t.context_parallel_size();
  const int etp = t.has_expert_tensor_parallel_size() ? t.expert_tensor_parallel_size()
                                                      : t.tensor_model_parallel_size();
  const int expert = etp * t.expert_model_parallel_size();
  return t.pipeline_model_parallel_size() * std::lcm(std::max(dense, 1), std::max(expert, 1));
}

}  // namespace gptb::plan
