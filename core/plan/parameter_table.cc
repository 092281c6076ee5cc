#include "core/plan/parameter_table.h"

#include <cmath>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"

namespace gptb::plan {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using layer_spec::ModuleKind;
using layer_spec::ModuleSpec;

// Where a module's parameters go: its local state-dict prefix and its canonical prefix.
struct Prefix {
  std::string local;
  std::string canonical;
  Prefix Sub(const std::string& name) const {
    return {absl::StrCat(local, name, "."), absl::StrCat(canonical, name, ".")};
  }
  Prefix Sub(const std::string& local_name, const std::string& canonical_name) const {
    return {absl::StrCat(local, local_name, "."), absl::StrCat(canonical, canonical_name, ".")};
  }
};

// Which tensor-parallel group shards a linear: the dense TP group or the expert TP group.
struct TpShard {
  int size = 1;
  int rank = 0;
};

class StageWalker {
 public:
  StageWalker(const StageContext& context, const StageCoords& coords)
      : ctx_(context),
        t_(context.config->transformer()),
        coords_(coords),
        tp_{t_.tensor_model_parallel_size(), coords.tp_rank},
        etp_{t_.expert_tensor_parallel_size(), coords.etp_rank} {}

  absl::StatusOr<std::vector<ParamInfo>> Walk();

 private:
  // ---- emitters -------------------------------------------------------------------------
  ParamInfo& Add(const Prefix& prefix, const std::string& local_name,
                 const std::string& canonical_name, std::vector<int64_t> canonical_shape,
                 InitMethod init) {
    if (ctx_.remaining_params != nullptr) {
      if (*ctx_.remaining_params <= 0) exhausted_ = true;
      --*ctx_.remaining_params;
    }
    ParamInfo p;
    p.name = absl::StrCat(prefix.local, local_name);
    p.canonical_name = absl::StrCat(prefix.canonical, canonical_name);
    p.shape = canonical_shape;
    p.canonical_shape = std::move(canonical_shape);
    p.dtype = ctx_.dtype;
    p.init = init;
    params_.push_back(std::move(p));
    return params_.back();
  }

  // Splits `p` along `dim` into the rank's pieces (two interleaved halves when stride == 2).
  absl::Status Shard(ParamInfo& p, int dim, const TpShard& shard, int stride) {
    const int64_t full = p.canonical_shape[dim];
    if (full % (static_cast<int64_t>(shard.size) * stride) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          p.name, ": dimension ", dim, " of size ", full, " does not split over ", shard.size,
          " tensor-parallel ranks", stride > 1 ? absl::StrCat(" with stride ", stride) : ""));
    }
    const int64_t part = full / stride / shard.size;
    p.partition_dim = dim;
    p.partition_stride = stride;
    p.tensor_model_parallel = true;
    p.pieces.clear();
    for (int s = 0; s < stride; ++s) {
      p.pieces.push_back({s * (full / stride) + shard.rank * part, part});
    }
    p.shape[dim] = part * stride;
    return absl::OkStatus();
  }

  InitMethod WeightInit() const { return InitMethod::Normal(t_.init_method_std()); }
  InitMethod OutputInit() const {
    // scaled_init_method_normal: std / sqrt(multiplier * L), multiplier 1 for hybrid models.
    const double multiplier = t_.is_hybrid_model() ? 1.0 : 2.0;
    return InitMethod::Normal(t_.init_method_std() / std::sqrt(multiplier * t_.num_layers()));
  }

  // Which norm a module name builds: LayerNorm (weight + bias) or RMSNorm (weight).
  bool IsRmsNorm(const std::string& module) const {
    if (module == "RMSNorm") return true;
    if (module == "LayerNorm" || module == "FusedLayerNorm") return false;
    return t_.normalization() == "RMSNorm";
  }

  // Finalize turns sequence_parallel off without tensor parallelism.
  bool sequence_parallel() const { return t_.sequence_parallel(); }

  // A norm's weight (and bias for LayerNorm). Under sequence parallelism every norm sees only
  // this rank's part of the sequence: TENorm, TE's fused norms and Apex's FusedLayerNorm mark
  // their parameters sequence_parallel; torch's own norms cannot (Megatron asserts).
  absl::Status Norm(const Prefix& prefix, const std::string& module, int64_t size,
                    const std::string& weight = "weight", const std::string& bias = "bias",
                    const std::string& canonical_weight = "",
                    const std::string& canonical_bias = "") {
    if (sequence_parallel() && layer_spec::IsTorchNorm(module)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "transformer.sequence_parallel: ", prefix.local, " is torch's ", module,
          " (Megatron's WrappedTorchNorm, as the local spec builds it), which Megatron Core does "
          "not run with sequence parallelism (\"sequence parallel not supported by torch "
          "LayerNorm\"); use transformer_layer_spec transformer_engine (the default) or turn "
          "sequence_parallel off"));
    }
    const double gamma = t_.layernorm_zero_centered_gamma() ? 0.0 : 1.0;
    Add(prefix, weight, canonical_weight.empty() ? weight : canonical_weight, {size},
        InitMethod::Constant(gamma))
        .sequence_parallel = sequence_parallel();
    if (!IsRmsNorm(module)) {
      Add(prefix, bias, canonical_bias.empty() ? bias : canonical_bias, {size},
          InitMethod::Constant(0.0))
          .sequence_parallel = sequence_parallel();
    }
    return absl::OkStatus();
  }

  // ColumnParallelLinear: weight [out/t, in] (stride 2 for a gated fc1), bias [out/t].
  absl::Status Column(const Prefix& prefix, int64_t out, int64_t in, bool bias, InitMethod init,
                      const TpShard& shard, int stride = 1, bool expert = false,
                      const std::string& weight_name = "weight",
                      const std::string& bias_name = "bias") {
    ParamInfo& w = Add(prefix, weight_name, "weight", {out, in}, init);
    w.is_expert = expert;
    if (absl::Status s = Shard(w, 0, shard, stride); !s.ok()) return s;
    if (bias) {
      ParamInfo& b = Add(prefix, bias_name, "bias", {out}, InitMethod::Constant(0.0));
      b.is_expert = expert;
      if (absl::Status s = Shard(b, 0, shard, stride); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // RowParallelLinear: weight [out, in/t], bias [out] replicated.
  absl::Status Row(const Prefix& prefix, int64_t out, int64_t in, bool bias, InitMethod init,
                   const TpShard& shard, bool expert = false,
                   const std::string& weight_name = "weight",
                   const std::string& bias_name = "bias") {
    ParamInfo& w = Add(prefix, weight_name, "weight", {out, in}, init);
    w.is_expert = expert;
    if (absl::Status s = Shard(w, 1, shard, 1); !s.ok()) return s;
    if (bias) {
      ParamInfo& b = Add(prefix, bias_name, "bias", {out}, InitMethod::Constant(0.0));
      b.is_expert = expert;
      // Added after the reduce-scatter, to this rank's part of the sequence. Expert linears
      // communicate through the token dispatcher instead (TE builds them with a TP size of 1,
      // which leaves their biases unmarked).
      b.sequence_parallel = sequence_parallel() && !expert;
    }
    return absl::OkStatus();
  }

  // ---- modules --------------------------------------------------------------------------
  int64_t h() const { return t_.hidden_size(); }
  int64_t heads() const { return t_.num_attention_heads(); }
  int64_t groups() const { return t_.num_query_groups(); }
  int64_t kv() const { return t_.kv_channels(); }
  int gated() const { return t_.gated_linear_unit() ? 2 : 1; }
  bool bias_linear() const { return t_.add_bias_linear(); }

  absl::Status TransformerLayer(const ModuleSpec& spec, const Prefix& prefix, bool moe);
  absl::Status SelfAttention(const ModuleSpec& spec, const Prefix& prefix);
  absl::Status MlaSelfAttention(const ModuleSpec& spec, const Prefix& prefix);
  absl::Status DenseMlp(const ModuleSpec& spec, const Prefix& prefix, int64_t ffn);
  absl::Status MoeLayer(const ModuleSpec& spec, const Prefix& prefix);
  absl::Status TeTransformerLayer(const Prefix& prefix);
  absl::Status MtpLayer(const ModuleSpec& spec, const Prefix& prefix);
  absl::Status Linear(const ModuleSpec& spec, const Prefix& prefix, bool column, int64_t out,
                      int64_t in, bool bias, InitMethod init, const TpShard& shard, int stride,
                      bool expert, const std::string& fused_norm_canonical);

  const StageContext& ctx_;
  const TransformerConfig& t_;
  StageCoords coords_;
  TpShard tp_;
  TpShard etp_;
  std::vector<ParamInfo> params_;
  bool exhausted_ = false;  // context.remaining_params ran out
};

absl::Status StageWalker::Linear(const ModuleSpec& spec, const Prefix& prefix, bool column,
                                 int64_t out, int64_t in, bool bias, InitMethod init,
                                 const TpShard& shard, int stride, bool expert,
                                 const std::string& fused_norm_canonical) {
  const layer_spec::ModuleInfo* info = layer_spec::FindModule(spec.module);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown module '", spec.module, "'"));
  }
  if (info->kind == ModuleKind::kLayerNormColumnParallelLinear) {
    // TE's fused norm + linear: layer_norm_weight (+ layer_norm_bias) registered first. Its
    // canonical name is this linear's own (TE naming is the canonical naming).
    (void)fused_norm_canonical;
    if (absl::Status s = Norm(prefix, "TENorm", in, "layer_norm_weight", "layer_norm_bias");
        !s.ok()) {
      return s;
    }
    return Column(prefix, out, in, bias, init, shard, stride, expert);
  }
  if (info->kind == ModuleKind::kDuplicatedLinear) {
    // TELinear "duplicated" / ModelOpt's Linear: the whole weight on every TP rank.
    if (!column) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix.local, ": '", spec.module, "' cannot be a row-parallel linear"));
    }
    ParamInfo& w = Add(prefix, "weight", "weight", {out, in}, init);
    w.is_expert = expert;
    if (bias) Add(prefix, "bias", "bias", {out}, InitMethod::Constant(0.0)).is_expert = expert;
    return absl::OkStatus();
  }
  if (column) {
    if (info->kind != ModuleKind::kColumnParallelLinear) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix.local, ": '", spec.module, "' is not a column-parallel linear"));
    }
    return Column(prefix, out, in, bias, init, shard, stride, expert);
  }
  if (info->kind != ModuleKind::kRowParallelLinear) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix.local, ": '", spec.module, "' is not a row-parallel linear"));
  }
  if (expert && bias && sequence_parallel() && !info->transformer_engine) {
    // Megatron's own RowParallelLinear marks an expert's bias sequence_parallel too, so
    // finalize_model_grads sums it over the dense TP group after the expert-data-parallel
    // reduction has already summed it (and across different experts when ep > 1).
    return absl::InvalidArgumentError(absl::StrCat(
        "transformer.sequence_parallel: ", prefix.local,
        "bias is an expert bias of Megatron's "
        "local RowParallelLinear, whose gradient Megatron Core sums over tensor-parallel ranks "
        "twice under sequence parallelism; use TERowParallelLinear experts (the "
        "transformer_engine spec) or add_bias_linear false"));
  }
  return Row(prefix, out, in, bias, init, shard, expert);
}

absl::Status StageWalker::SelfAttention(const ModuleSpec& spec, const Prefix& prefix) {
  // Registration order (Attention.__init__ then SelfAttention.__init__): core_attention,
  // linear_proj, linear_qkv, q_layernorm, k_layernorm.
  if (t_.softmax_type() == "learnable") {
    ParamInfo& offset = Add(prefix.Sub("core_attention"), "softmax_offset", "softmax_offset",
                            {heads()}, WeightInit());
    if (absl::Status s = Shard(offset, 0, tp_, 1); !s.ok()) return s;
  }
  const int64_t attention_out = heads() * kv();
  if (const ModuleSpec* proj = spec.Submodule("linear_proj")) {
    if (absl::Status s = Linear(*proj, prefix.Sub("linear_proj"), false, h(), attention_out,
                                bias_linear(), OutputInit(), tp_, 1, false, "");
        !s.ok()) {
      return s;
    }
  }
  if (const ModuleSpec* qkv = spec.Submodule("linear_qkv")) {
    int64_t qkv_out = (heads() + 2 * groups()) * kv();
    if (t_.attention_output_gate()) qkv_out += heads() * kv();
    if (absl::Status s =
            Linear(*qkv, prefix.Sub("linear_qkv"), true, qkv_out, h(),
                   bias_linear() || t_.add_qkv_bias(), WeightInit(), tp_, 1, false, "");
        !s.ok()) {
      return s;
    }
  }
  for (const char* slot : {"q_layernorm", "k_layernorm"}) {
    const ModuleSpec* norm = spec.Submodule(slot);
    if (norm == nullptr) continue;
    const layer_spec::ModuleInfo* info = layer_spec::FindModule(norm->module);
    if (info != nullptr && info->kind == ModuleKind::kNorm) {
      if (absl::Status s = Norm(prefix.Sub(slot), norm->module, kv()); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status StageWalker::MlaSelfAttention(const ModuleSpec& spec, const Prefix& prefix) {
  // A spec resolved by layer_spec::ResolveMlaAttention. Registration order (Attention.__init__,
  // then MLASelfAttention.__init__): core_attention, linear_proj, linear_q_proj or
  // linear_q_down_proj + linear_q_up_proj, linear_kv_down_proj, linear_kv_up_proj, q_layernorm,
  // kv_layernorm. Local norms take the canonical (TE) names of the fused up projections.
  const int64_t n = heads();
  const int64_t q_head = int64_t{t_.qk_head_dim()} + t_.qk_pos_emb_head_dim();
  const int64_t q_lora = t_.q_lora_rank(), kv_lora = t_.kv_lora_rank();
  auto linear = [&](const char* slot, bool column, int64_t out, int64_t in,
                    InitMethod init) -> absl::Status {
    const ModuleSpec* node = spec.Submodule(slot);
    if (node == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix.local, ": MLASelfAttention needs ", slot));
    }
    return Linear(*node, prefix.Sub(slot), column, out, in, false, init, tp_, 1, false, "");
  };
  if (const ModuleSpec* proj = spec.Submodule("linear_proj")) {
    if (absl::Status s = Linear(*proj, prefix.Sub("linear_proj"), false, h(), n * t_.v_head_dim(),
                                bias_linear(), OutputInit(), tp_, 1, false, "");
        !s.ok()) {
      return s;
    }
  }
  if (q_lora > 0) {
    if (absl::Status s = linear("linear_q_down_proj", true, q_lora, h(), WeightInit()); !s.ok())
      return s;
    if (absl::Status s = linear("linear_q_up_proj", true, n * q_head, q_lora, WeightInit());
        !s.ok())
      return s;
  } else if (absl::Status s = linear("linear_q_proj", true, n * q_head, h(), WeightInit());
             !s.ok()) {
    return s;
  }
  if (absl::Status s = linear("linear_kv_down_proj", true, kv_lora + t_.qk_pos_emb_head_dim(), h(),
                              WeightInit());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          linear("linear_kv_up_proj", true, n * (int64_t{t_.qk_head_dim()} + t_.v_head_dim()),
                 kv_lora, WeightInit());
      !s.ok()) {
    return s;
  }
  for (const auto& [slot, up, size] :
       {std::tuple<const char*, const char*, int64_t>{"q_layernorm", "linear_q_up_proj", q_lora},
        {"kv_layernorm", "linear_kv_up_proj", kv_lora}}) {
    const ModuleSpec* norm = spec.Submodule(slot);
    if (norm == nullptr || norm->module == "IdentityOp") continue;
    Prefix p{absl::StrCat(prefix.local, slot, "."), absl::StrCat(prefix.canonical, up, ".")};
    if (absl::Status s =
            Norm(p, norm->module, size, "weight", "bias", "layer_norm_weight", "layer_norm_bias");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status StageWalker::DenseMlp(const ModuleSpec& spec, const Prefix& prefix, int64_t ffn) {
  const ModuleSpec* fc1 = spec.Submodule("linear_fc1");
  const ModuleSpec* fc2 = spec.Submodule("linear_fc2");
  if (fc1 == nullptr || fc2 == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix.local, ": MLP needs linear_fc1 and linear_fc2"));
  }
  if (absl::Status s = Linear(*fc1, prefix.Sub("linear_fc1"), true, gated() * ffn, h(),
                              bias_linear(), WeightInit(), tp_, gated(), false, "");
      !s.ok()) {
    return s;
  }
  return Linear(*fc2, prefix.Sub("linear_fc2"), false, h(), ffn, bias_linear(), OutputInit(), tp_,
                1, false, "");
}

absl::Status StageWalker::MoeLayer(const ModuleSpec& spec, const Prefix& prefix) {
  if (!t_.has_num_moe_experts()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix.local, ": a MoELayer needs transformer.num_moe_experts"));
  }
  if (t_.has_moe_latent_size()) {
    return absl::UnimplementedError(
        "transformer.moe_latent_size: latent MoE projections are not "
        "supported by this builder");
  }
  const int64_t num_experts = t_.num_moe_experts();
  const int ep = t_.expert_model_parallel_size();
  if (num_experts % ep != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_moe_experts (", num_experts,
                                                   ") must be divisible by "
                                                   "expert_model_parallel_size (",
                                                   ep, ")"));
  }
  const int64_t local_experts = num_experts / ep;
  const int64_t ffn = t_.moe_ffn_hidden_size();
  // Router: replicated weight [E, h] (and bias [E] with add_bias_linear), both drawn with
  // init_method as Megatron's TopKRouter does.
  // Under sequence parallelism it routes this rank's part of the sequence.
  Prefix router = prefix.Sub("router");
  Add(router, "weight", "weight", {num_experts, h()}, WeightInit()).sequence_parallel =
      sequence_parallel();
  if (bias_linear()) {
    Add(router, "bias", "bias", {num_experts}, WeightInit()).sequence_parallel =
        sequence_parallel();
  }
  // Experts hold the expert-parallel shard, each split over the expert-TP group.
  const bool expert_attr =
      ep > 1 || t_.expert_tensor_parallel_size() != t_.tensor_model_parallel_size();
  const ModuleSpec* experts = spec.Submodule("experts");
  if (experts == nullptr) return absl::InvalidArgumentError("MoELayer needs experts");
  const layer_spec::ModuleInfo* info = layer_spec::FindModule(experts->module);
  if (bias_linear() && t_.expert_tensor_parallel_size() != 1) {
    return absl::InvalidArgumentError(
        "Bias in MoE is only supported when expert_tensor_parallel_size == 1 (set "
        "add_bias_linear: false or expert_tensor_parallel_size: 1)");
  }
  const Prefix experts_prefix = prefix.Sub("experts");
  if (info != nullptr && info->kind == ModuleKind::kGroupedMlp) {
    // TEGroupedMLP: linear_fc1.weight<j> ... then linear_fc2.weight<j> ..., local index j.
    for (int fc = 1; fc <= 2; ++fc) {
      const std::string lin = fc == 1 ? "linear_fc1" : "linear_fc2";
      for (int pass = 0; pass < (bias_linear() ? 2 : 1); ++pass) {
        for (int64_t j = 0; j < local_experts && !exhausted_; ++j) {
          const int64_t global = coords_.ep_rank * local_experts + j;
          Prefix p{absl::StrCat(experts_prefix.local, lin, "."),
                   absl::StrCat(experts_prefix.canonical, "local_experts.", global, ".", lin, ".")};
          const std::string weight = absl::StrCat("weight", j), bias = absl::StrCat("bias", j);
          absl::Status s;
          if (pass == 0) {
            ParamInfo& w = fc == 1 ? Add(p, weight, "weight", {gated() * ffn, h()}, WeightInit())
                                   : Add(p, weight, "weight", {h(), ffn}, OutputInit());
            w.is_expert = expert_attr;
            s = Shard(w, fc == 1 ? 0 : 1, etp_, fc == 1 ? gated() : 1);
          } else {
            ParamInfo& b =
                Add(p, bias, "bias", {fc == 1 ? gated() * ffn : h()}, InitMethod::Constant(0.0));
            b.is_expert = expert_attr;
            if (fc == 1) s = Shard(b, 0, etp_, gated());
          }
          if (!s.ok()) return s;
        }
      }
    }
  } else {
    // SequentialMLP: local_experts.<j> each an MLP over the expert-TP group.
    const ModuleSpec* fc1 = experts->Submodule("linear_fc1");
    const ModuleSpec* fc2 = experts->Submodule("linear_fc2");
    if (fc1 == nullptr || fc2 == nullptr) {
      return absl::InvalidArgumentError("SequentialMLP needs linear_fc1 and linear_fc2");
    }
    for (int64_t j = 0; j < local_experts && !exhausted_; ++j) {
      const int64_t global = coords_.ep_rank * local_experts + j;
      Prefix e{absl::StrCat(experts_prefix.local, "local_experts.", j, "."),
               absl::StrCat(experts_prefix.canonical, "local_experts.", global, ".")};
      if (absl::Status s = Linear(*fc1, e.Sub("linear_fc1"), true, gated() * ffn, h(),
                                  bias_linear(), WeightInit(), etp_, gated(), expert_attr, "");
          !s.ok()) {
        return s;
      }
      if (absl::Status s = Linear(*fc2, e.Sub("linear_fc2"), false, h(), ffn, bias_linear(),
                                  OutputInit(), etp_, 1, expert_attr, "");
          !s.ok()) {
        return s;
      }
    }
  }
  // Shared experts over the dense TP group, when configured.
  const ModuleSpec* shared = spec.Submodule("shared_experts");
  if (t_.has_moe_shared_expert_intermediate_size() && shared != nullptr &&
      shared->module != "IdentityOp") {
    const int64_t fs = t_.moe_shared_expert_intermediate_size();
    const Prefix sp = prefix.Sub("shared_experts");
    const ModuleSpec* fc1 = shared->Submodule("linear_fc1");
    const ModuleSpec* fc2 = shared->Submodule("linear_fc2");
    if (fc1 == nullptr || fc2 == nullptr) {
      return absl::InvalidArgumentError("SharedExpertMLP needs linear_fc1 and linear_fc2");
    }
    // gate_weight is SharedExpertMLP's own parameter, created after MLP.__init__ built the
    // linears: named_parameters() lists a module's own parameters before its children's.
    if (t_.moe_shared_expert_gate()) {
      Add(sp, "gate_weight", "gate_weight", {1, h()}, WeightInit()).sequence_parallel =
          sequence_parallel();
    }
    if (absl::Status s = Linear(*fc1, sp.Sub("linear_fc1"), true, gated() * fs, h(), false,
                                WeightInit(), tp_, gated(), false, "");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Linear(*fc2, sp.Sub("linear_fc2"), false, h(), fs, false, OutputInit(),
                                tp_, 1, false, "");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status StageWalker::TransformerLayer(const ModuleSpec& spec, const Prefix& prefix, bool moe) {
  const ModuleSpec* attention = spec.Submodule("self_attention");
  if (attention == nullptr)
    return absl::InvalidArgumentError("TransformerLayer needs self_attention");
  const layer_spec::ModuleInfo* attention_info = layer_spec::FindModule(attention->module);
  const bool mla =
      attention_info != nullptr && attention_info->kind == ModuleKind::kMlaSelfAttention;
  const ModuleSpec* input_norm = spec.Submodule("input_layernorm");
  if (input_norm != nullptr && input_norm->module != "IdentityOp") {
    if (mla) {
      // MLA's TE spec keeps input_layernorm too: its canonical name is its own.
      if (absl::Status s = Norm(prefix.Sub("input_layernorm"), input_norm->module, h()); !s.ok()) {
        return s;
      }
    } else {
      // Canonical (TE) name of the input norm: self_attention.linear_qkv.layer_norm_*.
      Prefix p{absl::StrCat(prefix.local, "input_layernorm."),
               absl::StrCat(prefix.canonical, "self_attention.linear_qkv.")};
      if (absl::Status s = Norm(p, input_norm->module, h(), "weight", "bias", "layer_norm_weight",
                                "layer_norm_bias");
          !s.ok()) {
        return s;
      }
    }
  }
  if (absl::Status s = mla ? MlaSelfAttention(*attention, prefix.Sub("self_attention"))
                           : SelfAttention(*attention, prefix.Sub("self_attention"));
      !s.ok()) {
    return s;
  }
  const ModuleSpec* mlp = spec.Submodule("mlp");
  if (mlp == nullptr) return absl::InvalidArgumentError("TransformerLayer needs mlp");
  const layer_spec::ModuleInfo* mlp_info = layer_spec::FindModule(mlp->module);
  const bool is_moe = mlp_info != nullptr && mlp_info->kind == ModuleKind::kMoeLayer;
  (void)moe;
  const ModuleSpec* pre_mlp = spec.Submodule("pre_mlp_layernorm");
  if (pre_mlp != nullptr && pre_mlp->module != "IdentityOp") {
    absl::Status s;
    if (is_moe) {
      s = Norm(prefix.Sub("pre_mlp_layernorm"), pre_mlp->module, h());
    } else {
      Prefix p{absl::StrCat(prefix.local, "pre_mlp_layernorm."),
               absl::StrCat(prefix.canonical, "mlp.linear_fc1.")};
      s = Norm(p, pre_mlp->module, h(), "weight", "bias", "layer_norm_weight", "layer_norm_bias");
    }
    if (!s.ok()) return s;
  }
  if (is_moe) return MoeLayer(*mlp, prefix.Sub("mlp"));
  return DenseMlp(*mlp, prefix.Sub("mlp"), t_.ffn_hidden_size());
}

absl::Status StageWalker::TeTransformerLayer(const Prefix& prefix) {
  // Transformer Engine's TransformerLayer (fused qkv, LayerNormLinear and LayerNormMLP), with
  // canonical names mapped to the TE layer-spec keys.
  Prefix qkv{absl::StrCat(prefix.local, "self_attention.layernorm_qkv."),
             absl::StrCat(prefix.canonical, "self_attention.linear_qkv.")};
  if (absl::Status s = Norm(qkv, "TENorm", h(), "layer_norm_weight", "layer_norm_bias"); !s.ok()) {
    return s;
  }
  const int64_t qkv_out = (heads() + 2 * groups()) * kv();
  if (absl::Status s =
          Column(qkv, qkv_out, h(), bias_linear() || t_.add_qkv_bias(), WeightInit(), tp_);
      !s.ok()) {
    return s;
  }
  Prefix proj{absl::StrCat(prefix.local, "self_attention.proj."),
              absl::StrCat(prefix.canonical, "self_attention.linear_proj.")};
  if (absl::Status s = Row(proj, h(), heads() * kv(), bias_linear(), OutputInit(), tp_); !s.ok()) {
    return s;
  }
  Prefix mlp{absl::StrCat(prefix.local, "layernorm_mlp."), ""};
  Prefix fc1_canon{mlp.local, absl::StrCat(prefix.canonical, "mlp.linear_fc1.")};
  if (absl::Status s = Norm(fc1_canon, "TENorm", h(), "layer_norm_weight", "layer_norm_bias");
      !s.ok()) {
    return s;
  }
  const int64_t ffn = t_.ffn_hidden_size();
  if (absl::Status s = Column(fc1_canon, gated() * ffn, h(), bias_linear(), WeightInit(), tp_,
                              gated(), false, "fc1_weight", "fc1_bias");
      !s.ok()) {
    return s;
  }
  Prefix fc2_canon{mlp.local, absl::StrCat(prefix.canonical, "mlp.linear_fc2.")};
  return Row(fc2_canon, h(), ffn, bias_linear(), OutputInit(), tp_, false, "fc2_weight",
             "fc2_bias");
}

absl::Status StageWalker::MtpLayer(const ModuleSpec& spec, const Prefix& prefix) {
  // MultiTokenPredictionLayer: enorm, hnorm, eh_proj, mtp_model_layer, final_layernorm.
  for (const char* norm : {"enorm", "hnorm"}) {
    if (absl::Status s = Norm(prefix.Sub(norm), spec.Submodule(norm)->module, h()); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = Column(prefix.Sub("eh_proj"), h(), 2 * h(), false, WeightInit(), tp_);
      !s.ok()) {
    return s;
  }
  const ModuleSpec* inner = spec.Submodule("mtp_model_layer");
  if (absl::Status s = TransformerLayer(*inner, prefix.Sub("mtp_model_layer"), false); !s.ok()) {
    return s;
  }
  return Norm(prefix.Sub("final_layernorm"), spec.Submodule("layer_norm")->module, h());
}

absl::StatusOr<std::vector<ParamInfo>> StageWalker::Walk() {
  const GPTModelConfig& c = *ctx_.config;
  const ChunkLayout& chunk = *ctx_.chunk;
  const bool mtp_here = ctx_.mtp_specs != nullptr && !ctx_.mtp_specs->empty();
  const bool tied = c.share_embeddings_and_output_weights();
  // 1. embedding (pre_process or the MTP chunk).
  if (chunk.pre_process || mtp_here) {
    Prefix emb{"embedding.word_embeddings.", "embedding.word_embeddings."};
    const double std =
        t_.has_embedding_init_method_std() ? t_.embedding_init_method_std() : t_.init_method_std();
    ParamInfo& w = Add(emb, "weight", "weight", {ctx_.vocab_size, h()}, InitMethod::Normal(std));
    if (absl::Status s = Shard(w, 0, tp_, 1); !s.ok()) return s;
    if (!chunk.pre_process) w.shared_embedding = true;
    if (c.position_embedding_type() == "learned_absolute") {
      Prefix pos{"embedding.position_embeddings.", "embedding.position_embeddings."};
      ParamInfo& p = Add(pos, "weight", "weight", {c.seq_length(), h()}, InitMethod::Normal(std));
      p.dtype = ctx_.position_embedding_dtype;
    }
  }
  // 2. decoder layers (module-local index i, global index offset + i), then the final norm.
  const std::vector<layer_spec::ModuleSpecPtr>& layers = ctx_.specs->layers;
  for (int i = 0; i < static_cast<int>(layers.size()) && !exhausted_; ++i) {
    const int global = chunk.layer_offset + i;
    Prefix p{absl::StrCat("decoder.layers.", i, "."), absl::StrCat("decoder.layers.", global, ".")};
    const layer_spec::ModuleInfo* info = layer_spec::FindModule(layers[i]->module);
    absl::Status s;
    if (info != nullptr && info->kind == ModuleKind::kTeTransformerLayer) {
      s = TeTransformerLayer(p);
    } else if (info != nullptr && info->kind == ModuleKind::kTransformerLayer) {
      s = TransformerLayer(*layers[i], p, false);
    } else {
      s = absl::InvalidArgumentError(
          absl::StrCat("transformer_layer_spec: a decoder layer must be a TransformerLayer, got '",
                       layers[i]->module, "'"));
    }
    if (!s.ok()) return s;
  }
  if (chunk.has_final_layernorm) {
    if (absl::Status s = Norm(Prefix{"decoder.final_layernorm.", "decoder.final_layernorm."},
                              ctx_.specs->final_layernorm, h());
        !s.ok()) {
      return s;
    }
  }
  // 3. MTP layers: local index i, global index mtp_offset + i.
  if (mtp_here) {
    for (int i = 0; i < static_cast<int>(ctx_.mtp_specs->size()); ++i) {
      Prefix p{absl::StrCat("mtp.layers.", i, "."),
               absl::StrCat("mtp.layers.", chunk.mtp_offset + i, ".")};
      if (absl::Status s = MtpLayer(*(*ctx_.mtp_specs)[i], p); !s.ok()) return s;
    }
  }
  // 4. output layer: no weight of its own when it is the embedding (pre_process and tied).
  if (chunk.post_process && !(chunk.pre_process && tied)) {
    Prefix out{"output_layer.", tied ? "embedding.word_embeddings." : "output_layer."};
    const double std = tied ? (t_.has_embedding_init_method_std() ? t_.embedding_init_method_std()
                                                                  : t_.init_method_std())
                            : t_.init_method_std();
    ParamInfo& w = Add(out, "weight", "weight", {ctx_.vocab_size, h()}, InitMethod::Normal(std));
    if (absl::Status s = Shard(w, 0, tp_, 1); !s.ok()) return s;
    w.shared_embedding = tied;
  }
  // _allreduce_non_tensor_model_parallel_grads: the sequence_parallel parameters, and with
  // qk_layernorm every parameter named like a q/k norm (Megatron matches the names). Multi-latent
  // attention's q_layernorm / kv_layernorm normalise the whole (gathered) compressed latent, so
  // every rank already holds their full gradient: Megatron d98e8a64's name match also sums the
  // local spec's MLA q_layernorm over the ranks (tp times its gradient); this keeps the model's
  // gradient, what one rank computes.
  const bool per_head_qk_norms = t_.qk_layernorm() && !t_.multi_latent_attention();
  for (ParamInfo& p : params_) {
    p.sum_grad_over_tp = p.sequence_parallel ||
                         (per_head_qk_norms && (p.name.find("q_layernorm") != std::string::npos ||
                                                p.name.find("k_layernorm") != std::string::npos));
  }
  if (exhausted_) return absl::ResourceExhaustedError("the plan's parameter budget ran out");
  return std::move(params_);
}

}  // namespace

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::vector<ParamInfo>> PlanStageBuffers(const StageContext& context) {
  std::vector<ParamInfo> out;
  const TransformerConfig& t = context.config->transformer();
  if (!t.moe_router_enable_expert_bias() || !t.has_num_moe_experts()) return out;
  auto add = [&](const layer_spec::ModuleSpec& layer, const std::string& local,
                 const std::string& canonical) {
    const layer_spec::ModuleSpec* mlp = layer.Submodule("mlp");
    const layer_spec::ModuleInfo* info = mlp ? layer_spec::FindModule(mlp->module) : nullptr;
    if (info == nullptr || info->kind != ModuleKind::kMoeLayer) return;
    ParamInfo b;
    b.name = absl::StrCat(local, "mlp.router.expert_bias");
    b.canonical_name = absl::StrCat(canonical, "mlp.router.expert_bias");
    b.shape = b.canonical_shape = {t.num_moe_experts()};
    b.dtype = DType::kFloat32;
    b.init = InitMethod::Constant(0.0);
    out.push_back(std::move(b));
  };
  const ChunkLayout& chunk = *context.chunk;
  for (int i = 0; i < static_cast<int>(context.specs->layers.size()); ++i) {
    add(*context.specs->layers[i], absl::StrCat("decoder.layers.", i, "."),
        absl::StrCat("decoder.layers.", chunk.layer_offset + i, "."));
  }
  if (context.mtp_specs != nullptr) {
    for (int i = 0; i < static_cast<int>(context.mtp_specs->size()); ++i) {
      const layer_spec::ModuleSpec* inner = (*context.mtp_specs)[i]->Submodule("mtp_model_layer");
      if (inner == nullptr) continue;
      add(*inner, absl::StrCat("mtp.layers.", i, ".mtp_model_layer."),
          absl::StrCat("mtp.layers.", chunk.mtp_offset + i, ".mtp_model_layer."));
    }
  }
  return out;
}

absl::StatusOr<std::vector<ParamInfo>> PlanStageParameters(const StageContext& context,
                                                           const StageCoords& coords) {
  StageWalker walker(context, coords);
  return walker.Walk();
}

}  // namespace gptb::plan
