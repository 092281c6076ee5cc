#ifndef GPTB_CORE_CHECKPOINT_CHECKPOINT_MANIFEST_H_
#define GPTB_CORE_CHECKPOINT_CHECKPOINT_MANIFEST_H_

// What a gptbuilder checkpoint holds, decided from the plan alone (no LibTorch): the canonical
// tensors of a model, which rank writes which slice of them, the metadata stored with them, and
// the check of a stored config against the model a checkpoint is loaded into.
//
// The canonical checkpoint format (version 1): safetensors files laid out like Hugging Face's
// (model.safetensors, or model-0000i-of-0000n.safetensors plus model.safetensors.index.json)
// holding every canonical tensor of the model exactly once -- unsharded, with global layer /
// expert / MTP indices and Transformer-Engine names (plan::ParamInfo::canonical_name), the gated
// fc1 as [gate; up] and linear_qkv in Megatron's per-group [q..q, k, v] row order, in the dtype
// the model holds it. Every file's __metadata__ carries:
//   format                 "pt" (so Hugging Face loaders accept the files)
//   gptb_format            "gptbuilder.canonical"
//   gptb_format_version    "1"
//   gptb_config            the resolved GPTModelConfig as JSON (core/config's emitter)
//   gptb_padded_vocab_size the embedding's row count
//   gptb_source_layout     "world=8 tp=2 pp=2 vp=2 cp=1 ep=1 etp=1" (provenance only)
//   hf_model_id            the config's hf_model_id, when set
// plus any caller-supplied provenance entries.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/plan/model_plan.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::checkpoint {

inline constexpr char kFormatKey[] = "gptb_format";
inline constexpr char kCanonicalFormatName[] = "gptbuilder.canonical";
inline constexpr char kFormatVersionKey[] = "gptb_format_version";
inline constexpr int kFormatVersion = 1;
inline constexpr char kConfigKey[] = "gptb_config";
inline constexpr char kPaddedVocabKey[] = "gptb_padded_vocab_size";
inline constexpr char kSourceLayoutKey[] = "gptb_source_layout";
inline constexpr char kHfModelIdKey[] = "hf_model_id";

// Where weights come from or go to: gptbuilder's canonical checkpoint, or a Hugging Face model
// directory (config.json + safetensors in the family's own names and layouts).
enum class CheckpointFormat { kAuto, kCanonical, kHuggingFace };
const char* CheckpointFormatName(CheckpointFormat format);  // "auto", "canonical", "huggingface"
// Accepts the names above and "hf".
std::optional<CheckpointFormat> ParseCheckpointFormat(std::string_view name);

// One tensor of a canonical checkpoint.
struct CanonicalTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kFloat32;
  // Dim 0 is the padded vocabulary (word embeddings, untied output layer): checkpoints padded
  // differently still load, the rows past the smaller padding being padding.
  bool vocab_rows = false;
};

// True for the canonical names whose dim 0 is the vocabulary.
bool IsVocabTensor(std::string_view canonical_name);

// Every canonical tensor of the planned model once (a tied output layer and the MTP chunk's
// embedding copy are embedding.word_embeddings.weight), in an order that does not depend on the
// parallel layout: embedding, decoder layers by global index, final norm, MTP layers by global
// index, output layer; within each, by name with embedded numbers compared as numbers.
// INTERNAL when two stages disagree on a tensor's canonical shape or dtype.
absl::StatusOr<std::vector<CanonicalTensor>> CanonicalTensors(const plan::ModelPlan& plan);

// Which of `rank`'s parameters it writes when the model is saved: owned[chunk][i] for parameter
// i (plan order) of the rank's chunk `chunk`. Every slice of every canonical tensor has exactly
// one writer in the world, chosen among the ranks holding it (data-parallel replicas,
// tensor-parallel replicas of unsharded tensors, expert-parallel replicas of dense tensors; a
// tied or MTP copy of the embedding only when no original exists) so that the bytes each rank
// writes are balanced: slices by decreasing size, each to the holder with the fewest bytes so
// far, then the lowest rank. A pure function of the plan: every rank computes the same
// assignment. INTERNAL when the slices would not cover a canonical tensor exactly once.
absl::StatusOr<std::vector<std::vector<bool>>> OwnedParameters(const plan::ModelPlan& plan,
                                                               int rank);

// The __metadata__ of the files of a checkpoint of `plan` (see the file comment); `extra`
// entries are added (they may not replace the gptb_* keys: INVALID_ARGUMENT).
absl::StatusOr<std::map<std::string, std::string>> CheckpointMetadata(
    const plan::ModelPlan& plan, const std::map<std::string, std::string>& extra = {});

// The config stored in checkpoint metadata. INVALID_ARGUMENT (naming `source`) when the metadata
// is not gptbuilder's, its version is newer than kFormatVersion (UNIMPLEMENTED), or the config
// does not parse.
absl::StatusOr<gptbuilder::v1::GPTModelConfig> StoredConfig(
    const std::map<std::string, std::string>& metadata, std::string_view source);

// Checks that weights stored for `stored` can be loaded into a model built from `model`:
// every architecture field (sizes, norms, activation, biases, position embedding, MoE routing,
// MTP, tying, the unpadded vocabulary) must be equal; parallel layout, dtypes, vocabulary
// padding, dropout, fusions and the like may differ. With `strict` false only the fields that
// change tensor shapes or the set of tensors are compared (numerics-only fields such as
// layernorm_epsilon or rotary_base are not). INVALID_ARGUMENT with one BadRequest violation per
// differing field ("transformer.num_layers: the checkpoint at X has 4, the model has 2").
absl::Status CheckConfigCompatible(const gptbuilder::v1::GPTModelConfig& stored,
                                   const gptbuilder::v1::GPTModelConfig& model, bool strict,
                                   std::string_view source);

// "world=8 tp=2 pp=2 vp=2 cp=1 ep=1 etp=1".
std::string LayoutString(const plan::ModelPlan& plan);

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_CHECKPOINT_MANIFEST_H_
