#ifndef GPTB_CORE_MODEL_YARN_FREQUENCIES_H_
#define GPTB_CORE_MODEL_YARN_FREQUENCIES_H_

#include <torch/torch.h>

#include <cstdint>

namespace gptb::model {

// The parameters of Megatron's YarnRotaryEmbedding, whoever reads them from the config
// (MLA: rotary_scaling_factor, beta_fast, ...; standard attention: the yarn_* fields).
struct YarnParameters {
  int64_t dim = 0;  // rotated channels per head (even)
  double base = 10000.0;
  double scaling_factor = 1.0;
  double original_max_positions = 4096.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool round_to_int = true;  // correction_range_round_to_int
};

// YaRN's inverse frequencies [dim / 2] (Megatron's YarnRotaryEmbedding.get_emb): channels that
// turn more than beta_fast times within original_max_positions keep their frequency
// (extrapolation), those turning fewer than beta_slow times are divided by scaling_factor
// (interpolation), with a linear ramp between the two correction dimensions.
torch::Tensor YarnInverseFrequencies(const YarnParameters& p);

// YaRN's attention scale for a context extended `scale` times (Megatron's _yarn_get_mscale).
double YarnMscale(double scale, double mscale);

// The concentration factor that multiplies cos and sin (Megatron's
// _yarn_get_concentration_factor): YarnMscale(scale, mscale) / YarnMscale(scale, mscale_all_dim).
double YarnConcentrationFactor(double scale, double mscale, double mscale_all_dim);

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_YARN_FREQUENCIES_H_
