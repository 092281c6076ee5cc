#ifndef GPTB_CORE_DISTRIBUTED_FLOAT16_MODULE_H_
#define GPTB_CORE_DISTRIBUTED_FLOAT16_MODULE_H_

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace gptb::distributed {

// Megatron's Float16Module for one model chunk. LibTorch modules have no common forward
// signature, so the wrapper is the in-place cast plus the two casts its forward applies; the
// caller runs `output = f16.Output(stage(f16.Input(input)))`. state_dict names are untouched
// (Megatron's wrapper delegates state_dict too, so no "module." prefix either way).
class Float16Module {
 public:
  // Casts every floating-point parameter and buffer of `module` (recursively) to `dtype`
  // (bfloat16 or float16) in place, keeping buffers named `expert_bias` in fp32 (Megatron's
  // _maintain_float32_expert_bias after wrapping). `first_stage` / `last_stage`: the chunk's
  // pre_process / post_process. INVALID_ARGUMENT for another dtype.
  static absl::StatusOr<Float16Module> Wrap(torch::nn::Module& module, torch::Dtype dtype,
                                            bool first_stage, bool last_stage,
                                            bool fp32_output = true);

  torch::Dtype dtype() const { return dtype_; }
  // On the first stage fp32 inputs become `dtype` (token ids and other tensors pass unchanged);
  // elsewhere the input arrives already in `dtype` from the previous stage.
  torch::Tensor Input(const torch::Tensor& input) const;
  // On the last stage with fp32_output, fp16/bf16 outputs become fp32; otherwise unchanged.
  torch::Tensor Output(const torch::Tensor& output) const;

 private:
  Float16Module(torch::Dtype dtype, bool first, bool last, bool fp32_output)
      : dtype_(dtype), first_stage_(first), last_stage_(last), fp32_output_(fp32_output) {}

  torch::Dtype dtype_;
  bool first_stage_;
  bool last_stage_;
  bool fp32_output_;
};

}  // namespace gptb::distributed

#endif  // GPTB_CORE_DISTRIBUTED_FLOAT16_MODULE_H_
