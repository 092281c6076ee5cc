#include "core/config/accepted_values.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/dtype/dtype.h"

namespace gptb::config {
namespace {

// Function-local statics: never destroyed, so safe to use from other static initialisers.
#define GPTB_VALUES(...)                                                 \
  static const auto* values = new std::vector<std::string>{__VA_ARGS__}; \
  return *values

}  // namespace

const std::vector<std::string>& NormalizationValues() { GPTB_VALUES("LayerNorm", "RMSNorm"); }
const std::vector<std::string>& PositionEmbeddingTypeValues() {
  GPTB_VALUES("learned_absolute", "rope", "mrope", "yarn", "none");
}
const std::vector<std::string>& SoftmaxTypeValues() {
  GPTB_VALUES("vanilla", "off-by-one", "learnable");
}
const std::vector<std::string>& TransformerImplValues() {
  GPTB_VALUES("transformer_engine", "local", "inference_optimized");
}
const std::vector<std::string>& CudaGraphImplValues() {
  GPTB_VALUES("none", "local", "transformer_engine", "full_iteration");
}
const std::vector<std::string>& RecomputeGranularityValues() { GPTB_VALUES("full", "selective"); }
const std::vector<std::string>& RecomputeMethodValues() { GPTB_VALUES("uniform", "block"); }
const std::vector<std::string>& Fp8FormatValues() { GPTB_VALUES("e4m3", "hybrid"); }
const std::vector<std::string>& Fp4FormatValues() { GPTB_VALUES("e2m1"); }
const std::vector<std::string>& MoeLoadBalancingTypeValues() {
  GPTB_VALUES("aux_loss", "seq_aux_loss", "global_aux_loss", "sinkhorn", "quantile_balancing",
              "none");
}
const std::vector<std::string>& MoeScoreFunctionValues() {
  GPTB_VALUES("softmax", "sigmoid", "sqrtsoftplus");
}
const std::vector<std::string>& MoeRouterDtypeValues() { GPTB_VALUES("fp32", "fp64"); }
const std::vector<std::string>& MoeTokenDispatcherTypeValues() {
  GPTB_VALUES("allgather", "alltoall", "flex");
}
const std::vector<std::string>& MoeTokenDropPolicyValues() { GPTB_VALUES("probs", "position"); }
const std::vector<std::string>& MlaRopeTypeValues() { GPTB_VALUES("rope", "yarn"); }
const std::vector<std::string>& DataParallelShardingStrategyValues() {
  GPTB_VALUES("no_shard", "optim", "optim_grads", "optim_grads_params");
}
const std::vector<std::string>& OuterDpShardingStrategyValues() {
  GPTB_VALUES("no_shard", "optim");
}
const std::vector<std::string>& LayerSpecNames() {
  GPTB_VALUES("default", "local", "transformer_engine", "transformer_engine_full", "modelopt");
}
const std::vector<std::string>& DtypeValues() {
  // The dtype table's parameter dtypes (core/dtype), by name.
  static const auto* values = [] {
    auto* v = new std::vector<std::string>;
    for (DType dtype : ParameterDTypes()) v->emplace_back(DTypeName(dtype));
    return v;
  }();
  return *values;
}
const std::vector<std::string>& ActivationValues() {
  GPTB_VALUES("gelu", "silu", "relu", "squared_relu", "quick_gelu", "fast_gelu", "sigmoid", "tanh");
}

#undef GPTB_VALUES

std::optional<std::string> NormalizeDtype(std::string_view name) {
  static const auto* aliases = new std::vector<std::pair<std::string, std::string>>{
      {"float32", "float32"},
      {"fp32", "float32"},
      {"32", "float32"},
      {"32-true", "float32"},
      {"torch.float32", "float32"},
      {"torch.float", "float32"},
      {"torch.fp32", "float32"},
      {"bfloat16", "bfloat16"},
      {"bf16", "bfloat16"},
      {"bf16-mixed", "bfloat16"},
      {"torch.bfloat16", "bfloat16"},
      {"torch.bf16", "bfloat16"},
      {"float16", "float16"},
      {"fp16", "float16"},
      {"16", "float16"},
      {"16-mixed", "float16"},
      {"torch.float16", "float16"},
      {"torch.half", "float16"},
      {"torch.fp16", "float16"},
  };
  for (const auto& [alias, canonical] : *aliases) {
    if (alias == name) return canonical;
  }
  return std::nullopt;
}

std::optional<std::string> NormalizeActivation(std::string_view name) {
  if (IsOneOf(name, ActivationValues())) return std::string(name);
  static const auto* aliases = new std::vector<std::pair<std::string, std::string>>{
      {"relu2", "squared_relu"},
      {"gelu_pytorch_tanh", "fast_gelu"},
      {"torch.nn.functional.gelu", "gelu"},
      {"torch.nn.functional.relu", "relu"},
      {"torch.nn.functional.silu", "silu"},
      {"torch.nn.functional.sigmoid", "sigmoid"},
  };
  for (const auto& [alias, canonical] : *aliases) {
    if (alias == name) return canonical;
  }
  return std::nullopt;
}

bool IsOneOf(std::string_view value, const std::vector<std::string>& values) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string QuotedList(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += (i + 1 == values.size()) ? " or " : ", ";
    absl::StrAppend(&out, "'", values[i], "'");
  }
  return out;
}

}  // namespace gptb::config
