#ifndef GPTB_CORE_CHECKPOINT_SAFETENSORS_INDEX_H_
#define GPTB_CORE_CHECKPOINT_SAFETENSORS_INDEX_H_

// Sharded safetensors checkpoints as Hugging Face lays them out: shards named
// model-00001-of-00003.safetensors and an index model.safetensors.index.json of the form
// {"metadata": {"total_size": <tensor bytes>}, "weight_map": {"<tensor>": "<shard file>"}}.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/safetensors_header.h"

namespace gptb::checkpoint {

inline constexpr std::string_view kIndexFileName = "model.safetensors.index.json";
inline constexpr std::string_view kSingleFileName = "model.safetensors";

// "<prefix>-00001-of-00003.safetensors" for shard 1 of 3 (shard counts from 1, five digits as in
// Hugging Face), and "<prefix>.safetensors" when there is only one shard.
std::string ShardFileName(std::string_view prefix, int shard, int num_shards);

// One file of a sharded checkpoint.
struct ShardPlan {
  std::string file_name;
  std::vector<TensorSpec> tensors;  // in the order they are laid out in the file
  uint64_t data_bytes = 0;          // sum of the tensors' bytes (the header comes on top)
};

// Splits `tensors`, kept in order, into shards of at most `max_shard_bytes` tensor bytes each:
// a tensor joins the current shard unless that would exceed the bound, and a tensor larger than
// the bound gets a shard of its own (Hugging Face's split_torch_state_dict_into_shards rule).
// INVALID_ARGUMENT for max_shard_bytes == 0, duplicate names or invalid shapes.
absl::StatusOr<std::vector<ShardPlan>> PlanShards(const std::vector<TensorSpec>& tensors,
                                                  uint64_t max_shard_bytes,
                                                  std::string_view prefix = "model");

struct SafetensorsIndex {
  // metadata.total_size: bytes of all tensors over all shards; unset when the file has none.
  std::optional<uint64_t> total_size;
  // The other metadata entries. Non-string values read from a file are kept as their JSON text;
  // everything here is written back as strings.
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
};

// The index of a planned checkpoint (total_size = sum of data_bytes).
SafetensorsIndex MakeIndex(const std::vector<ShardPlan>& shards,
                           const std::map<std::string, std::string>& metadata = {});

// JSON text of the index, keys sorted, indented by 2 like transformers' save_pretrained.
std::string SerializeIndex(const SafetensorsIndex& index);

// INVALID_ARGUMENT for malformed JSON, a missing or non-object weight_map, a non-string shard
// name, a shard name that is not a plain file name (empty, ".", "..", or containing '/' or NUL,
// which would let an index point outside its directory), or a total_size that is not a
// non-negative integer.
absl::StatusOr<SafetensorsIndex> ParseIndex(std::string_view json);

// Writes `index` to `path` through a temporary file and a rename, so readers never see half of it.
absl::Status WriteIndexFile(const std::string& path, const SafetensorsIndex& index);
absl::StatusOr<SafetensorsIndex> ReadIndexFile(const std::string& path,
                                               const std::string& root = "");

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SAFETENSORS_INDEX_H_
