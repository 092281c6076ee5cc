#include "core/checkpoint/safetensors_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/excerpt.h"
#include "core/checkpoint/posix_file.h"
#include "nlohmann/json.hpp"

namespace gptb::checkpoint {
namespace {

using Json = nlohmann::json;

bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace

std::string ShardFileName(std::string_view prefix, int shard, int num_shards) {
  if (num_shards == 1) return absl::StrCat(std::string(prefix), ".safetensors");
  return absl::StrFormat("%s-%05d-of-%05d.safetensors", std::string(prefix), shard, num_shards);
}

absl::StatusOr<std::vector<ShardPlan>> PlanShards(const std::vector<TensorSpec>& tensors,
                                                  uint64_t max_shard_bytes,
                                                  std::string_view prefix) {
  if (max_shard_bytes == 0) {
    return absl::InvalidArgumentError("max_shard_bytes must be positive");
  }
  std::vector<ShardPlan> shards;
  std::set<std::string_view> names;
  for (const TensorSpec& spec : tensors) {
    if (!names.insert(spec.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name, "' is listed twice"));
    }
    absl::StatusOr<uint64_t> bytes = TensorBytes(spec);
    if (!bytes.ok()) return bytes.status();
    // Subtraction instead of addition: no overflow however large the tensors.
    if (shards.empty() ||
        (!shards.back().tensors.empty() &&
         *bytes > max_shard_bytes - std::min(max_shard_bytes, shards.back().data_bytes))) {
      shards.emplace_back();
    }
    shards.back().tensors.push_back(spec);
    shards.back().data_bytes += *bytes;
  }
  if (shards.empty()) shards.emplace_back();  // an empty checkpoint is one empty file
  const int n = static_cast<int>(shards.size());
  for (int i = 0; i < n; ++i) shards[i].file_name = ShardFileName(prefix, i + 1, n);
  return shards;
}

SafetensorsIndex MakeIndex(const std::vector<ShardPlan>& shards,
                           const std::map<std::string, std::string>& metadata) {
  SafetensorsIndex index;
  index.metadata = metadata;
  uint64_t total = 0;
  for (const ShardPlan& shard : shards) {
    total += shard.data_bytes;
    for (const TensorSpec& t : shard.tensors) index.weight_map[t.name] = shard.file_name;
  }
  index.total_size = total;
  return index;
}

std::string SerializeIndex(const SafetensorsIndex& index) {
  Json metadata = Json::object();
  for (const auto& [key, value] : index.metadata) metadata[key] = value;
  if (index.total_size) metadata["total_size"] = *index.total_size;
  Json weight_map = Json::object();
  for (const auto& [name, file] : index.weight_map) weight_map[name] = file;
  Json json = {{"metadata", std::move(metadata)}, {"weight_map", std::move(weight_map)}};
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::StatusOr<SafetensorsIndex> ParseIndex(std::string_view text) {
  Json json;
  try {
    json = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    // The parser's message quotes what it read: say where, not what.
    return absl::InvalidArgumentError(
        absl::StrCat("index is not valid JSON (at byte ", e.byte, ")"));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError("index is not valid JSON");
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("index is a JSON ", json.type_name(),
                                                   "; it must be an object with a \"weight_map\""));
  }
  SafetensorsIndex index;
  auto meta = json.find("metadata");
  if (meta != json.end() && !meta->is_null()) {
    if (!meta->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("index \"metadata\" is a JSON ", meta->type_name(), "; expected an object"));
    }
    for (auto it = meta->begin(); it != meta->end(); ++it) {
      if (it.key() == "total_size") {
        if (!it->is_number_unsigned()) {
          return absl::InvalidArgumentError(absl::StrCat("index metadata.total_size is a JSON ",
                                                         it->type_name(),
                                                         "; expected a non-negative integer"));
        }
        index.total_size = it->get<uint64_t>();
      } else {
        index.metadata[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
      }
    }
  }
  auto map = json.find("weight_map");
  if (map == json.end() || !map->is_object()) {
    return absl::InvalidArgumentError(
        "index has no \"weight_map\" object mapping tensor names to shard files");
  }
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("index weight_map['", Excerpt(it.key(), 64),
                                                     "'] is a JSON ", it->type_name(),
                                                     "; expected a file name"));
    }
    const std::string& file = it->get_ref<const std::string&>();
    if (!IsPlainFileName(file)) {
      return absl::InvalidArgumentError(
          absl::StrCat("index weight_map['", Excerpt(it.key(), 64), "'] is \"", Excerpt(file, 64),
                       "\"; shard names must be plain file names in the index's directory"));
    }
    index.weight_map[it.key()] = file;
  }
  return index;
}

absl::Status WriteIndexFile(const std::string& path, const SafetensorsIndex& index) {
  const std::string text = SerializeIndex(index);
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  // Never through a planted link, never over an existing file.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return FileError(errno, "creating", tmp);
  absl::Status status = PwriteFull(fd, text.data(), text.size(), 0, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = FileError(errno, "syncing", tmp);
  if (::close(fd) != 0 && status.ok()) status = FileError(errno, "closing", tmp);
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = FileError(errno, absl::StrCat("renaming ", tmp, " to"), path);
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

absl::StatusOr<SafetensorsIndex> ReadIndexFile(const std::string& path, const std::string& root) {
  // An index lists names only; a size cap keeps a wrong path from being slurped whole.
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxHeaderBytes, root);
  if (!text.ok()) return text.status();
  absl::StatusOr<SafetensorsIndex> index = ParseIndex(*text);
  if (!index.ok()) {
    return absl::Status(index.status().code(), absl::StrCat(path, ": ", index.status().message()));
  }
  return index;
}

}  // namespace gptb::checkpoint
