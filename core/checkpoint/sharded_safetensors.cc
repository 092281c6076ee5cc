#include "core/checkpoint/sharded_safetensors.h"

#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;

std::string JoinPath(const std::string& directory, std::string_view file) {
  return (fs::path(directory) / fs::path(std::string(file))).string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardedSafetensorsReader>> ShardedSafetensorsReader::Open(
    const std::string& path, const ReaderOptions& options) {
  std::error_code ec;
  std::string index_path;
  std::string single_path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(JoinPath(path, kIndexFileName), ec)) {
      index_path = JoinPath(path, kIndexFileName);
    } else if (fs::exists(JoinPath(path, kSingleFileName), ec)) {
      single_path = JoinPath(path, kSingleFileName);
    } else {
      return absl::NotFoundError(absl::StrCat(path, " holds neither ", std::string(kIndexFileName),
                                              " nor ", std::string(kSingleFileName)));
    }
  } else if (absl::EndsWith(path, ".json")) {
    index_path = path;
  } else {
    single_path = path;
  }

  std::unique_ptr<ShardedSafetensorsReader> reader(new ShardedSafetensorsReader());
  if (!single_path.empty()) {
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> shard =
        SafetensorsReader::Open(single_path, options);
    if (!shard.ok()) return shard.status();
    const std::string file = fs::path(single_path).filename().string();
    uint64_t total = 0;
    for (const TensorInfo& t : (*shard)->tensors()) {
      reader->index_.weight_map[t.name] = file;
      total += t.nbytes();
    }
    reader->index_.total_size = total;
    reader->index_.metadata = (*shard)->metadata();
    reader->shards_.push_back(*std::move(shard));
  } else {
    absl::StatusOr<SafetensorsIndex> index = ReadIndexFile(index_path, options.root);
    if (!index.ok()) return index.status();
    reader->index_ = *std::move(index);
    const std::string directory = fs::path(index_path).parent_path().string();
    std::set<std::string> files;
    for (const auto& [name, file] : reader->index_.weight_map) files.insert(file);
    for (const std::string& file : files) {
      absl::StatusOr<std::unique_ptr<SafetensorsReader>> shard =
          SafetensorsReader::Open(JoinPath(directory.empty() ? "." : directory, file), options);
      if (!shard.ok()) return shard.status();
      for (const TensorInfo& t : (*shard)->tensors()) {
        auto it = reader->index_.weight_map.find(t.name);
        if (it == reader->index_.weight_map.end() || it->second != file) {
          return absl::InvalidArgumentError(absl::StrCat(
              index_path, ": shard ", file, " holds tensor '", t.name, "', which the index ",
              it == reader->index_.weight_map.end() ? std::string("does not list")
                                                    : absl::StrCat("maps to ", it->second)));
        }
      }
      reader->shards_.push_back(*std::move(shard));
    }
  }
  for (const auto& shard : reader->shards_) {
    for (const TensorInfo& t : shard->tensors()) {
      reader->by_name_[t.name] = Location{shard.get(), &t};
    }
  }
  for (const auto& [name, file] : reader->index_.weight_map) {
    if (reader->by_name_.find(name) == reader->by_name_.end()) {
      return absl::DataLossError(absl::StrCat(index_path, ": the index maps tensor '", name,
                                              "' to ", file, ", which has no such tensor"));
    }
  }
  return reader;
}

absl::StatusOr<ShardedSafetensorsReader::Location> ShardedSafetensorsReader::Find(
    std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no shard of the checkpoint holds a tensor named '", std::string(name), "'"));
  }
  return it->second;
}

absl::Status ShardedSafetensorsReader::ReadSlice(std::string_view name, int dim, int64_t start,
                                                 int64_t length, void* out) const {
  absl::StatusOr<Location> location = Find(name);
  if (!location.ok()) return location.status();
  return location->shard->ReadSlice(name, dim, start, length, out);
}

absl::Status ShardedSafetensorsReader::ReadTensor(std::string_view name, void* out) const {
  absl::StatusOr<Location> location = Find(name);
  if (!location.ok()) return location.status();
  return location->shard->ReadTensor(name, out);
}

absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> ShardedSafetensorsWriter::Create(
    const std::string& directory, const std::vector<ShardPlan>& shards,
    const std::map<std::string, std::string>& file_metadata,
    const std::map<std::string, std::string>& index_metadata, const WriterOptions& options) {
  std::unique_ptr<ShardedSafetensorsWriter> writer(new ShardedSafetensorsWriter());
  for (const ShardPlan& shard : shards) {
    absl::StatusOr<std::unique_ptr<SafetensorsWriter>> file = SafetensorsWriter::Create(
        JoinPath(directory, shard.file_name), shard.tensors, file_metadata, options);
    if (!file.ok()) return file.status();
    writer->shards_.push_back(*std::move(file));
  }
  if (shards.size() > 1) {
    absl::Status status =
        WriteIndexFile(JoinPath(directory, kIndexFileName), MakeIndex(shards, index_metadata));
    if (!status.ok()) return status;
  }
  for (const auto& shard : writer->shards_) {
    for (const TensorInfo& t : shard->tensors()) writer->by_name_[t.name] = shard.get();
  }
  return writer;
}

absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> ShardedSafetensorsWriter::OpenExisting(
    const std::string& directory, const std::vector<ShardPlan>& shards,
    const std::map<std::string, std::string>& file_metadata, const WriterOptions& options) {
  std::unique_ptr<ShardedSafetensorsWriter> writer(new ShardedSafetensorsWriter());
  for (const ShardPlan& shard : shards) {
    absl::StatusOr<std::unique_ptr<SafetensorsWriter>> file = SafetensorsWriter::OpenExisting(
        JoinPath(directory, shard.file_name), shard.tensors, file_metadata, options);
    if (!file.ok()) return file.status();
    writer->shards_.push_back(*std::move(file));
  }
  for (const auto& shard : writer->shards_) {
    for (const TensorInfo& t : shard->tensors()) writer->by_name_[t.name] = shard.get();
  }
  return writer;
}

absl::StatusOr<SafetensorsWriter*> ShardedSafetensorsWriter::ShardOf(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "no shard of the checkpoint was planned with a tensor named '", std::string(name), "'"));
  }
  return it->second;
}

absl::StatusOr<const TensorInfo*> ShardedSafetensorsWriter::Find(std::string_view name) const {
  absl::StatusOr<SafetensorsWriter*> shard = ShardOf(name);
  if (!shard.ok()) return shard.status();
  return (*shard)->Find(name);
}

absl::Status ShardedSafetensorsWriter::WriteSlice(std::string_view name, int dim, int64_t start,
                                                  int64_t length, const void* data) {
  absl::StatusOr<SafetensorsWriter*> shard = ShardOf(name);
  if (!shard.ok()) return shard.status();
  return (*shard)->WriteSlice(name, dim, start, length, data);
}

absl::Status ShardedSafetensorsWriter::WriteTensor(std::string_view name, const void* data) {
  absl::StatusOr<SafetensorsWriter*> shard = ShardOf(name);
  if (!shard.ok()) return shard.status();
  return (*shard)->WriteTensor(name, data);
}

absl::Status ShardedSafetensorsWriter::Finish(bool sync) {
  absl::Status first;
  for (const auto& shard : shards_) {
    absl::Status status = shard->Finish(sync);
    if (first.ok()) first = status;
  }
  return first;
}

}  // namespace gptb::checkpoint
