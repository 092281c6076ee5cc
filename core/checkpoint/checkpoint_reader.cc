#include "core/checkpoint/checkpoint_reader.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/excerpt.h"
#include "core/checkpoint/checkpoint_directory.h"
#include "core/checkpoint/posix_file.h"
#include "core/config/finalize.h"
#include "core/config/hf_import.h"
#include "nlohmann/json.hpp"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;

constexpr char kHfConfigFile[] = "config.json";
constexpr size_t kMaxListedProblems = 20;

// config.json files are a few KiB; the cap keeps a wrong path from being read whole.
constexpr uint64_t kMaxConfigBytes = 1 << 20;

absl::Status Prefixed(const absl::Status& status, const std::string& prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

std::string ProblemList(const std::vector<std::string>& problems) {
  std::vector<std::string> shown(problems.begin(),
                                 problems.begin() + std::min(problems.size(), kMaxListedProblems));
  std::string text = absl::StrJoin(shown, "; ");
  if (problems.size() > shown.size()) {
    absl::StrAppend(&text, "; and ", problems.size() - shown.size(), " more");
  }
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointReader>> CheckpointReader::Open(
    const std::string& path, const CheckpointOpenOptions& options) {
  // A path through '..' or outside the root is refused before anything is looked at.
  if (absl::Status s = CheckReadPath(path, options.root); !s.ok()) return s;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint path ", path, " does not exist"));
  }
  std::unique_ptr<CheckpointReader> reader(new CheckpointReader());
  reader->path_ = path;
  ReaderOptions reader_options;
  reader_options.mode = options.read_mode;
  reader_options.root = options.root;
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsReader>> files =
      ShardedSafetensorsReader::Open(path, reader_options);
  if (!files.ok()) return Prefixed(files.status(), absl::StrCat("checkpoint ", path));
  reader->files_ = *std::move(files);
  if (!reader->files_->shards().empty())
    reader->metadata_ = reader->files_->shards()[0]->metadata();

  const bool has_gptb_metadata = reader->metadata_.count(kFormatKey) > 0;
  const std::string directory =
      fs::is_directory(path, ec) ? path : fs::path(path).parent_path().string();
  const std::string hf_config =
      (fs::path(directory.empty() ? "." : directory) / kHfConfigFile).string();
  CheckpointFormat format = options.format;
  if (format == CheckpointFormat::kAuto) {
    if (has_gptb_metadata) {
      format = CheckpointFormat::kCanonical;
    } else if (fs::exists(hf_config, ec)) {
      format = CheckpointFormat::kHuggingFace;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " is neither a gptbuilder checkpoint (its safetensors metadata has no ", kFormatKey,
          ") nor a Hugging Face model directory (no ", kHfConfigFile, " next to it)"));
    }
  }
  reader->format_ = format;
  if (format == CheckpointFormat::kCanonical) {
    absl::StatusOr<gptbuilder::v1::GPTModelConfig> stored = StoredConfig(reader->metadata_, path);
    if (!stored.ok()) return stored.status();
    reader->config_ = *std::move(stored);
    return reader;
  }

  absl::StatusOr<std::string> text = ReadSmallFile(hf_config, kMaxConfigBytes, options.root);
  if (!text.ok()) {
    return absl::Status(text.status().code() == absl::StatusCode::kNotFound
                            ? absl::StatusCode::kNotFound
                            : text.status().code(),
                        absl::StrCat(path, " is read as a Hugging Face model directory but its ",
                                     kHfConfigFile, " does not read: ", text.status().message()));
  }
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(hf_config, " is not a JSON object"));
  }
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> imported = config::ImportHfConfig(json);
  if (!imported.ok()) return Prefixed(imported.status(), hf_config);
  const std::string model_type = json.value("model_type", "");
  reader->hf_family_ = ParseHfModelType(model_type);
  if (!reader->hf_family_.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        hf_config, ": model_type '", Excerpt(model_type, 32), "' has no weight mapping"));
  }
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = config::Finalize(*imported);
  if (!finalized.ok()) return Prefixed(finalized.status(), hf_config);
  reader->config_ = *std::move(finalized);
  // A checkpoint of the bare base model (GPT2Model, LlamaModel) has no base prefix.
  const std::string prefix = HfBasePrefix(*reader->hf_family_);
  reader->hf_base_prefix_ = "";
  for (const auto& [name, file] : reader->files_->index().weight_map) {
    if (name.rfind(prefix, 0) == 0) {
      reader->hf_base_prefix_ = prefix;
      break;
    }
  }
  return reader;
}

absl::Status CheckpointReader::Bind(const gptbuilder::v1::GPTModelConfig& model_config,
                                    const std::vector<CanonicalTensor>& tensors,
                                    bool strict_config) {
  if (absl::Status s = CheckConfigCompatible(config_, model_config, strict_config, path_);
      !s.ok()) {
    return s;
  }
  std::vector<TensorRoute> routes;
  if (format_ == CheckpointFormat::kHuggingFace) {
    absl::StatusOr<std::vector<TensorRoute>> hf =
        HfRoutes(*hf_family_, model_config, tensors, INT64_MAX, hf_base_prefix_);
    if (!hf.ok()) return Prefixed(hf.status(), path_);
    routes = *std::move(hf);
  } else {
    for (const CanonicalTensor& t : tensors)
      routes.push_back(IdentityRoute(t.name, t.shape, INT64_MAX));
  }

  std::vector<std::string> problems;
  std::set<std::string> used;
  bound_.clear();
  for (size_t i = 0; i < routes.size(); ++i) {
    TensorRoute& route = routes[i];
    // Vocabulary tensors: the stored rows may be padded differently from the model's.
    if (tensors[i].vocab_rows && route.segments.size() == 1) {
      absl::StatusOr<ShardedSafetensorsReader::Location> at =
          files_->Find(route.segments[0].tensor);
      if (at.ok() && !at->tensor->shape.empty()) {
        const int64_t stored = at->tensor->shape[0];
        if (stored < model_config.vocab_size()) {
          problems.push_back(absl::StrCat("tensor '", route.segments[0].tensor, "' has ", stored,
                                          " rows, fewer than the vocabulary's ",
                                          model_config.vocab_size()));
          continue;
        }
        route.segments[0].rows = std::min(route.shape[0], stored);
      }
    }
    absl::StatusOr<DType> dtype = ValidateRoute(*files_, route);
    if (!dtype.ok()) {
      problems.push_back(std::string(dtype.status().message()));
      continue;
    }
    for (const Segment& s : route.segments) used.insert(s.tensor);
    bound_[route.name] = BoundTensor{route, *dtype};
  }
  const bool tied = model_config.share_embeddings_and_output_weights();
  for (const auto& [name, file] : files_->index().weight_map) {
    if (used.count(name) > 0) continue;
    if (format_ == CheckpointFormat::kHuggingFace && IsIgnorableHfTensor(name, tied)) continue;
    problems.push_back(absl::StrCat("stored tensor '", name, "' is not part of the model"));
  }
  if (!problems.empty()) {
    bound_.clear();
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path_, " (", CheckpointFormatName(format_),
                     ") does not match the model: ", ProblemList(problems)));
  }
  return absl::OkStatus();
}

absl::StatusOr<const BoundTensor*> CheckpointReader::Find(const std::string& canonical_name) const {
  auto it = bound_.find(canonical_name);
  if (it == bound_.end()) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", path_, " has no binding for ", canonical_name));
  }
  return &it->second;
}

absl::StatusOr<std::vector<RowRange>> CheckpointReader::Read(const std::string& canonical_name,
                                                             int dim, int64_t start, int64_t length,
                                                             void* out) const {
  absl::StatusOr<const BoundTensor*> bound = Find(canonical_name);
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<RowRange>> gaps =
      ReadRoute(*files_, (*bound)->route, dim, start, length, out);
  if (!gaps.ok()) return Prefixed(gaps.status(), absl::StrCat("reading ", canonical_name));
  return gaps;
}

uint64_t CheckpointReader::bytes_read() const {
  uint64_t total = 0;
  for (const auto& shard : files_->shards()) total += shard->bytes_read();
  return total;
}

}  // namespace gptb::checkpoint
