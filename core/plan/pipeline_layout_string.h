#ifndef GPTB_CORE_PLAN_PIPELINE_LAYOUT_STRING_H_
#define GPTB_CORE_PLAN_PIPELINE_LAYOUT_STRING_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace gptb::plan {

// Megatron's `pipeline_model_parallel_layout` string, parsed. The alphabet is E (embedding),
// t (decoder layer), m (MTP layer) and L (loss); `|` separates stages; `(..)*k` and `x*k` repeat;
// commas are cosmetic. Entry i = a*p + b of the flat list describes vp chunk a of pp rank b.
struct PipelineLayoutString {
  int pipeline_model_parallel_size = 1;
  int virtual_pipeline_model_parallel_size = 1;
  // stages[pp_rank][vp_stage] = the stage's layer characters, e.g. "Ett".
  std::vector<std::vector<std::string>> stages;

  const std::string& Stage(int pp_rank, int vp_stage) const { return stages[pp_rank][vp_stage]; }
  // Number of layers of type `kind` ('t' or 'm') on (pp_rank, vp_stage).
  int Count(char kind, int pp_rank, int vp_stage) const;
  // Number of layers of type `kind` before (pp_rank, vp_stage) in (vp-major, pp-minor) order.
  int Offset(char kind, int pp_rank, int vp_stage) const;
};

// Expands and splits a layout string into its flat stage list (Megatron's parse_str_to_list).
// INVALID_ARGUMENT names an unknown character or a malformed repetition.
absl::StatusOr<std::vector<std::string>> ExpandPipelineLayout(std::string_view layout);

// Parses `layout` for `pipeline_model_parallel_size` ranks: the stage count must be a multiple
// of it; the quotient is the virtual pipeline size.
absl::StatusOr<PipelineLayoutString> ParsePipelineLayout(std::string_view layout,
                                                         int pipeline_model_parallel_size);

// Megatron's validate_layer_layout: one E first, one L last, `num_layers` decoders, MTP count
// equal to mtp_num_layers (0 when unset), MTP after every decoder, MTP only in the last vp chunk
// of a rank and all in one chunk, never on pp rank 0 before its last chunk. Returns every
// problem found as a sentence (empty when valid).
std::vector<std::string> ValidatePipelineLayout(const PipelineLayoutString& layout, int num_layers,
                                                std::optional<int> mtp_num_layers);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PIPELINE_LAYOUT_STRING_H_
