#ifndef GPTB_CORE_CONFIG_ACCEPTED_VALUES_H_
#define GPTB_CORE_CONFIG_ACCEPTED_VALUES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gptb::config {

// The accepted spellings of the enumerated string fields, Megatron's own (its Literal[...] types
// and the values its __post_init__ compares against). One table per field; Finalize rejects
// anything else and lists these.
const std::vector<std::string>& NormalizationValues();          // LayerNorm, RMSNorm
const std::vector<std::string>& PositionEmbeddingTypeValues();  // learned_absolute, rope, ...
const std::vector<std::string>& SoftmaxTypeValues();            // vanilla, off-by-one, learnable
const std::vector<std::string>& TransformerImplValues();
const std::vector<std::string>& CudaGraphImplValues();
const std::vector<std::string>& RecomputeGranularityValues();
const std::vector<std::string>& RecomputeMethodValues();
const std::vector<std::string>& Fp8FormatValues();
const std::vector<std::string>& Fp4FormatValues();
const std::vector<std::string>& MoeLoadBalancingTypeValues();
const std::vector<std::string>& MoeScoreFunctionValues();
const std::vector<std::string>& MoeRouterDtypeValues();
const std::vector<std::string>& MoeTokenDispatcherTypeValues();
const std::vector<std::string>& MoeTokenDropPolicyValues();
const std::vector<std::string>& MlaRopeTypeValues();
const std::vector<std::string>& DataParallelShardingStrategyValues();
const std::vector<std::string>& OuterDpShardingStrategyValues();
// The named `transformer_layer_spec` values (Bridge's spec functions).
const std::vector<std::string>& LayerSpecNames();

// Canonical dtype names: float32, bfloat16, float16.
const std::vector<std::string>& DtypeValues();
// Bridge's str_to_dtype spellings (fp32, 32, 32-true, bf16, bf16-mixed, fp16, 16, 16-mixed,
// torch.float32, ...) plus torch's own aliases (torch.float, torch.half), mapped to the canonical
// name. nullopt for anything else, FP8 types included (they are not parameter dtypes).
std::optional<std::string> NormalizeDtype(std::string_view name);

// Canonical activation names: Bridge's ACTIVATION_FUNC_MAP short names without its aliases
// (gelu, silu, relu, squared_relu, quick_gelu, fast_gelu, sigmoid, tanh).
const std::vector<std::string>& ActivationValues();
// A canonical name for an activation spelling: the canonical names themselves, Bridge's aliases
// relu2 -> squared_relu and gelu_pytorch_tanh -> fast_gelu, and the fully qualified
// torch.nn.functional.{gelu,relu,silu,sigmoid}. nullopt otherwise.
std::optional<std::string> NormalizeActivation(std::string_view name);

// True when `value` is one of `values`.
bool IsOneOf(std::string_view value, const std::vector<std::string>& values);
// "'a', 'b' or 'c'" for messages.
std::string QuotedList(const std::vector<std::string>& values);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_ACCEPTED_VALUES_H_
