#ifndef GPTB_CORE_PLAN_PIPELINE_LAYOUT_H_
#define GPTB_CORE_PLAN_PIPELINE_LAYOUT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/plan/pipeline_layout_string.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::plan {

// The pipeline split's rules live here, once: Finalize (core/config) reports each problem as a
// field violation `transformer.<field>`, PipelineLayout::Create refuses a config that has any.

// A problem with how a TransformerConfig splits its layers over pipeline stages.
struct PipelineSplitProblem {
  std::string field;    // the TransformerConfig field it is about, e.g. "num_layers"
  std::string reason;   // UPPER_SNAKE, e.g. "PIPELINE_SPLIT_UNEVEN"
  std::string message;  // what is wrong and what would be valid, as a sentence
};

// pipeline_model_parallel_layout parsed for pipeline_model_parallel_size and checked against
// num_layers and mtp_num_layers (Megatron's PipelineParallelLayerLayout: parse_str_to_list and
// validate_layer_layout). nullopt without a problem when the layout is unset or blank or pp < 1;
// nullopt with an INVALID_LAYOUT problem when it does not parse. A layout that parses is
// returned even when its contents have problems (each is appended, INVALID_LAYOUT).
std::optional<PipelineLayoutString> CheckLayoutString(
    const gptbuilder::v1::TransformerConfig& config, std::vector<PipelineSplitProblem>* problems);

// The split without a layout string: even, num_layers_in_first/last_pipeline_stage, or
// account_for_embedding/loss_in_pipeline_split, each against the virtual pipeline size
// (Megatron's get_num_layers_to_build preconditions and Bridge's finalize, with their texts).
// Empty when the split is valid, when a layout string decides it (CheckLayoutString), or when it
// cannot be judged (num_layers or pipeline_model_parallel_size < 1: other rules report those).
std::vector<PipelineSplitProblem> CheckPipelineSplit(
    const gptbuilder::v1::TransformerConfig& config);

// One model chunk: what pp rank `pp_rank` builds for virtual stage `vp_stage`.
struct ChunkLayout {
  int pp_rank = 0;
  std::optional<int> vp_stage;  // unset without virtual pipeline (Megatron's vp_stage=None)
  int chunk_index = 0;          // vp_stage, or 0
  bool pre_process = false;     // first vp chunk of pp rank 0
  bool post_process = false;    // last vp chunk of the last pp rank
  int num_layers = 0;           // decoder layers built on this chunk
  int layer_offset = 0;         // global index of its first decoder layer
  int num_mtp_layers = 0;       // MTP layers built on this chunk
  int mtp_offset = 0;           // global index of its first MTP layer
  // Megatron's has_final_layernorm_in_this_stage: post_process without MTP; with MTP, the chunk
  // that holds decoder layer num_layers - 1.
  bool has_final_layernorm = false;

  bool mtp_process() const { return num_mtp_layers > 0; }
  std::vector<int> LayerIds() const;
};

// The pipeline split of a finalized TransformerConfig: the one function that decides how many
// layers each (pp rank, vp stage) builds and where they start (Megatron's
// get_num_layers_to_build, get_transformer_layer_offset, get_mtp_num_layers_to_build and
// get_mtp_layer_offset), for even splits, VP, uneven first/last stages,
// account_for_embedding/loss_in_pipeline_split, and pipeline_model_parallel_layout strings.
// INVALID_ARGUMENT, with every problem CheckLayoutString / CheckPipelineSplit find, for a config
// Finalize would refuse.
class PipelineLayout {
 public:
  static absl::StatusOr<PipelineLayout> Create(const gptbuilder::v1::TransformerConfig& config);

  int pipeline_model_parallel_size() const { return pp_; }
  // Number of model chunks per pp rank (1 without VP; VP is ignored when pp == 1, as Bridge's
  // build_virtual_pipeline_stages does).
  int num_chunks() const { return chunks_per_rank_; }
  bool virtual_pipeline() const { return virtual_; }
  const ChunkLayout& Chunk(int pp_rank, int chunk_index) const {
    return chunks_[pp_rank * chunks_per_rank_ + chunk_index];
  }
  const std::vector<ChunkLayout>& chunks() const { return chunks_; }

 private:
  int pp_ = 1;
  int chunks_per_rank_ = 1;
  bool virtual_ = false;
  std::vector<ChunkLayout> chunks_;  // pp-major
};

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PIPELINE_LAYOUT_H_
