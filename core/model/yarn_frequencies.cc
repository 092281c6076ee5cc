#include "core/model/yarn_frequencies.h"

#include <algorithm>
#include <cmath>

namespace gptb::model {
namespace {

// The channel (of dim/2 rotated pairs) at which `rotations` full turns fit in the original
// context (Megatron's _yarn_find_correction_dim).
double CorrectionDim(double rotations, int64_t dim, double base, double max_positions) {
  return (static_cast<double>(dim) * std::log(max_positions / (rotations * 2.0 * M_PI))) /
         (2.0 * std::log(base));
}

}  // namespace

double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double YarnConcentrationFactor(double scale, double mscale, double mscale_all_dim) {
  return YarnMscale(scale, mscale) / YarnMscale(scale, mscale_all_dim);
}

torch::Tensor YarnInverseFrequencies(const YarnParameters& p) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor powers =
      torch::pow(p.base, torch::arange(0, p.dim, 2, f32) / static_cast<double>(p.dim));
  torch::Tensor extrapolated = 1.0 / powers;
  torch::Tensor interpolated = 1.0 / (p.scaling_factor * powers);
  double low = CorrectionDim(p.beta_fast, p.dim, p.base, p.original_max_positions);
  double high = CorrectionDim(p.beta_slow, p.dim, p.base, p.original_max_positions);
  if (p.round_to_int) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(p.dim - 1));
  if (low == high) high += 0.001;  // Megatron's guard against a zero-width ramp
  torch::Tensor ramp = ((torch::arange(p.dim / 2, f32) - low) / (high - low)).clamp(0, 1);
  torch::Tensor keep = 1.0 - ramp;
  return interpolated * (1 - keep) + extrapolated * keep;
}

}  // namespace gptb::model
