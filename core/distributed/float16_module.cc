#include "core/distributed/float16_module.h"

#include <string>

#include "absl/strings/match.h"
#include "core/parallel/torch_status.h"

namespace gptb::distributed {
namespace {

bool IsExpertBias(const std::string& name) {
  return name == "expert_bias" || absl::EndsWith(name, ".expert_bias");
}

}  // namespace

absl::StatusOr<Float16Module> Float16Module::Wrap(torch::nn::Module& module, torch::Dtype dtype,
                                                  bool first_stage, bool last_stage,
                                                  bool fp32_output) {
  if (dtype != torch::kBFloat16 && dtype != torch::kFloat16) {
    return absl::InvalidArgumentError(
        "Float16Module casts to bfloat16 (bf16) or float16 (fp16) only");
  }
  absl::Status status = parallel::CallTorch("casting the model chunk to half precision", [&] {
    torch::NoGradGuard no_grad;
    for (auto& item : module.named_parameters(/*recurse=*/true)) {
      torch::Tensor& p = item.value();
      if (p.is_floating_point() && p.scalar_type() != dtype) p.set_data(p.to(dtype));
    }
    for (auto& item : module.named_buffers(/*recurse=*/true)) {
      torch::Tensor& b = item.value();
      if (!b.is_floating_point()) continue;
      const torch::Dtype target = IsExpertBias(item.key()) ? torch::kFloat32 : dtype;
      if (b.scalar_type() != target) b.set_data(b.to(target));
    }
  });
  if (!status.ok()) return status;
  return Float16Module(dtype, first_stage, last_stage, fp32_output);
}

torch::Tensor Float16Module::Input(const torch::Tensor& input) const {
  if (first_stage_ && input.defined() && input.scalar_type() == torch::kFloat32) {
    return input.to(dtype_);
  }
  return input;
}

torch::Tensor Float16Module::Output(const torch::Tensor& output) const {
  if (last_stage_ && fp32_output_ && output.defined() &&
      (output.scalar_type() == torch::kFloat16 || output.scalar_type() == torch::kBFloat16)) {
    return output.to(torch::kFloat32);
  }
  return output;
}

}  // namespace gptb::distributed
