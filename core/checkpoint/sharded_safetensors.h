#ifndef GPTB_CORE_CHECKPOINT_SHARDED_SAFETENSORS_H_
#define GPTB_CORE_CHECKPOINT_SHARDED_SAFETENSORS_H_

// A checkpoint of one or more safetensors files behind one name space of tensors.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"

namespace gptb::checkpoint {

class ShardedSafetensorsReader {
 public:
  // `path` is a directory (read through its model.safetensors.index.json, or its
  // model.safetensors when there is no index), an index file, or a single .safetensors file.
  // Opens every shard and checks that the index and the shards agree: each mapped tensor is in
  // its shard (DATA_LOSS otherwise) and each shard tensor is mapped to that shard
  // (INVALID_ARGUMENT otherwise).
  static absl::StatusOr<std::unique_ptr<ShardedSafetensorsReader>> Open(
      const std::string& path, const ReaderOptions& options = {});

  // For a single file, an index synthesised from it (weight_map to the file, total_size).
  const SafetensorsIndex& index() const { return index_; }
  const std::vector<std::unique_ptr<SafetensorsReader>>& shards() const { return shards_; }
  size_t num_tensors() const { return by_name_.size(); }

  struct Location {
    const SafetensorsReader* shard = nullptr;
    const TensorInfo* tensor = nullptr;
  };
  // NOT_FOUND when no shard holds `name`.
  absl::StatusOr<Location> Find(std::string_view name) const;

  // As SafetensorsReader::ReadSlice / ReadTensor on the shard holding `name`.
  absl::Status ReadSlice(std::string_view name, int dim, int64_t start, int64_t length,
                         void* out) const;
  absl::Status ReadTensor(std::string_view name, void* out) const;

 private:
  ShardedSafetensorsReader() = default;

  SafetensorsIndex index_;
  std::vector<std::unique_ptr<SafetensorsReader>> shards_;
  std::unordered_map<std::string_view, Location> by_name_;
};

// Writes a sharded checkpoint planned by PlanShards: one SafetensorsWriter per shard, slices
// routed to the shard holding the tensor. Like SafetensorsWriter, one process Creates and others
// may then OpenExisting the same plan to write their own slices concurrently.
class ShardedSafetensorsWriter {
 public:
  // Creates every shard in `directory` (which must exist) and, for more than one shard, writes
  // the index (MakeIndex(shards, index_metadata)) there. `file_metadata` goes into every shard's
  // __metadata__.
  static absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> Create(
      const std::string& directory, const std::vector<ShardPlan>& shards,
      const std::map<std::string, std::string>& file_metadata,
      const std::map<std::string, std::string>& index_metadata = {},
      const WriterOptions& options = {});

  static absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> OpenExisting(
      const std::string& directory, const std::vector<ShardPlan>& shards,
      const std::map<std::string, std::string>& file_metadata, const WriterOptions& options = {});

  const std::vector<std::unique_ptr<SafetensorsWriter>>& shards() const { return shards_; }
  // The planned tensor `name` (NOT_FOUND when no shard was planned with it).
  absl::StatusOr<const TensorInfo*> Find(std::string_view name) const;

  // As SafetensorsWriter::WriteSlice / WriteTensor on the shard holding `name`. Thread-safe.
  absl::Status WriteSlice(std::string_view name, int dim, int64_t start, int64_t length,
                          const void* data);
  absl::Status WriteTensor(std::string_view name, const void* data);

  // Finishes every shard; the first error is returned after all were attempted.
  absl::Status Finish(bool sync = true);

 private:
  ShardedSafetensorsWriter() = default;
  absl::StatusOr<SafetensorsWriter*> ShardOf(std::string_view name) const;

  std::vector<std::unique_ptr<SafetensorsWriter>> shards_;
  std::unordered_map<std::string_view, SafetensorsWriter*> by_name_;
};

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SHARDED_SAFETENSORS_H_
