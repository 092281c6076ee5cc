#ifndef GPTB_CORE_CHECKPOINT_CHECKPOINT_READER_H_
#define GPTB_CORE_CHECKPOINT_CHECKPOINT_READER_H_

// Reading weights for a model from a gptbuilder canonical checkpoint or a Hugging Face model
// directory, slice by slice: the format is detected, the stored config checked against the
// model's, and every canonical tensor of the model routed to the stored tensors before anything
// is read, so a mismatch is reported once, up front, on every rank alike.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/hf_mapping.h"
#include "core/checkpoint/sharded_safetensors.h"
#include "core/checkpoint/tensor_route.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::checkpoint {

struct CheckpointOpenOptions {
  CheckpointFormat format = CheckpointFormat::kAuto;
  // Positioned reads fetch exactly the bytes of a rank's slices into its buffers; mmap copies
  // out of a mapping of every file.
  ReadMode read_mode = ReadMode::kPread;
  // When set (a daemon's --checkpoint-root), the path and every file read must resolve inside it.
  std::string root;
};

// A canonical tensor bound to where it is stored.
struct BoundTensor {
  TensorRoute route;
  DType stored_dtype = DType::kFloat32;
};

class CheckpointReader {
 public:
  // `path`: a canonical checkpoint (its directory, index file or single .safetensors file) or a
  // Hugging Face model directory (config.json plus model.safetensors or a sharded index). With
  // kAuto, files whose metadata has gptb_format are canonical, and a directory with a
  // config.json is Hugging Face. Errors: NOT_FOUND for a missing path or files; INVALID_ARGUMENT
  // for anything else unrecognisable (malformed safetensors, an unsupported model_type, a config
  // that does not import); UNIMPLEMENTED for a newer format version; DATA_LOSS for truncation.
  static absl::StatusOr<std::unique_ptr<CheckpointReader>> Open(
      const std::string& path, const CheckpointOpenOptions& options = {});

  const std::string& path() const { return path_; }
  CheckpointFormat format() const { return format_; }
  // The config the weights were stored for: the canonical checkpoint's resolved config, or the
  // one imported from config.json (core/config/hf_import.h) and finalized.
  const gptbuilder::v1::GPTModelConfig& config() const { return config_; }
  // The Hugging Face family (Hugging Face checkpoints only).
  std::optional<HfFamily> hf_family() const { return hf_family_; }
  // The first file's safetensors metadata.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const ShardedSafetensorsReader& files() const { return *files_; }

  // Prepares reads for a model of `model_config` whose canonical tensors are `tensors`
  // (CanonicalTensors of its plan): checks the configs (CheckConfigCompatible), routes every
  // tensor and validates each route (existing stored tensors, shapes; vocabulary tensors stored
  // with at least vocab_size rows), and requires every stored tensor to be used (ignoring the
  // buffers IsIgnorableHfTensor names). INVALID_ARGUMENT listing the problems otherwise.
  absl::Status Bind(const gptbuilder::v1::GPTModelConfig& model_config,
                    const std::vector<CanonicalTensor>& tensors, bool strict_config = true);

  // After Bind: the binding of a canonical tensor (NOT_FOUND when Bind did not route it).
  absl::StatusOr<const BoundTensor*> Find(const std::string& canonical_name) const;

  // After Bind: ReadRoute of the tensor's binding (elements of its stored dtype).
  absl::StatusOr<std::vector<RowRange>> Read(const std::string& canonical_name, int dim,
                                             int64_t start, int64_t length, void* out) const;

  // Bytes read so far, over all threads.
  uint64_t bytes_read() const;

 private:
  CheckpointReader() = default;

  std::string path_;
  CheckpointFormat format_ = CheckpointFormat::kCanonical;
  gptbuilder::v1::GPTModelConfig config_;
  std::optional<HfFamily> hf_family_;
  std::string hf_base_prefix_;
  std::map<std::string, std::string> metadata_;
  std::unique_ptr<ShardedSafetensorsReader> files_;
  std::unordered_map<std::string, BoundTensor> bound_;
};

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_CHECKPOINT_READER_H_
