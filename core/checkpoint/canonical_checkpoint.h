#ifndef GPTB_CORE_CHECKPOINT_CANONICAL_CHECKPOINT_H_
#define GPTB_CORE_CHECKPOINT_CANONICAL_CHECKPOINT_H_

// Layout-independent checkpoints of a built model (checkpoint_manifest.h describes the format):
// saved from any parallel layout, loaded into any other, bit-identical weights. Also the
// Hugging Face export of a built model (the import happens at build time, through
// model::RankBuildOptions::load_from).

#include <string>

#include "absl/status/statusor.h"
#include "core/checkpoint/weight_io.h"
#include "core/model/rank_model.h"

namespace gptb::checkpoint {

// The rank's parameters and persistent buffers as HeldTensors (chunk by chunk, in the order
// of StagePlan::checkpoint_tensors). INTERNAL when a built stage does not match its plan.
absl::StatusOr<HeldTensors> HeldTensorsOf(const model::RankModel& model);

// Saves the model at `path` (a directory): every rank of the world calls it at the same time
// (SaveWeights explains the protocol and errors). options.format kCanonical writes gptbuilder's
// canonical checkpoint, kHuggingFace a Hugging Face model directory (config.json + safetensors)
// of options.hf_model_type or the inferred family. Chunks sharded FSDP-style are gathered for
// the save and released after it (a collective over their data-parallel groups).
absl::StatusOr<SaveStats> SaveCheckpoint(const model::RankModel& model, const std::string& path,
                                         const SaveOptions& options = {});

// Overwrites the rank's parameters with the checkpoint's (LoadWeights; no collective, each rank
// reads its own slices). FAILED_PRECONDITION for FSDP-sharded chunks (their full parameters are
// released; load at build time with RankBuildOptions::load_from instead).
absl::StatusOr<LoadStats> LoadCheckpoint(model::RankModel& model, const std::string& path,
                                         const LoadOptions& options = {});

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_CANONICAL_CHECKPOINT_H_
