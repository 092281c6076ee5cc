#include "core/config/field_support.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

// The classification of every schema field. When a feature lands, its field moves to
// kImplemented here (one line) together with the test that shows it computes what Megatron
// computes (tests/numerics: Megatron's own numbers).

namespace gptb::config {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using FD = google::protobuf::FieldDescriptor;

constexpr FieldSupport kImpl = FieldSupport::kImplemented;
constexpr FieldSupport kPerf = FieldSupport::kPerformanceOnly;
constexpr FieldSupport kRefused = FieldSupport::kRefused;

// Parameters, or the Float16Module compute dtype, in half precision.
bool HalfPrecision(const TransformerConfig& t) {
  return t.bf16() || t.fp16() || t.params_dtype() != "float32";
}

// ---- Values refused although the field is honoured --------------------------------------------

std::optional<std::string> RefusePositionEmbedding(const GPTModelConfig& c) {
  if (c.position_embedding_type() != "mrope") return std::nullopt;
  return "the mrope rotary embedding's forward is not implemented (the model would be built "
         "but could not run); use 'rope', 'yarn', 'learned_absolute' or 'none'.";
}

std::optional<std::string> RefuseQueryGroups(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  const int64_t tp = t.tensor_model_parallel_size();
  if (tp <= 1 || t.num_query_groups() <= 0 || t.num_query_groups() % tp == 0) return std::nullopt;
  return absl::StrCat("fewer query groups than tensor-parallel ranks (", t.num_query_groups(),
                      " groups over ", tp,
                      " ranks: Megatron replicates each group's key/value heads) is built but "
                      "its attention forward is not implemented; use a "
                      "tensor_model_parallel_size that divides num_query_groups.");
}

std::optional<std::string> RefuseSoftmaxInHalf(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (t.attention_softmax_in_fp32() || !HalfPrecision(t)) return std::nullopt;
  return "the attention softmax is always computed in fp32 here; Megatron computes it in the "
         "half dtype when this is false. Set attention_softmax_in_fp32: true.";
}

std::optional<std::string> RefuseTransformerImpl(const GPTModelConfig& c) {
  if (c.transformer().transformer_impl() != "inference_optimized") return std::nullopt;
  return "'inference_optimized' selects Megatron's inference layer spec, which is not built "
         "here; use 'transformer_engine' or 'local'.";
}

std::optional<std::string> RefuseTeActivation(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.use_te_activation_func() || t.activation_func() != "gelu") return std::nullopt;
  return "Transformer Engine's GELU is the tanh approximation, which is not implemented here; "
         "set use_te_activation_func: false.";
}

std::optional<std::string> RefuseGradAccumulationFusion(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.gradient_accumulation_fusion() || !HalfPrecision(t)) return std::nullopt;
  return "with half-precision parameters the fused kernel accumulates each weight gradient into "
         "the fp32 main gradient without rounding it to the parameter dtype first, which this "
         "build does not do; set gradient_accumulation_fusion: false (it has no effect on the "
         "numbers with fp32 parameters).";
}

std::optional<std::string> RefuseLoadBalancing(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_num_moe_experts()) return std::nullopt;
  const std::string& type = t.moe_router_load_balancing_type();
  if (type == "sinkhorn" || type == "quantile_balancing") {
    return absl::StrCat("'", type,
                        "' routing is not implemented; use 'aux_loss' or 'none' (set "
                        "moe_aux_loss_coeff for the auxiliary loss).");
  }
  if ((type == "seq_aux_loss" || type == "global_aux_loss") && t.moe_aux_loss_coeff() != 0.0) {
    return absl::StrCat("the '", type,
                        "' auxiliary loss is not implemented; use 'aux_loss' (per micro-batch "
                        "load balancing) or moe_aux_loss_coeff: 0.");
  }
  return std::nullopt;
}

std::optional<std::string> RefuseZLoss(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_moe_z_loss_coeff() || t.moe_z_loss_coeff() == 0.0) return std::nullopt;
  return "the router z-loss is not implemented; leave moe_z_loss_coeff unset (or 0).";
}

std::optional<std::string> RefuseScoreFunction(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (t.moe_router_score_function() == "sqrtsoftplus") {
    return "the sqrtsoftplus router score is not implemented; use 'softmax' or 'sigmoid'.";
  }
  if (t.moe_router_score_function() == "sigmoid" && t.has_num_moe_experts() &&
      t.moe_router_load_balancing_type() == "aux_loss" && t.moe_aux_loss_coeff() != 0.0) {
    // compute_routing_scores_for_aux_loss normalizes the sigmoid scores over the experts; the
    // auxiliary loss here averages them unnormalized.
    return "the auxiliary loss with sigmoid scores (Megatron normalizes them over the experts "
           "first) is not implemented; use 'softmax' or moe_aux_loss_coeff: 0.";
  }
  return std::nullopt;
}

std::optional<std::string> RefuseRouterDtype(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_moe_router_dtype() || t.moe_router_dtype() != "fp64") return std::nullopt;
  return "the router is computed in fp32 here; use 'fp32' (or leave it unset with fp32 "
         "parameters).";
}

std::optional<std::string> RefuseRepeatedMtpLayer(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.mtp_use_repeated_layer() || !t.has_mtp_num_layers() || t.mtp_num_layers() <= 1) {
    return std::nullopt;
  }
  return absl::StrCat("Megatron applies the one shared MTP layer mtp_num_layers (",
                      t.mtp_num_layers(),
                      ") times; the loss here runs it once. Set mtp_use_repeated_layer: false or "
                      "mtp_num_layers: 1.");
}

std::optional<std::string> RefuseGtpShards(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_tensor_parallel_num_weight_shards() ||
      t.tensor_parallel_num_weight_shards() == t.tensor_model_parallel_size()) {
    return std::nullopt;
  }
  return "generalized tensor parallelism (weights sharded beyond the TP ranks and rematerialized) "
         "is not implemented; leave it unset or equal to tensor_model_parallel_size.";
}

std::optional<std::string> RefuseExpertGtpShards(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_expert_tensor_parallel_num_weight_shards() ||
      t.expert_tensor_parallel_num_weight_shards() == t.expert_tensor_parallel_size()) {
    return std::nullopt;
  }
  return "generalized expert tensor parallelism is not implemented; leave it unset or equal to "
         "expert_tensor_parallel_size.";
}

std::optional<std::string> RefusePipelineDtype(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (!t.has_pipeline_dtype()) return std::nullopt;
  // The stages exchange activations in the dtype they compute in: the Float16Module dtype when
  // bf16/fp16 is on, params_dtype otherwise. Bridge's derived value (params_dtype) is accepted
  // as the same request; an explicit other dtype would round (or widen) what is sent.
  const std::string exchanged = t.bf16() ? "bfloat16" : t.fp16() ? "float16" : t.params_dtype();
  if (t.pipeline_dtype() == exchanged || t.pipeline_dtype() == t.params_dtype()) {
    return std::nullopt;
  }
  return absl::StrCat("the pipeline stages exchange activations in the dtype they compute in (",
                      exchanged, "); leave pipeline_dtype unset or set it to ", exchanged, ".");
}

std::optional<std::string> RefuseMlpChunksWithMoe(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  if (t.mlp_chunks_for_training() <= 1 || !t.has_num_moe_experts()) return std::nullopt;
  return "Megatron runs the MoE layer (router and auxiliary loss included) once per sequence "
         "chunk, which changes the routing statistics; not implemented. Set "
         "mlp_chunks_for_training: 1.";
}

// ---- The table ------------------------------------------------------------------------------

// Texts shared by many fields.
constexpr char kTeOverlap[] =
    "Transformer Engine userbuffer overlap of tensor-parallel communication with GEMMs: the same "
    "collectives and GEMMs, scheduled differently.";
constexpr char kFp8[] =
    "FP8 training needs Transformer Engine on a GPU worker; this build runs no FP8 kernels.";
constexpr char kFp4[] =
    "FP4 (NVFP4) training needs Transformer Engine on a Blackwell GPU; this build runs no FP4 "
    "kernels.";
constexpr char kKitchen[] = "the Kitchen quantization extension is not part of this build.";
constexpr char kCudaGraph[] =
    "CUDA graphs replay the same kernels; they do not exist on a CPU build.";
constexpr char kRecompute[] =
    "activation recomputation recomputes the same values in the backward pass (memory only).";
constexpr char kOffload[] =
    "activation/weight offloading to host memory moves tensors, it does not change them "
    "(memory only).";
constexpr char kInference[] =
    "an inference-engine switch: gptbuilder builds and trains models; training never reads it.";
constexpr char kDsa[] =
    "a DeepSeek sparse attention (DSA) setting; experimental_attention_variant is not "
    "implemented.";
constexpr char kLinearAttention[] =
    "a gated-delta-net (linear attention) setting; experimental_attention_variant and hybrid "
    "linear-attention layers are not implemented.";
constexpr char kMup[] = "MuP scaling (use_mup) is not implemented.";
constexpr char kMamba[] = "Mamba / gated-delta-product layers (hybrid models) are not built here.";
constexpr char kMhc[] = "manifold hyper-connections (mHC residual streams) are not implemented.";
constexpr char kFlexDispatch[] =
    "a flex (DeepEP / HybridEP / NCCL-EP) token-dispatcher kernel setting: dispatch moves the "
    "same tokens to the same experts.";
constexpr char kPagedStash[] =
    "paged stashing of routed-expert activations for the backward pass (memory only).";
constexpr char kGtp[] =
    "generalized tensor parallelism (weight rematerialization) is not "
    "implemented.";
constexpr char kCp[] =
    "context parallelism (the sequence split across ranks with ring/all-gather attention) is "
    "not implemented; use context_parallel_size: 1.";

const std::vector<FieldSupportEntry>& Table() {
  static const auto* table = new std::vector<FieldSupportEntry>{
      // ---- GPTModelConfig ---------------------------------------------------------------------
      {"GPTModelConfig", "transformer", kImpl, "the TransformerConfig below."},
      {"GPTModelConfig", "transformer_layer_spec", kImpl,
       "the named spec functions and custom ModuleSpec trees (core/layer_spec)."},
      {"GPTModelConfig", "vocab_size", kImpl, "embedding and output-layer rows (padded)."},
      {"GPTModelConfig", "make_vocab_size_divisible_by", kImpl, "vocabulary padding."},
      {"GPTModelConfig", "should_pad_vocab", kImpl, "vocabulary padding."},
      {"GPTModelConfig", "seq_length", kImpl,
       "max_sequence_length: learned position embeddings, rotary cache, the longest train step."},
      {"GPTModelConfig", "fp16_lm_cross_entropy", kImpl,
       "Megatron Core's GPTModel stores it and never reads it: no effect there or here."},
      {"GPTModelConfig", "parallel_output", kImpl, "logits kept split over TP ranks or gathered."},
      {"GPTModelConfig", "share_embeddings_and_output_weights", kImpl,
       "tied embeddings (the output layer uses the word embedding; pp > 1 syncs them)."},
      {"GPTModelConfig",
       "position_embedding_type",
       kImpl,
       "learned_absolute, rope, yarn (YarnRotaryEmbedding, the yarn_* fields) and none; mrope "
       "is refused.",
       {},
       &RefusePositionEmbedding},
      {"GPTModelConfig", "rotary_percent", kImpl, "rotary dimensions."},
      {"GPTModelConfig", "rotary_base", kImpl, "rotary frequencies."},
      {"GPTModelConfig", "rope_scaling", kImpl, "Llama-3.1 frequency scaling."},
      {"GPTModelConfig", "rope_scaling_factor", kImpl,
       "Llama-3.1 frequency scaling; with rotary_base_local the global layers' linear factor."},
      {"GPTModelConfig", "scatter_embedding_sequence_parallel", kImpl,
       "under sequence parallelism the embedding output is scattered along the sequence either "
       "way (inside the embedding when true, right after it when false): the same values."},
      {"GPTModelConfig", "seq_len_interpolation_factor", kImpl, "rotary position interpolation."},
      {"GPTModelConfig", "tp_comm_overlap_cfg", kPerf,
       "the userbuffer TP-overlap configuration (read by training's CommOverlapConfig, not by "
       "the builder)."},
      {"GPTModelConfig", "use_transformer_engine_full_layer_spec", kImpl,
       "the default spec picks the full-TE layer (TransformerLayer with fused LayerNormMLP)."},
      {"GPTModelConfig", "use_transformer_engine_op_fuser", kPerf,
       "Transformer Engine's operation fuser: the same operations, fused."},
      {"GPTModelConfig", "use_arbitrary_attention_mask", kImpl,
       "the ModelOpt spec's attention mask type."},
      {"GPTModelConfig", "restore_modelopt_state", kImpl,
       "what the builder does with it: the default spec becomes the ModelOpt spec (restoring a "
       "ModelOpt state is a checkpoint-loading step, not part of building)."},
      {"GPTModelConfig", "hf_model_id", kImpl, "metadata, written into checkpoints."},
      {"GPTModelConfig", "generation_config", kPerf,
       "metadata only: Bridge keeps the Hugging Face generation config for export; it does not "
       "affect the model."},

      // ---- Megatron-Bridge's Gemma model configs ---------------------------------------------
      {"GPTModelConfig", "query_pre_attn_scalar", kImpl,
       "attention softmax scale 1/sqrt(query_pre_attn_scalar) (Bridge's Gemma2/3 attention)."},
      {"GPTModelConfig", "attn_logit_softcapping", kImpl,
       "cap * tanh(score / cap) on the attention scores (Gemma2DotProductAttention)."},
      {"GPTModelConfig", "final_logit_softcapping", kImpl,
       "cap * tanh(logit / cap) on the output logits (Gemma2OutputLayer)."},
      {"GPTModelConfig", "apply_embedding_scaling", kImpl,
       "embeddings times sqrt(hidden_size) in the activation dtype (Bridge's "
       "EmbeddingScalingMixin, switched on by its Gemma model-config classes)."},
      {"GPTModelConfig", "post_linear_layernorm", kImpl,
       "a norm after linear_proj and linear_fc2 (Bridge's TERowParallelLinearLayerNorm in its "
       "Gemma layer specs)."},
      {"GPTModelConfig", "rotary_base_local", kImpl,
       "rotary base of the sliding-window layers; global layers' frequencies divided by "
       "rope_scaling_factor (Bridge's Gemma3RotaryEmbedding)."},

      // ---- LayerSpec / ModuleSpec -------------------------------------------------------------
      {"LayerSpec", "name", kImpl, "the named spec function."},
      {"LayerSpec", "custom", kImpl, "a custom ModuleSpec tree, checked against the registry."},
      {"ModuleSpec", "module", kImpl, "a registered module (core/layer_spec/module_registry)."},
      {"ModuleSpec", "params", kImpl, "the module's construction parameters."},
      {"ModuleSpec", "submodules", kImpl, "the module's submodule slots."},

      // ---- TransformerConfig: ModelParallelConfig ---------------------------------------------
      {"TransformerConfig", "tensor_model_parallel_size", kImpl, "tensor parallelism."},
      {"TransformerConfig", "pipeline_model_parallel_size", kImpl, "pipeline parallelism."},
      {"TransformerConfig", "virtual_pipeline_model_parallel_size", kImpl,
       "interleaved pipeline chunks."},
      {"TransformerConfig", "sequence_parallel", kImpl,
       "sequence parallelism (dense and MoE; golden numerics at tp2 + sequence parallel)."},
      {"TransformerConfig", "context_parallel_size", kRefused, kCp},
      {"TransformerConfig", "hierarchical_context_parallel_sizes", kRefused, kCp},
      {"TransformerConfig", "expert_model_parallel_size", kImpl, "expert parallelism."},
      {"TransformerConfig", "expert_tensor_parallel_size", kImpl,
       "expert tensor parallelism (the expert linears split over the expert-TP group)."},
      {"TransformerConfig", "perform_initialization", kImpl,
       "false leaves the weights uninitialized, as Megatron does."},
      {"TransformerConfig", "use_cpu_initialization", kPerf,
       "where the weights are initialized: every element here is a pure function of (seed, "
       "name, index), whatever the device; the model stays on the CPU as Bridge leaves it."},
      {"TransformerConfig", "fp16", kImpl, "Float16Module (fp16 compute, fp32 loss)."},
      {"TransformerConfig", "bf16", kImpl, "Float16Module (bf16 compute, fp32 loss)."},
      {"TransformerConfig", "params_dtype", kImpl, "the parameters' dtype."},
      {"TransformerConfig",
       "pipeline_dtype",
       kImpl,
       "the dtype pipeline stages exchange: the compute dtype (other values are refused).",
       {},
       &RefusePipelineDtype},
      {"TransformerConfig", "autocast_dtype", kPerf,
       "read only under enable_autocast (refused); Megatron derives it from params_dtype."},
      {"TransformerConfig",
       "gradient_accumulation_fusion",
       kPerf,
       "the fused weight-gradient kernel (APEX/TE): with fp32 parameters it computes the same "
       "sums; with half-precision parameters it is refused.",
       {},
       &RefuseGradAccumulationFusion},
      {"TransformerConfig", "defer_embedding_wgrad_compute", kPerf,
       "defers the embedding weight-gradient GEMM to overlap it with pipeline flush."},
      {"TransformerConfig", "wgrad_deferral_limit", kPerf, "how many micro-batches to defer."},
      {"TransformerConfig", "microbatch_group_size_per_vp_stage", kImpl,
       "the interleaved pipeline schedule's group size."},
      {"TransformerConfig", "overlap_p2p_comm", kPerf, "overlaps pipeline send/recv with compute."},
      {"TransformerConfig", "batch_p2p_comm", kPerf, "batches pipeline send/recv calls."},
      {"TransformerConfig", "overlap_p2p_comm_warmup_flush", kPerf,
       "overlaps pipeline send/recv in warmup and flush."},
      {"TransformerConfig", "tp_comm_overlap", kPerf, kTeOverlap},
      {"TransformerConfig", "deterministic_mode", kPerf,
       "selects deterministic CUDA/NCCL algorithms; CPU kernels and Gloo are deterministic for a "
       "given layout already."},
      {"TransformerConfig", "variable_seq_lengths", kPerf,
       "pipeline stages exchange tensor shapes before tensors (same tensors)."},
      {"TransformerConfig", "use_te_rng_tracker", kPerf,
       "which CUDA RNG tracker forks dropout streams; dropout masks here come from this "
       "build's own generators either way."},
      {"TransformerConfig", "cpu_offloading", kPerf, kOffload},
      {"TransformerConfig", "cpu_offloading_num_layers", kPerf, kOffload},
      {"TransformerConfig",
       "tensor_parallel_num_weight_shards",
       kRefused,
       kGtp,
       {},
       &RefuseGtpShards},
      {"TransformerConfig", "gtp_weight_remat_size", kRefused, kGtp},
      {"TransformerConfig", "pipeline_model_parallel_comm_backend", kPerf,
       "the library that moves pipeline tensors (NCCL or UCC; Gloo on CPUs).", "nccl|ucc"},
      {"TransformerConfig", "max_seqlen_per_dp_cp_rank", kRefused, kCp},
      {"TransformerConfig", "hybrid_context_parallel", kRefused, kCp},
      {"TransformerConfig",
       "expert_tensor_parallel_num_weight_shards",
       kRefused,
       kGtp,
       {},
       &RefuseExpertGtpShards},
      {"TransformerConfig", "expert_gtp_weight_remat_size", kRefused, kGtp},
      {"TransformerConfig", "enable_autocast", kRefused,
       "running the forward under torch.autocast changes the precision of every op; it is not "
       "implemented here. Use bf16/fp16 (Float16Module) instead."},
      {"TransformerConfig", "num_microbatches_with_partial_activation_checkpoints", kPerf,
       kRecompute},
      {"TransformerConfig", "tp_comm_bulk_wgrad", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_bulk_dgrad", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_overlap_ag", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_overlap_rs", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_overlap_rs_dgrad", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_split_ag", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_atomic_ag", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_split_rs", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_atomic_rs", kPerf, kTeOverlap},
      {"TransformerConfig", "cross_entropy_loss_fusion", kPerf,
       "the fused vocab-parallel cross entropy computes the same loss (in fp32) in one kernel."},
      {"TransformerConfig", "cross_entropy_fusion_impl", kPerf,
       "which fused cross-entropy kernel (Megatron's or Transformer Engine's).", "native|te"},
      {"TransformerConfig", "tp_comm_overlap_disable_qkv", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_overlap_disable_fc1", kPerf, kTeOverlap},
      {"TransformerConfig", "tp_comm_bootstrap_backend", kPerf,
       "how Transformer Engine's userbuffers bootstrap (TP overlap).", "nccl|mpi|gloo"},
      {"TransformerConfig", "overlap_moe_expert_parallel_comm", kPerf,
       "overlaps expert-parallel all-to-all with another micro-batch's compute."},
      {"TransformerConfig", "delay_wgrad_compute", kPerf,
       "delays weight-gradient GEMMs to overlap communication (same gradients)."},
      {"TransformerConfig", "overlap_dispatch_backward_with_experts_wgrad", kPerf,
       "overlaps expert weight-gradient GEMMs with dispatch (same gradients)."},
      {"TransformerConfig", "ep_overlap_early_attn_memory_release", kPerf,
       "reorders the attention backward under EP overlap (memory only)."},
      {"TransformerConfig", "batch_p2p_sync", kPerf, "a CUDA synchronize after batched p2p."},
      {"TransformerConfig", "use_ring_exchange_p2p", kPerf,
       "a custom ring-exchange kernel for pipeline p2p."},
      {"TransformerConfig", "deallocate_pipeline_outputs", kPerf,
       "frees sent pipeline outputs early (memory only)."},
      {"TransformerConfig", "mtp_standalone", kPerf,
       "Megatron sets it from the layout; it only makes pipeline stages exchange shapes."},
      {"TransformerConfig", "cpu_offloading_activations", kPerf, kOffload},
      {"TransformerConfig", "cpu_offloading_weights", kPerf, kOffload},
      {"TransformerConfig", "cpu_offloading_double_buffering", kPerf, kOffload},
      {"TransformerConfig", "cpu_offloading_retain_pinned_cpu_buffers", kPerf, kOffload},
      {"TransformerConfig", "barrier_with_L1_time", kPerf, "a barrier around Megatron's timers."},

      // ---- TransformerConfig: sizes, attention, MLP -------------------------------------------
      {"TransformerConfig", "num_layers", kImpl, "decoder layers."},
      {"TransformerConfig", "mtp_num_layers", kImpl, "multi-token prediction depths and loss."},
      {"TransformerConfig", "mtp_loss_scaling_factor", kImpl, "the MTP loss weight."},
      {"TransformerConfig",
       "mtp_use_repeated_layer",
       kImpl,
       "one shared MTP layer (refused with mtp_num_layers > 1: the loss here would apply it "
       "once).",
       {},
       &RefuseRepeatedMtpLayer},
      {"TransformerConfig", "num_layers_in_first_pipeline_stage", kImpl, "uneven pipeline split."},
      {"TransformerConfig", "num_layers_in_last_pipeline_stage", kImpl, "uneven pipeline split."},
      {"TransformerConfig", "pipeline_model_parallel_layout", kImpl, "explicit pipeline layout."},
      {"TransformerConfig", "account_for_embedding_in_pipeline_split", kImpl, "pipeline split."},
      {"TransformerConfig", "account_for_loss_in_pipeline_split", kImpl, "pipeline split."},
      {"TransformerConfig", "hidden_size", kImpl, "hidden size."},
      {"TransformerConfig", "num_attention_heads", kImpl, "attention heads."},
      {"TransformerConfig", "softmax_scale", kImpl, "attention score scale."},
      {"TransformerConfig",
       "softmax_type",
       kImpl,
       "vanilla, off-by-one (an extra zero logit) and learnable (per-head softmax offsets).",
       {}},
      {"TransformerConfig",
       "num_query_groups",
       kImpl,
       "grouped-query attention (fewer groups than TP ranks is refused).",
       {},
       &RefuseQueryGroups},
      {"TransformerConfig", "ffn_hidden_size", kImpl, "MLP width."},
      {"TransformerConfig", "kv_channels", kImpl, "head dimension."},
      {"TransformerConfig", "hidden_dropout", kImpl,
       "dropout on embeddings and residual branches, from Megatron's streams: the default one "
       "(the same mask on every TP rank's copy of the residual stream) or, with sequence "
       "parallelism, the tensor-parallel one; masks are drawn by torch's generators, not "
       "CUDA's Philox, so they are Megatron's in distribution, not bit for bit."},
      {"TransformerConfig", "attention_dropout", kImpl,
       "dropout on attention probabilities, from Megatron's tensor-parallel stream (each TP "
       "rank's heads draw their own mask)."},
      {"TransformerConfig", "fp32_residual_connection", kRefused,
       "an fp32 residual stream under half-precision compute is not implemented; set "
       "fp32_residual_connection: false."},
      {"TransformerConfig", "apply_residual_connection_post_layernorm", kImpl,
       "Megatron Core's TransformerLayer never reads it (only its config declares it): the "
       "residual is the block's input either way (golden numerics post_ln_residual)."},
      {"TransformerConfig", "layernorm_epsilon", kImpl, "norm epsilon."},
      {"TransformerConfig", "layernorm_zero_centered_gamma", kImpl, "norm weight + 1."},
      {"TransformerConfig", "add_bias_linear", kImpl, "linear biases."},
      {"TransformerConfig", "add_qkv_bias", kImpl, "QKV bias."},
      {"TransformerConfig", "gated_linear_unit", kImpl, "GLU MLPs (SwiGLU, GeGLU)."},
      {"TransformerConfig",
       "activation_func",
       kImpl,
       "gelu, silu, relu, squared_relu, quick_gelu, fast_gelu (tanh approximation), sigmoid "
       "and tanh.",
       {}},
      {"TransformerConfig", "glu_linear_offset", kImpl, "GLU linear offset."},
      {"TransformerConfig", "activation_func_clamp_value", kImpl,
       "the clamped SwiGLU / quick-GeGLU (gate clamped above, linear part to +-value)."},
      {"TransformerConfig", "rotary_interleaved", kImpl, "interleaved rotary layout."},
      {"TransformerConfig", "normalization", kImpl, "LayerNorm or RMSNorm."},
      {"TransformerConfig", "qk_layernorm", kImpl, "q/k norms (Qwen3, OLMo 2)."},
      {"TransformerConfig", "qk_l2_norm", kImpl,
       "Megatron's L2Norm on queries and keys: x * rsqrt(mean(x^2) + layernorm_epsilon)."},
      {"TransformerConfig", "attention_output_gate", kImpl, "sigmoid output gate per head."},
      {"TransformerConfig", "multi_latent_attention", kImpl,
       "Megatron's MLASelfAttention (down/up projections, q/kv norms, decoupled rotary keys) "
       "whenever set, in the local and Transformer Engine specs (tests/golden/numerics/mla_*)."},
      {"TransformerConfig", "apply_query_key_layer_scaling", kRefused,
       "the per-layer scaling of attention scores (and its undoing in the fp32 softmax) is not "
       "implemented; set apply_query_key_layer_scaling: false."},
      {"TransformerConfig",
       "attention_softmax_in_fp32",
       kImpl,
       "the attention softmax is computed in fp32 (false with half precision is refused).",
       {},
       &RefuseSoftmaxInHalf},
      {"TransformerConfig", "is_hybrid_model", kImpl,
       "the output-layer init scale (sqrt(L) instead of sqrt(2L))."},
      {"TransformerConfig",
       "transformer_impl",
       kImpl,
       "Bridge's GPT spec functions do not read 'transformer_engine' / 'local' (the layer spec "
       "decides); 'inference_optimized' is refused.",
       {},
       &RefuseTransformerImpl},
      {"TransformerConfig",
       "window_size",
       kImpl,
       "sliding-window attention (left, right) in forward and backward.",
       {}},
      {"TransformerConfig", "window_attn_skip_freq", kImpl,
       "interleaved sliding-window / full-attention layers (every N-th layer full, or a 0/1 "
       "pattern)."},

      // ---- TransformerConfig: initialization ---------------------------------------------------
      {"TransformerConfig", "init_method_std", kImpl, "normal init std."},
      {"TransformerConfig", "embedding_init_method_std", kImpl, "embedding init std."},
      {"TransformerConfig", "init_model_with_meta_device", kPerf,
       "builds on the meta device, then materializes: the same weights (memory only)."},
      {"TransformerConfig", "use_mup", kRefused, kMup},

      // ---- TransformerConfig: fusions, recompute, precision ------------------------------------
      {"TransformerConfig",
       "bias_activation_fusion",
       kImpl,
       "with gelu Megatron's fused bias-GELU computes the tanh approximation, and so does the "
       "model; fused bias-SwiGLU / quick-GeGLU compute the same function as unfused.",
       {}},
      {"TransformerConfig", "masked_softmax_fusion", kPerf,
       "the fused scale-mask-softmax kernel computes the same softmax."},
      {"TransformerConfig", "persist_layer_norm", kPerf, "APEX persistent LayerNorm kernel."},
      {"TransformerConfig", "memory_efficient_layer_norm", kPerf,
       "APEX LayerNorm that recomputes its input in the backward (memory only)."},
      {"TransformerConfig", "bias_dropout_fusion", kPerf, "fused bias-dropout-add kernel."},
      {"TransformerConfig", "apply_rope_fusion", kPerf, "fused rotary-embedding kernel."},
      {"TransformerConfig", "fused_residual_rmsnorm", kPerf, "fused residual-add + RMSNorm."},
      {"TransformerConfig",
       "use_te_activation_func",
       kPerf,
       "Transformer Engine activation kernels (same SiLU/ReLU; its GELU is the tanh "
       "approximation and is refused).",
       {},
       &RefuseTeActivation},
      {"TransformerConfig", "activation_func_fp8_input_store", kRefused,
       "storing the activation input in FP8 for the backward rounds it; not implemented. Set it "
       "false."},
      {"TransformerConfig", "recompute_granularity", kPerf, kRecompute},
      {"TransformerConfig", "recompute_method", kPerf, kRecompute},
      {"TransformerConfig", "recompute_num_layers", kPerf, kRecompute},
      {"TransformerConfig", "distribute_saved_activations", kPerf, kRecompute},
      {"TransformerConfig", "fp8", kRefused, kFp8},
      {"TransformerConfig", "fp8_param", kRefused, kFp8},
      {"TransformerConfig", "fp4", kRefused, kFp4},
      {"TransformerConfig", "fp4_param", kRefused, kFp4},
      {"TransformerConfig", "cuda_graph_impl", kPerf, kCudaGraph},
      {"TransformerConfig", "enable_cuda_graph", kPerf, kCudaGraph},

      // ---- TransformerConfig: mixture of experts -----------------------------------------------
      {"TransformerConfig", "num_moe_experts", kImpl, "MoE layers."},
      {"TransformerConfig", "moe_layer_freq", kImpl, "which layers are MoE."},
      {"TransformerConfig", "moe_ffn_hidden_size", kImpl, "expert width."},
      {"TransformerConfig", "moe_shared_expert_intermediate_size", kImpl, "shared experts."},
      {"TransformerConfig", "moe_shared_expert_gate", kImpl, "shared-expert sigmoid gate."},
      {"TransformerConfig", "moe_shared_expert_overlap", kPerf,
       "overlaps the shared experts with dispatch."},
      {"TransformerConfig", "moe_router_topk", kImpl, "experts per token."},
      {"TransformerConfig",
       "moe_router_load_balancing_type",
       kImpl,
       "aux_loss and none (seq_aux_loss / global_aux_loss with a non-zero coefficient, sinkhorn "
       "and quantile_balancing are refused).",
       {},
       &RefuseLoadBalancing},
      {"TransformerConfig", "moe_aux_loss_coeff", kImpl, "the auxiliary loss weight."},
      {"TransformerConfig",
       "moe_z_loss_coeff",
       kImpl,
       "unset or 0 only: the router z-loss is not implemented.",
       {},
       &RefuseZLoss},
      {"TransformerConfig",
       "moe_router_score_function",
       kImpl,
       "softmax and sigmoid (sqrtsoftplus is refused).",
       {},
       &RefuseScoreFunction},
      {"TransformerConfig", "moe_router_pre_softmax", kImpl, "softmax before top-k."},
      {"TransformerConfig", "moe_router_num_groups", kImpl,
       "expert groups of group-limited routing (Megatron's group_limited_topk)."},
      {"TransformerConfig", "moe_router_group_topk", kImpl,
       "groups kept per token by group-limited routing."},
      {"TransformerConfig", "moe_router_topk_scaling_factor", kImpl, "routing-weight scale."},
      {"TransformerConfig", "moe_router_enable_expert_bias", kImpl,
       "aux-loss-free expert bias: a persistent fp32 router buffer (expert_bias) added to the "
       "scores to choose the experts, updated after every step from the tokens per expert."},
      {"TransformerConfig", "moe_router_bias_update_rate", kImpl,
       "the expert bias's step: bias += rate * sign(mean tokens per expert - tokens)."},
      {"TransformerConfig",
       "moe_router_dtype",
       kImpl,
       "the router runs in fp32 ('fp64' is refused).",
       {},
       &RefuseRouterDtype},
      {"TransformerConfig", "moe_grouped_gemm", kImpl,
       "TEGroupedMLP experts (weight<j> naming; the same per-expert GEMMs)."},
      {"TransformerConfig", "moe_use_grouped_tensor", kRefused,
       "Transformer Engine GroupedTensor expert parameters are not built; set it false."},
      {"TransformerConfig", "moe_single_grouped_weight", kRefused,
       "one grouped expert weight parameter (a different state dict) is not built; set it "
       "false."},
      {"TransformerConfig", "moe_token_dispatcher_type", kPerf,
       "allgather, alltoall and flex move the same tokens to the same experts; this build "
       "dispatches with all-gather / reduce-scatter over the expert group."},
      {"TransformerConfig", "moe_expert_capacity_factor", kRefused,
       "expert capacity (token dropping) is not implemented; leave it unset."},
      {"TransformerConfig", "moe_pad_expert_input_to_capacity", kRefused,
       "expert capacity (token dropping) is not implemented; set it false."},
      {"TransformerConfig", "moe_token_drop_policy", kRefused,
       "only used with an expert capacity, which is not implemented; leave the default."},
      {"TransformerConfig", "moe_input_jitter_eps", kRefused,
       "router input jitter is not implemented; leave it unset."},
      {"TransformerConfig", "moe_latent_size", kRefused,
       "latent MoE projections are not implemented; leave it unset."},

      // ---- MLATransformerConfig ---------------------------------------------------------------
      {"TransformerConfig", "q_lora_rank", kImpl,
       "query compression rank (0: no compression, linear_q_proj)."},
      {"TransformerConfig", "kv_lora_rank", kImpl,
       "key/value compression rank (linear_kv_down_proj)."},
      {"TransformerConfig", "qk_head_dim", kImpl,
       "MLA's per-head query/key width without the rotary part."},
      {"TransformerConfig", "qk_pos_emb_head_dim", kImpl,
       "MLA's decoupled rotary width (shared key rows)."},
      {"TransformerConfig", "v_head_dim", kImpl, "MLA's per-head value width."},
      {"TransformerConfig", "rope_type", kImpl,
       "MLA's rotary: rope or yarn (read only by MLA, as in Megatron)."},
      {"TransformerConfig", "rotary_scaling_factor", kImpl,
       "MLA's YaRN scaling factor (read only by MLA, as in Megatron)."},
      {"TransformerConfig", "original_max_position_embeddings", kImpl,
       "MLA's YaRN original length (read only by MLA)."},
      {"TransformerConfig", "beta_fast", kImpl, "MLA's YaRN beta_fast (read only by MLA)."},
      {"TransformerConfig", "beta_slow", kImpl, "MLA's YaRN beta_slow (read only by MLA)."},
      {"TransformerConfig", "mscale", kImpl, "MLA's YaRN mscale (read only by MLA)."},
      {"TransformerConfig", "mscale_all_dim", kImpl,
       "MLA's YaRN mscale_all_dim (read only by MLA)."},
      {"TransformerConfig", "cache_mla_latents", kPerf, kInference},

      // ---- YaRN for standard attention (attributes Megatron's GPTModel reads for "yarn") ------
      {"TransformerConfig", "yarn_rotary_scaling_factor", kImpl,
       "YaRN's context-extension factor (frequencies and concentration factor)."},
      {"TransformerConfig", "yarn_original_max_position_embeddings", kImpl,
       "YaRN's original context length (the correction range)."},
      {"TransformerConfig", "yarn_beta_fast", kImpl, "YaRN's correction range (fast end)."},
      {"TransformerConfig", "yarn_beta_slow", kImpl, "YaRN's correction range (slow end)."},
      {"TransformerConfig", "yarn_mscale", kImpl, "YaRN's concentration factor on cos and sin."},
      {"TransformerConfig", "yarn_mscale_all_dim", kImpl,
       "YaRN's concentration factor on cos and sin."},
      {"TransformerConfig", "yarn_correction_range_round_to_int", kImpl,
       "whether YaRN rounds its correction range to whole channels."},
      {"TransformerConfig", "mla_down_proj_fusion", kPerf,
       "fuses the MLA down-projections and input norm (same function)."},

      // ---- TransformerConfig: multi-token prediction, attention variants, losses --------------
      {"TransformerConfig", "mtp_detach_heads", kRefused,
       "detaching the MTP heads from the main model's graph (no MTP gradient into the trunk) is "
       "not implemented; set it false."},
      {"TransformerConfig", "mtp_hsm", kRefused,
       "MTP hidden-state mixing is not implemented; set it false."},
      {"TransformerConfig", "mtp_hybrid_override_pattern", kRefused, kMamba},
      {"TransformerConfig", "attention_backend", kPerf,
       "which attention kernel (flash, fused, unfused, local) computes the same attention.",
       "auto|flash|fused|unfused|local"},
      {"TransformerConfig", "flash_attention_version", kPerf,
       "which FlashAttention generation computes the same attention.", "2|3|4"},
      {"TransformerConfig", "qk_clip", kRefused,
       "QK-clip rescales the query/key weights after each optimizer step; not implemented. Set "
       "it false."},
      {"TransformerConfig", "qk_clip_alpha", kRefused,
       "only used by qk_clip, which is not implemented; leave the default."},
      {"TransformerConfig", "qk_clip_threshold", kRefused,
       "only used by qk_clip, which is not implemented; leave the default."},
      {"TransformerConfig", "log_max_attention_logit", kRefused,
       "the max-attention-logit log is not produced by this build; set it false."},
      {"TransformerConfig", "test_mode", kRefused,
       "Megatron's real-time test hooks are not part of this build; set it false."},
      {"TransformerConfig", "calculate_per_token_loss", kRefused,
       "normalizing the loss by the global number of tokens (instead of per micro-batch) is not "
       "implemented; set it false."},
      {"TransformerConfig", "no_rope_freq", kRefused,
       "skipping RoPE on some layers (NoPE layers) is not implemented; leave it unset."},
      {"TransformerConfig", "experimental_attention_variant", kRefused,
       "gated delta net and DeepSeek sparse attention layers are not implemented; leave it "
       "unset."},
      {"TransformerConfig", "dsa_indexer_n_heads", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_head_dim", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_topk", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_topk_freq", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_skip_topk_offset", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_loss_coeff", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_use_sparse_loss", kRefused, kDsa},
      {"TransformerConfig", "dsa_kernel_backend", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_rope_interleaved", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_rotate_activation", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_scoring_relu", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_k_norm_epsilon", kRefused, kDsa},
      {"TransformerConfig", "dsa_indexer_k_norm_fp32", kRefused, kDsa},
      {"TransformerConfig", "linear_attention_freq", kRefused, kLinearAttention},
      {"TransformerConfig", "linear_conv_kernel_dim", kRefused, kLinearAttention},
      {"TransformerConfig", "linear_key_head_dim", kRefused, kLinearAttention},
      {"TransformerConfig", "linear_value_head_dim", kRefused, kLinearAttention},
      {"TransformerConfig", "linear_num_key_heads", kRefused, kLinearAttention},
      {"TransformerConfig", "linear_num_value_heads", kRefused, kLinearAttention},
      {"TransformerConfig", "mup_width_mult", kRefused, kMup},
      {"TransformerConfig", "mup_base_hidden_size", kRefused, kMup},
      {"TransformerConfig", "mup_embedding_mult", kRefused, kMup},
      {"TransformerConfig", "mup_output_mult", kRefused, kMup},
      {"TransformerConfig", "mup_base_head_dim", kRefused, kMup},
      {"TransformerConfig", "mup_attn_scale_power", kRefused, kMup},
      {"TransformerConfig", "disable_bf16_reduced_precision_matmul", kRefused,
       "switches CUDA bf16 matmuls to full-precision reductions (a process-wide torch setting "
       "this build does not change); set it false."},
      {"TransformerConfig", "use_fused_weighted_squared_relu", kRefused,
       "the fused weighted squared-ReLU applies the routing weights inside the expert MLP, "
       "which is not implemented; set it false."},
      {"TransformerConfig", "fused_single_qkv_rope", kPerf,
       "applies RoPE to the fused QKV tensor without splitting it (same values)."},
      {"TransformerConfig", "use_transformer_engine_op_fuser", kPerf,
       "Transformer Engine's operation fuser: the same operations, fused."},
      {"TransformerConfig", "recompute_modules", kPerf, kRecompute,
       "core_attn|moe_act|layernorm|mla_up_proj|mlp|moe|shared_experts|gdn_norm_out|"
       "gdp_in_proj|gdp_qkv|mhc"},

      // ---- TransformerConfig: FP8 / FP4 / quantization -----------------------------------------
      {"TransformerConfig", "fp8_recipe", kRefused, kFp8,
       "tensorwise|delayed|mxfp8|blockwise|custom"},
      {"TransformerConfig", "fp8_quantizer_factory", kRefused, kFp8},
      {"TransformerConfig", "fp8_margin", kRefused, kFp8},
      {"TransformerConfig", "fp8_interval", kRefused, kFp8},
      {"TransformerConfig", "fp8_amax_history_len", kRefused, kFp8},
      {"TransformerConfig", "fp8_amax_compute_algo", kRefused, kFp8, "most_recent|max"},
      {"TransformerConfig", "fp8_wgrad", kRefused, kFp8},
      {"TransformerConfig", "fp8_output_proj", kRefused, kFp8},
      {"TransformerConfig", "fp8_dot_product_attention", kRefused, kFp8},
      {"TransformerConfig", "fp8_multi_head_attention", kRefused, kFp8},
      {"TransformerConfig", "tp_only_amax_red", kRefused, kFp8},
      {"TransformerConfig", "first_last_layers_bf16", kRefused, kFp8},
      {"TransformerConfig", "num_layers_at_start_in_bf16", kRefused, kFp8},
      {"TransformerConfig", "num_layers_at_end_in_bf16", kRefused, kFp8},
      {"TransformerConfig", "use_kitchen", kRefused, kKitchen},
      {"TransformerConfig", "use_kitchen_attention", kRefused, kKitchen},
      {"TransformerConfig", "kitchen_attention_backend", kRefused, kKitchen, "sdpa|fa"},
      {"TransformerConfig", "fp4_recipe", kRefused, kFp4, "nvfp4|custom"},
      {"TransformerConfig", "fp4_quantizer_factory", kRefused, kFp4},
      {"TransformerConfig", "quant_recipe", kRefused,
       "per-module quantization recipes need Transformer Engine / Kitchen quantizers, which "
       "this build does not have; leave it unset."},

      // ---- TransformerConfig: mixture of experts (continued) ----------------------------------
      {"TransformerConfig", "high_priority_a2a_comm_stream", kPerf,
       "CUDA stream priority for the all-to-all overlap."},
      {"TransformerConfig", "use_grouped_gemm_for_shared_expert", kRefused,
       "a GroupedLinear shared expert has different parameters (weight0); not built. Set it "
       "false."},
      {"TransformerConfig", "moe_shared_expert_glu_interleave_size", kRefused,
       "a block-interleaved GLU weight layout is not built; leave it unset."},
      {"TransformerConfig", "moe_enable_routing_replay", kRefused,
       "routing replay (recorded routing decisions) is not implemented; set it false."},
      {"TransformerConfig", "moe_router_topk_limited_devices", kRefused,
       "device-limited (group-limited) routing is not implemented; leave it unset."},
      {"TransformerConfig", "moe_router_padding_for_quantization", kRefused,
       "routing-map padding for FP8/FP4 grouped GEMMs is not implemented (no FP8/FP4); set it "
       "false."},
      {"TransformerConfig", "moe_router_padding_for_fp8", kRefused,
       "routing-map padding for FP8 grouped GEMMs is not implemented (no FP8); set it false."},
      {"TransformerConfig", "moe_router_quantile_balancing_ema", kRefused,
       "only used by quantile_balancing routing, which is not implemented; leave the default."},
      {"TransformerConfig", "moe_router_force_load_balancing", kRefused,
       "random router logits (a benchmarking mode) are not implemented; set it false."},
      {"TransformerConfig", "moe_router_force_biased", kRefused,
       "random router biases (a benchmarking mode) are not implemented; leave it unset."},
      {"TransformerConfig", "use_grouped_gemm_for_dense_mlp", kRefused,
       "a GroupedLinear dense MLP has different parameters; not built. Set it false."},
      {"TransformerConfig", "moe_single_grouped_bias", kRefused,
       "one grouped expert bias parameter (a different state dict) is not built; set it "
       "false."},
      {"TransformerConfig", "moe_token_dropping", kRefused,
       "token dropping is not implemented (nor in Megatron: it must remain false)."},
      {"TransformerConfig", "moe_enable_deepep", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_flex_dispatcher_backend", kPerf, kFlexDispatch,
       "deepep|hybridep|ncclep"},
      {"TransformerConfig", "moe_permute_fusion_into_hybridep", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_hybridep_pad_uneven_dispatch_inputs", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_per_layer_logging", kRefused,
       "per-layer MoE loss logging is not produced by this build; set it false."},
      {"TransformerConfig", "moe_pad_experts_for_cuda_graph_inference", kPerf, kInference},
      {"TransformerConfig", "moe_layer_recompute", kPerf, kRecompute},
      {"TransformerConfig", "moe_permute_fusion", kPerf,
       "fused token permutation (same tokens, same order of experts)."},
      {"TransformerConfig", "moe_router_fusion", kPerf,
       "fused top-k routing and aux-loss kernel (same routing)."},
      {"TransformerConfig", "moe_apply_probs_on_input", kRefused,
       "applying the routing weights to the expert input (instead of its output) changes the "
       "function; not implemented. Set it false."},
      {"TransformerConfig", "gtp_remat_opt_in_modules", kRefused, kGtp},
      {"TransformerConfig", "moe_flex_dispatcher_num_sms", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_deepep_num_sms", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_hybridep_num_sms", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_hybridep_num_blocks_permute", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_hybridep_num_blocks_unpermute", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_hybridep_num_sms_preprocessing", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_ncclep_zero_copy", kPerf, kFlexDispatch},
      {"TransformerConfig", "moe_dispatch_fwd_dtype", kRefused,
       "MXFP8 dispatch payloads round the tokens sent to the experts; not implemented. Leave "
       "'bf16'.",
       "bf16|mxfp8"},
      {"TransformerConfig", "moe_combine_bwd_dtype", kRefused,
       "MXFP8 combine gradients round the expert-output gradients; not implemented. Leave "
       "'bf16'.",
       "bf16|mxfp8"},
      {"TransformerConfig", "moe_mlp_glu_interleave_size", kRefused,
       "a block-interleaved GLU weight layout is not built; leave it unset."},
      {"TransformerConfig", "moe_expert_rank_capacity_factor", kRefused,
       "a per-rank token budget (token dropping) is not implemented; leave it unset."},
      {"TransformerConfig", "moe_paged_stash", kPerf, kPagedStash},
      {"TransformerConfig", "moe_paged_stash_page_size", kPerf, kPagedStash},
      {"TransformerConfig", "moe_paged_stash_buffer_size_factor_cuda", kPerf, kPagedStash},
      {"TransformerConfig", "moe_paged_stash_buffer_size_factor_cpu", kPerf, kPagedStash},

      // ---- TransformerConfig: CP, CUDA graphs, residual variants, misc ------------------------
      {"TransformerConfig", "cp_comm_type", kPerf,
       "how context-parallel attention communicates (context parallelism itself is refused).",
       "p2p|all_gather|a2a|a2a+p2p"},
      {"TransformerConfig", "cuda_graph_use_single_mempool", kPerf, kCudaGraph},
      {"TransformerConfig", "cuda_graph_retain_backward_graph", kPerf, kCudaGraph},
      {"TransformerConfig", "cuda_graph_warmup_steps", kPerf, kCudaGraph},
      {"TransformerConfig", "external_cuda_graph", kPerf, kCudaGraph},
      {"TransformerConfig", "cuda_graph_modules", kPerf, kCudaGraph,
       "full|attn|mlp|moe|moe_router|moe_preprocess|mamba"},
      {"TransformerConfig", "inference_cuda_graph_scope", kPerf, kCudaGraph, "none|layer|block"},
      {"TransformerConfig", "cuda_graph_scope", kPerf, kCudaGraph},
      {"TransformerConfig", "enable_mhc_connections", kRefused, kMhc},
      {"TransformerConfig", "mhc_num_residual_streams", kRefused, kMhc},
      {"TransformerConfig", "mhc_sinkhorn_iterations", kRefused, kMhc},
      {"TransformerConfig", "mhc_init_gating_factor", kRefused, kMhc},
      {"TransformerConfig", "mhc_recompute_layer_num", kRefused, kMhc},
      {"TransformerConfig", "clone_scatter_output_in_embedding", kPerf,
       "clones the embedding's scattered output so its input can be freed (memory only)."},
      {"TransformerConfig", "disable_parameter_transpose_cache", kPerf,
       "Transformer Engine's cached weight transposes."},
      {"TransformerConfig", "config_logger_dir", kRefused,
       "Megatron's config dumps are not written by this build (gptb validate prints the "
       "resolved config); leave it empty."},
      {"TransformerConfig", "flash_decode", kPerf, kInference},
      {"TransformerConfig", "batch_invariant_mode", kRefused,
       "batch-invariant kernels (bitwise the same result whatever the batch size) are not "
       "guaranteed by the CPU kernels here; set it false."},
      {"TransformerConfig", "batch_invariant_backend", kRefused,
       "only used by batch_invariant_mode, which is refused; leave the default.",
       "te_native|deepgemm|triton"},
      {"TransformerConfig", "inference_rng_tracker", kPerf, kInference},
      {"TransformerConfig", "inference_sampling_seed", kPerf, kInference},
      {"TransformerConfig", "symmetric_ar_type", kPerf,
       "which symmetric-memory all-reduce kernel (same sums).",
       "two_shot|one_shot|multimem_all_reduce"},
      {"TransformerConfig", "nccl_all_reduce_for_prefill", kPerf, kInference},
      {"TransformerConfig", "use_inference_optimized_layers", kPerf, kInference},
      {"TransformerConfig", "inference_fuse_tp_communication", kPerf, kInference},
      {"TransformerConfig", "inference_disable_triton_nvls_kernels", kPerf, kInference},
      {"TransformerConfig", "inference_grouped_gemm_backend", kPerf, kInference,
       "flashinfer|torch|vllm"},
      {"TransformerConfig", "inference_moe_disable_fused_quant_kernels", kPerf, kInference},
      {"TransformerConfig", "inference_moe_token_dispatcher_type", kPerf, kInference, "nccl|nvls"},
      {"TransformerConfig", "mlp_chunks_for_prefill", kPerf, kInference},
      {"TransformerConfig",
       "mlp_chunks_for_training",
       kPerf,
       "computes a dense MLP in sequence chunks; it is per token, so the values are the same "
       "(memory only). Refused with MoE layers (the router would run per chunk).",
       {},
       &RefuseMlpChunksWithMoe},
      {"TransformerConfig", "mrope_section", kRefused,
       "multimodal RoPE sections need position_embedding_type 'mrope', which is not "
       "implemented; leave it unset."},
      {"TransformerConfig", "mamba_state_dim", kRefused, kMamba},
      {"TransformerConfig", "mamba_head_dim", kRefused, kMamba},
      {"TransformerConfig", "mamba_num_groups", kRefused, kMamba},
      {"TransformerConfig", "mamba_num_heads", kRefused, kMamba},
      {"TransformerConfig", "gdp_num_householder", kRefused, kMamba},
      {"TransformerConfig", "mamba_training_ssm_states_dtype", kRefused, kMamba},
      {"TransformerConfig", "use_mamba_mem_eff_path", kRefused, kMamba},
      {"TransformerConfig", "gdp_cutedsl_kernel", kRefused, kMamba},
      {"TransformerConfig", "gdp_num_chunk_states_to_recompute", kRefused, kMamba},
      {"TransformerConfig", "heterogeneous_block_specs", kRefused,
       "heterogeneous (per-layer) block specs (Nemotron-NAS) are not built; set it false."},
      {"TransformerConfig", "hetereogenous_dist_checkpoint", kRefused,
       "heterogeneous-layer distributed checkpoints are not written; set it false."},
      {"TransformerConfig", "fine_grained_activation_offloading", kPerf, kOffload},
      {"TransformerConfig", "offload_modules", kPerf, kOffload,
       "attn_norm|qkv_linear|core_attn|attn_proj|mlp_norm|expert_fc1|moe_act|fused_group_mlp|"
       "gdp_qkv"},
      {"TransformerConfig", "min_offloaded_tensor_size", kPerf, kOffload},
      {"TransformerConfig", "delay_offload_until_cuda_graph", kPerf, kOffload},
      {"TransformerConfig", "delta_offload_bytes_across_pp_ranks", kPerf, kOffload},
      {"TransformerConfig", "activation_offload_fraction", kPerf, kOffload},
      {"TransformerConfig", "fine_grained_offloading_max_inflight_offloads", kPerf, kOffload},
  };
  return *table;
}

// ---- Reflection helpers ------------------------------------------------------------------------

const google::protobuf::Message* SubMessage(const GPTModelConfig& config,
                                            absl::string_view message) {
  if (message == "GPTModelConfig") return &config;
  if (message == "TransformerConfig") return &config.transformer();
  if (message == "LayerSpec") return &config.transformer_layer_spec();
  return nullptr;  // ModuleSpec: a tree, never refused
}

std::string ScalarText(const google::protobuf::Message& m, const FD* f, int index) {
  const google::protobuf::Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
    case FD::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FD::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FD::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FD::CPPTYPE_STRING:
      return absl::StrCat("'", rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f), "'");
    default:
      return "(set)";
  }
}

std::string ValueText(const google::protobuf::Message& m, const FD* f) {
  if (!f->is_repeated()) return ScalarText(m, f, 0);
  std::vector<std::string> items;
  for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) items.push_back(ScalarText(m, f, i));
  return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
}

std::string DefaultText(const FD* f) {
  switch (f->cpp_type()) {
    case FD::CPPTYPE_BOOL:
      return f->default_value_bool() ? "true" : "false";
    case FD::CPPTYPE_INT32:
      return absl::StrCat(f->default_value_int32());
    case FD::CPPTYPE_INT64:
      return absl::StrCat(f->default_value_int64());
    case FD::CPPTYPE_DOUBLE:
      return absl::StrCat(f->default_value_double());
    case FD::CPPTYPE_STRING:
      return absl::StrCat("'", f->default_value_string(), "'");
    default:
      return "";
  }
}

// True when a (resolved) message holds a value other than the field's schema default: a set
// field without a default (Python None), a non-empty repeated field, or a different value.
bool IsNonDefault(const google::protobuf::Message& m, const FD* f) {
  const google::protobuf::Reflection* r = m.GetReflection();
  if (f->is_repeated()) return r->FieldSize(m, f) > 0;
  if (!r->HasField(m, f)) return false;
  if (!f->has_default_value()) return true;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_BOOL:
      return r->GetBool(m, f) != f->default_value_bool();
    case FD::CPPTYPE_INT32:
      return r->GetInt32(m, f) != f->default_value_int32();
    case FD::CPPTYPE_INT64:
      return r->GetInt64(m, f) != f->default_value_int64();
    case FD::CPPTYPE_DOUBLE:
      return r->GetDouble(m, f) != f->default_value_double();
    case FD::CPPTYPE_STRING:
      return r->GetString(m, f) != f->default_value_string();
    default:
      return true;
  }
}

std::string WhatIsValid(const FD* f) {
  if (f->is_repeated()) return absl::StrCat("Leave ", f->name(), " unset (empty).");
  if (f->has_default_value()) {
    return absl::StrCat("Leave ", f->name(), " at its default (", DefaultText(f), ").");
  }
  return absl::StrCat("Leave ", f->name(), " unset.");
}

void CheckValues(const FieldSupportEntry& e, const google::protobuf::Message& m, const FD* f,
                 const std::string& path, Violations* violations) {
  if (e.values.empty()) return;
  const std::vector<std::string> accepted = absl::StrSplit(e.values, '|');
  const google::protobuf::Reflection* r = m.GetReflection();
  const int n = f->is_repeated() ? r->FieldSize(m, f) : (r->HasField(m, f) ? 1 : 0);
  for (int i = 0; i < n; ++i) {
    std::string value = ScalarText(m, f, i);
    if (f->cpp_type() == FD::CPPTYPE_STRING) value = value.substr(1, value.size() - 2);
    bool ok = false;
    for (const std::string& a : accepted) ok |= (a == value);
    if (ok) continue;
    violations->Add(f->is_repeated() ? absl::StrCat(path, "[", i, "]") : path, "INVALID_VALUE",
                    absl::StrCat(f->name(), " '", value, "' is not accepted; use '",
                                 absl::StrJoin(accepted, "', '"), "'."));
  }
}

}  // namespace

absl::string_view FieldSupportName(FieldSupport support) {
  switch (support) {
    case FieldSupport::kImplemented:
      return "implemented";
    case FieldSupport::kPerformanceOnly:
      return "performance-only";
    case FieldSupport::kRefused:
      return "refused";
  }
  return "";
}

const std::vector<FieldSupportEntry>& FieldSupportTable() { return Table(); }

const FieldSupportEntry* FindFieldSupport(absl::string_view message, absl::string_view field) {
  for (const FieldSupportEntry& e : Table()) {
    if (e.message == message && e.field == field) return &e;
  }
  return nullptr;
}

std::string FieldSupportPath(const FieldSupportEntry& entry) {
  if (entry.message == "GPTModelConfig") return std::string(entry.field);
  if (entry.message == "TransformerConfig") return absl::StrCat("transformer.", entry.field);
  if (entry.message == "LayerSpec") return absl::StrCat("transformer_layer_spec.", entry.field);
  return absl::StrCat("transformer_layer_spec.custom.", entry.field);
}

void CheckFieldSupport(const GPTModelConfig& resolved, Violations* violations) {
  Violations found;
  for (const FieldSupportEntry& e : Table()) {
    const google::protobuf::Message* m = SubMessage(resolved, e.message);
    if (m == nullptr) continue;
    const FD* f = m->GetDescriptor()->FindFieldByName(std::string(e.field));
    if (f == nullptr) continue;  // the schema-walk test keeps table and schema in step
    const std::string path = FieldSupportPath(e);
    if (violations->Mentions(path)) continue;
    CheckValues(e, *m, f, path, &found);
    if (found.Mentions(path)) continue;
    if (e.refuse != nullptr) {
      if (std::optional<std::string> why = e.refuse(resolved)) {
        found.Add(path, "UNSUPPORTED",
                  absl::StrCat(e.field, " ", ValueText(*m, f), " is not supported: ", *why));
      }
    } else if (e.support == FieldSupport::kRefused && IsNonDefault(*m, f)) {
      found.Add(path, "UNSUPPORTED",
                absl::StrCat(e.field, " ", ValueText(*m, f), " is not supported: ", e.why, " ",
                             WhatIsValid(f)));
    }
  }
  violations->Append(found);
}

std::vector<PerformanceOnlySetting> PerformanceOnlySettings(const GPTModelConfig& resolved) {
  std::vector<PerformanceOnlySetting> out;
  for (const FieldSupportEntry& e : Table()) {
    if (e.support != FieldSupport::kPerformanceOnly) continue;
    const google::protobuf::Message* m = SubMessage(resolved, e.message);
    if (m == nullptr) continue;
    const FD* f = m->GetDescriptor()->FindFieldByName(std::string(e.field));
    if (f == nullptr || !IsNonDefault(*m, f)) continue;
    // Finalize derives autocast_dtype from params_dtype, as Megatron does: not a user's choice.
    if (e.field == "autocast_dtype" &&
        resolved.transformer().autocast_dtype() == resolved.transformer().params_dtype()) {
      continue;
    }
    out.push_back({FieldSupportPath(e), ValueText(*m, f), std::string(e.why)});
  }
  return out;
}

}  // namespace gptb::config
