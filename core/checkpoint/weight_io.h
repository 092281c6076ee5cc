#ifndef GPTB_CORE_CHECKPOINT_WEIGHT_IO_H_
#define GPTB_CORE_CHECKPOINT_WEIGHT_IO_H_

// Saving and loading the tensors one rank holds, slice by slice, in a canonical checkpoint or a
// Hugging Face directory (LibTorch). The model builder calls LoadWeights when a build loads
// instead of initialising; canonical_checkpoint.h offers both over a built RankModel.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"
#include "core/parallel/process_group_collection.h"
#include "core/plan/model_plan.h"

namespace gptb::checkpoint {

// One parameter a rank holds: its plan entry and its (local shard) tensor, on any device.
struct HeldTensor {
  const plan::ParamInfo* info = nullptr;
  torch::Tensor tensor;
};
// A rank's parameters and persistent buffers, [chunk][i] in the order of
// StagePlan::checkpoint_tensors.
using HeldTensors = std::vector<std::vector<HeldTensor>>;

struct LoadOptions {
  CheckpointFormat format = CheckpointFormat::kAuto;
  // Compare every architecture field of the stored config, not only those that change tensor
  // shapes (CheckConfigCompatible).
  bool strict_config = true;
  ReadMode read_mode = ReadMode::kPread;
  // Threads reading this rank's tensors; 0: one (a build uses its init thread count).
  int threads = 0;
  // When set, the path and every file read must resolve inside it (checkpoint_directory.h).
  std::string root;
};

struct LoadStats {
  CheckpointFormat format = CheckpointFormat::kCanonical;
  int64_t tensors = 0;      // local tensors filled
  uint64_t bytes_read = 0;  // stored bytes read
  // Vocabulary rows the checkpoint does not store (the model pads its vocabulary further than
  // the checkpoint did), initialised as the builder initialises them.
  int64_t padding_rows_initialized = 0;
  double seconds = 0.0;
};

// Fills `held` from the checkpoint at `path`: checks the stored config against plan.config()
// and every canonical tensor against the stored ones (CheckpointReader::Bind), then reads only
// the stored bytes of this rank's slices, converting the stored dtype to each tensor's. Rows of
// a vocabulary tensor past what the checkpoint stores are padding: they get the values the
// builder's initialisation gives them (seed plan.options().build.seed()); stored rows past the
// model's padded vocabulary are skipped. Each rank calls it on its own; no collective.
absl::StatusOr<LoadStats> LoadWeights(const plan::ModelPlan& plan, const HeldTensors& held,
                                      const std::string& path, const LoadOptions& options = {});

struct SaveOptions {
  // kCanonical or kHuggingFace.
  CheckpointFormat format = CheckpointFormat::kCanonical;
  // Hugging Face only: the model_type to export as; empty = InferHfFamily.
  std::string hf_model_type;
  // Files hold at most this many tensor bytes (a larger tensor gets a file of its own);
  // transformers' default max_shard_size "5GB".
  uint64_t max_shard_bytes = 5'000'000'000;
  // Replace an existing checkpoint at the path (otherwise ALREADY_EXISTS). Only a checkpoint
  // gptbuilder saved is ever replaced (checkpoint_directory.h); anything else is
  // FAILED_PRECONDITION and left alone.
  bool overwrite = false;
  // When set, the path must resolve inside it (checkpoint_directory.h).
  std::string root;
  // fdatasync every file before the checkpoint is published.
  bool sync = true;
  int threads = 1;
  // Extra provenance entries for every file's __metadata__ (not "format" or gptb_* keys).
  std::map<std::string, std::string> metadata;
  WriteMode write_mode = WriteMode::kPwrite;
};

struct SaveStats {
  uint64_t bytes_written = 0;  // by this rank
  int files = 0;               // safetensors files of the checkpoint
  double seconds = 0.0;
};

// Writes the model planned by `plan` to `path` (a directory) in options.format. Every rank of
// the world calls it at the same time with its held tensors: the header of every file follows
// from the plan, so rank 0 creates the files in a fresh staging sibling of `path`
// (checkpoint_directory.h: created exclusively under a name rank 0 draws and shares), the others
// open them, and each rank writes only the slices it owns (OwnedParameters) at their offsets;
// once all succeeded, rank 0 moves the directory to `path`, so a checkpoint at `path` is always
// complete, and nothing the save did not create is ever removed. For
// Hugging Face, rank 0 also writes config.json. `groups` (null for a world of one) carry the
// agreement on success: every rank returns an error when any rank failed (ABORTED naming the
// lowest failing rank, or its own error). Ranks wait for each other at three points (files
// created, slices written, checkpoint published) for at most their groups' timeout, so the
// timeout must cover the spread between the fastest and the slowest writer (OwnedParameters
// balances the bytes). The path must be visible to every rank (a shared filesystem across nodes).
absl::StatusOr<SaveStats> SaveWeights(const plan::ModelPlan& plan, int rank,
                                      const parallel::ProcessGroupCollection* groups,
                                      const HeldTensors& held, const std::string& path,
                                      const SaveOptions& options = {});

// OK on every rank when `local` is OK on every rank; otherwise the rank's own error, or ABORTED
// naming the lowest failing rank and `what`. A collective over the decoder grid (tp-dp-cp, then
// pp): every rank must call it.
absl::Status AgreeAcrossWorld(const parallel::ProcessGroupCollection* groups,
                              const absl::Status& local, std::string_view what);

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_WEIGHT_IO_H_
