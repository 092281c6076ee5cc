#include "core/checkpoint/weight_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/checkpoint_directory.h"
#include "core/checkpoint/checkpoint_reader.h"
#include "core/checkpoint/hf_mapping.h"
#include "core/checkpoint/posix_file.h"
#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/sharded_safetensors.h"
#include "core/checkpoint/tensor_route.h"
#include "core/config/hf_export.h"
#include "core/init/initializer.h"
#include "core/model/torch_dtype.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Weights are read in a parameter dtype or float64 (converted on load).
absl::StatusOr<torch::ScalarType> TorchType(DType dtype, const std::string& tensor) {
  if (!IsParameterDType(dtype) && dtype != DType::kFloat64) {
    return absl::InvalidArgumentError(absl::StrCat(tensor, " is stored as ",
                                                   std::string(SafetensorsCode(dtype)),
                                                   "; weights must be F32, BF16, F16 or F64"));
  }
  return model::TorchScalarType(dtype);
}

absl::StatusOr<DType> InitType(torch::ScalarType type) {
  const std::optional<DType> dtype = model::DTypeOfTorch(type);
  if (!dtype.has_value() || !IsParameterDType(*dtype)) {
    return absl::InvalidArgumentError("padding rows can only be initialised in fp32, bf16 or fp16");
  }
  return *dtype;
}

// The canonical sub-blocks a local tensor is made of: the whole tensor (as its rows), or one
// block per piece along the partition dim, with the local region it occupies.
struct Block {
  int dim = 0;
  int64_t start = 0;
  int64_t length = 0;
  torch::Tensor local;
};

absl::StatusOr<std::vector<Block>> Blocks(const plan::ParamInfo& info, const torch::Tensor& t) {
  if (t.sizes().vec() != info.shape) {
    return absl::InternalError(absl::StrCat(info.name, " is held with shape ",
                                            ShapeString(t.sizes().vec()), ", planned ",
                                            ShapeString(info.shape)));
  }
  if (info.canonical_shape.empty()) {
    return absl::UnimplementedError(absl::StrCat(info.name, ": scalar parameters are not stored"));
  }
  if (info.partition_dim < 0) return std::vector<Block>{{0, 0, info.canonical_shape[0], t}};
  if (info.partition_dim > 1) {
    return absl::UnimplementedError(
        absl::StrCat(info.name, ": partitioned along dimension ", info.partition_dim));
  }
  std::vector<Block> blocks;
  int64_t local = 0;
  for (const plan::Piece& piece : info.pieces) {
    blocks.push_back({info.partition_dim, piece.start, piece.length,
                      t.narrow(info.partition_dim, local, piece.length)});
    local += piece.length;
  }
  return blocks;
}

// Runs fn(i) for i in [0, n) on `threads` threads, largest items first; the first error wins.
absl::Status RunParallel(const std::vector<int64_t>& sizes, int threads,
                         const std::function<absl::Status(size_t)>& fn) {
  std::vector<size_t> order(sizes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first;
  auto work = [&] {
    torch::NoGradGuard no_grad;
    for (size_t k = next++; k < order.size() && !failed.load(); k = next++) {
      absl::Status s = parallel::CallTorch("checkpoint I/O", [&] { return fn(order[k]); });
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(order.size())));
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return first;
}

int64_t Bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// Padding rows [gap) of `region` (the canonical block `block`) get the builder's values.
absl::Status FillPadding(const plan::ParamInfo& info, const Block& block, const RowRange& gap,
                         uint64_t seed) {
  absl::StatusOr<DType> dtype = InitType(block.local.scalar_type());
  if (!dtype.ok()) return dtype.status();
  init::ShardLayout layout;
  layout.canonical_shape = info.canonical_shape;
  layout.partition_dim = 0;
  layout.pieces = {{gap.start, gap.length}};
  std::vector<int64_t> shape = info.canonical_shape;
  shape[0] = gap.length;
  torch::Tensor rows = torch::empty(shape, torch::dtype(block.local.scalar_type()));
  const init::InitSpec spec = info.init.kind == plan::InitMethod::Kind::kNormal
                                  ? init::InitSpec::Normal(info.init.value)
                                  : init::InitSpec::Constant(info.init.value);
  init::FillOptions fill;
  fill.num_threads = 1;
  if (absl::Status s = init::FillShard(seed, info.canonical_name, spec, layout, *dtype,
                                       rows.data_ptr(), rows.numel(), fill);
      !s.ok()) {
    return s;
  }
  if (block.dim == 0) {
    block.local.narrow(0, gap.start - block.start, gap.length).copy_(rows);
  } else {
    block.local.narrow(0, gap.start, gap.length).copy_(rows.narrow(1, block.start, block.length));
  }
  return absl::OkStatus();
}

absl::Status LoadOne(const CheckpointReader& reader, const HeldTensor& held, uint64_t seed,
                     std::atomic<int64_t>* padding_rows) {
  const plan::ParamInfo& info = *held.info;
  absl::StatusOr<const BoundTensor*> bound = reader.Find(info.canonical_name);
  if (!bound.ok()) return bound.status();
  absl::StatusOr<torch::ScalarType> stored = TorchType((*bound)->stored_dtype, info.canonical_name);
  if (!stored.ok()) return stored.status();
  absl::StatusOr<std::vector<Block>> blocks = Blocks(info, held.tensor.detach());
  if (!blocks.ok()) return blocks.status();
  for (const Block& block : *blocks) {
    std::vector<int64_t> shape = info.canonical_shape;
    shape[block.dim] = block.length;
    const bool direct = block.local.device().is_cpu() && block.local.scalar_type() == *stored &&
                        block.local.is_contiguous();
    torch::Tensor buffer = direct ? block.local : torch::empty(shape, torch::dtype(*stored));
    absl::StatusOr<std::vector<RowRange>> gaps =
        reader.Read(info.canonical_name, block.dim, block.start, block.length, buffer.data_ptr());
    if (!gaps.ok()) return gaps.status();
    if (!direct) block.local.copy_(buffer);
    for (const RowRange& gap : *gaps) {
      if (absl::Status s = FillPadding(info, block, gap, seed); !s.ok()) return s;
      *padding_rows += gap.length;
    }
  }
  return absl::OkStatus();
}

absl::Status SaveOne(ShardedSafetensorsWriter& writer, const TensorRoute& route, DType dtype,
                     const HeldTensor& held) {
  absl::StatusOr<torch::ScalarType> type = TorchType(dtype, route.name);
  if (!type.ok()) return type.status();
  torch::Tensor t = held.tensor.detach();
  if (t.scalar_type() != *type) t = t.to(*type);
  if (!t.device().is_cpu()) t = t.cpu();
  absl::StatusOr<std::vector<Block>> blocks = Blocks(*held.info, t);
  if (!blocks.ok()) return blocks.status();
  if (IsStackedRoute(route) && !blocks->empty()) {
    // A fused-experts slice is written in one piece: an expert held whole (expert TP 1) as
    // tensor-parallel pieces (a gated fc1's gate and up, fc2's one column block) goes out as
    // the whole tensor; pieces that do not cover it stay an error.
    std::vector<Block> pieces = *blocks;
    std::sort(pieces.begin(), pieces.end(),
              [](const Block& a, const Block& b) { return a.start < b.start; });
    const int dim = pieces[0].dim;
    int64_t next = 0;
    std::vector<torch::Tensor> parts;
    for (const Block& b : pieces) {
      if (b.dim != dim || b.start != next) break;
      parts.push_back(b.local);
      next += b.length;
    }
    if (next == route.shape[dim]) {
      const torch::Tensor whole = torch::cat(parts, dim).contiguous();
      return WriteRoute(writer, route, 0, 0, route.shape[0], whole.data_ptr(),
                        whole.element_size());
    }
  }
  for (const Block& block : *blocks) {
    const torch::Tensor data = block.local.contiguous();
    if (absl::Status s = WriteRoute(writer, route, block.dim, block.start, block.length,
                                    data.data_ptr(), data.element_size());
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// rank 0's value on every rank (the others pass 0): a sum over the decoder grid, tp-dp-cp then
// pp, as AgreeAcrossWorld reduces.
absl::StatusOr<int64_t> ShareFromRankZero(const parallel::ProcessGroupCollection* groups,
                                          int64_t value) {
  if (groups == nullptr || groups->world_size() <= 1) return value;
  int64_t shared = 0;
  absl::Status status = parallel::CallTorch("share the save token", [&] {
    torch::Tensor t =
        torch::full({1}, groups->global_rank() == 0 ? value : 0,
                    torch::TensorOptions().dtype(torch::kInt64).device(groups->device()));
    for (plan::GroupKind kind : {plan::GroupKind::kTpDpCp, plan::GroupKind::kPp}) {
      if (groups->has(kind) && groups->size(kind) > 1) {
        parallel::AllReduceInPlace(t, groups->group(kind), c10d::ReduceOp::SUM);
      }
    }
    shared = t.cpu().item<int64_t>();
  });
  if (!status.ok()) return status;
  return shared;
}

// Writes `text` to a new file `path` (never over an existing one, never through a link).
absl::Status WriteNewFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return FileError(errno, "creating", path);
  absl::Status status = PwriteFull(fd, text.data(), text.size(), 0, path);
  if (::close(fd) != 0 && status.ok()) status = FileError(errno, "closing", path);
  return status;
}

}  // namespace

absl::Status AgreeAcrossWorld(const parallel::ProcessGroupCollection* groups,
                              const absl::Status& local, std::string_view what_view) {
  const std::string what(what_view);
  if (groups == nullptr || groups->world_size() <= 1) return local;
  const int world = groups->world_size();
  int64_t failing = world;
  absl::Status collective = parallel::CallTorch("agree across the world", [&] {
    torch::Tensor flag =
        torch::full({1}, local.ok() ? world : groups->global_rank(),
                    torch::TensorOptions().dtype(torch::kInt64).device(groups->device()));
    for (plan::GroupKind kind : {plan::GroupKind::kTpDpCp, plan::GroupKind::kPp}) {
      if (groups->has(kind) && groups->size(kind) > 1) {
        parallel::AllReduceInPlace(flag, groups->group(kind), c10d::ReduceOp::MIN);
      }
    }
    failing = flag.cpu().item<int64_t>();
  });
  if (!local.ok()) return local;
  if (!collective.ok()) return collective;
  if (failing < world) {
    return absl::AbortedError(
        absl::StrCat("rank ", failing, " failed to ", what, "; see that rank's error"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadStats> LoadWeights(const plan::ModelPlan& plan, const HeldTensors& held,
                                      const std::string& path, const LoadOptions& options) {
  const Clock::time_point start = Clock::now();
  CheckpointOpenOptions open;
  open.format = options.format;
  open.read_mode = options.read_mode;
  open.root = options.root;
  absl::StatusOr<std::unique_ptr<CheckpointReader>> reader = CheckpointReader::Open(path, open);
  if (!reader.ok()) return reader.status();
  absl::StatusOr<std::vector<CanonicalTensor>> canonical = CanonicalTensors(plan);
  if (!canonical.ok()) return canonical.status();
  if (absl::Status s = (*reader)->Bind(plan.config(), *canonical, options.strict_config); !s.ok()) {
    return s;
  }
  std::vector<const HeldTensor*> items;
  std::vector<int64_t> sizes;
  for (const auto& chunk : held) {
    for (const HeldTensor& h : chunk) {
      items.push_back(&h);
      sizes.push_back(Bytes(h.tensor));
    }
  }
  const uint64_t seed = static_cast<uint64_t>(plan.options().build.seed());
  std::atomic<int64_t> padding_rows{0};
  absl::Status status = RunParallel(sizes, options.threads, [&](size_t i) {
    return LoadOne(**reader, *items[i], seed, &padding_rows);
  });
  if (!status.ok()) return status;
  LoadStats stats;
  stats.format = (*reader)->format();
  stats.tensors = static_cast<int64_t>(items.size());
  stats.bytes_read = (*reader)->bytes_read();
  stats.padding_rows_initialized = padding_rows.load();
  stats.seconds = Since(start);
  return stats;
}

absl::StatusOr<SaveStats> SaveWeights(const plan::ModelPlan& plan, int rank,
                                      const parallel::ProcessGroupCollection* groups,
                                      const HeldTensors& held, const std::string& requested_path,
                                      const SaveOptions& options) {
  const Clock::time_point start = Clock::now();
  // "dir/" and "dir" are the same checkpoint; the staging directory sits next to it.
  std::string path = requested_path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  // Everything up to the file creation is a pure function of the plan: every rank computes the
  // same headers. A failure here is the same on every rank, so no agreement is needed yet.
  if (options.format != CheckpointFormat::kCanonical &&
      options.format != CheckpointFormat::kHuggingFace) {
    return absl::InvalidArgumentError("save format must be canonical or huggingface");
  }
  if (absl::Status s = CheckCheckpointPath(path); !s.ok()) return s;
  absl::StatusOr<std::vector<CanonicalTensor>> canonical = CanonicalTensors(plan);
  if (!canonical.ok()) return canonical.status();
  absl::StatusOr<std::vector<std::vector<bool>>> owned = OwnedParameters(plan, rank);
  if (!owned.ok()) return owned.status();
  if (owned->size() != held.size()) {
    return absl::InternalError("the held tensors and the plan disagree on the chunk count");
  }

  const bool hf = options.format == CheckpointFormat::kHuggingFace;
  std::vector<TensorRoute> routes;
  std::map<std::string, std::string> file_metadata, index_metadata;
  std::string hf_config;
  if (hf) {
    HfFamily family = HfFamily::kLlama;
    if (options.hf_model_type.empty()) {
      absl::StatusOr<HfFamily> inferred = InferHfFamily(plan.config());
      if (!inferred.ok()) return inferred.status();
      family = *inferred;
    } else {
      std::optional<HfFamily> parsed = ParseHfModelType(options.hf_model_type);
      if (!parsed.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("hf_model_type '", options.hf_model_type,
                                                       "' is not one of gpt2, llama, mistral, "
                                                       "qwen2, qwen3, mixtral, qwen3_moe, "
                                                       "deepseek_v2, deepseek_v3"));
      }
      family = *parsed;
      if (absl::Status s = CheckHfRepresentable(family, plan.config()); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<TensorRoute>> hf_routes = HfRoutes(
        family, plan.config(), *canonical, plan.config().vocab_size(), HfBasePrefix(family));
    if (!hf_routes.ok()) return hf_routes.status();
    routes = *std::move(hf_routes);
    absl::StatusOr<nlohmann::json> json =
        config::ExportHfConfig(plan.config(), HfModelType(family));
    if (!json.ok()) return json.status();
    hf_config = json->dump(2) + "\n";
    // "format" for Hugging Face loaders; the writer key lets a later overwrite recognise the
    // directory as one gptbuilder saved.
    file_metadata = {{"format", "pt"}, {kWriterKey, kWriterName}};
    for (const auto& [key, value] : options.metadata) {
      if (key != "format" && key != kWriterKey) file_metadata[key] = value;
    }
  } else {
    for (const CanonicalTensor& t : *canonical) {
      routes.push_back(IdentityRoute(t.name, t.shape, t.shape.empty() ? 0 : t.shape[0]));
    }
    absl::StatusOr<std::map<std::string, std::string>> metadata =
        CheckpointMetadata(plan, options.metadata);
    if (!metadata.ok()) return metadata.status();
    file_metadata = *std::move(metadata);
    index_metadata = {{kFormatKey, kCanonicalFormatName},
                      {kFormatVersionKey, absl::StrCat(kFormatVersion)}};
  }
  std::vector<DType> dtypes;
  std::unordered_map<std::string, size_t> route_of;
  for (size_t i = 0; i < canonical->size(); ++i) {
    dtypes.push_back((*canonical)[i].dtype);
    route_of[(*canonical)[i].name] = i;
  }
  absl::StatusOr<std::vector<TensorSpec>> specs = StoredTensorSpecs(routes, dtypes);
  if (!specs.ok()) return specs.status();
  absl::StatusOr<std::vector<ShardPlan>> shards = PlanShards(*specs, options.max_shard_bytes);
  if (!shards.ok()) return shards.status();

  // Rank 0 draws the staging directory's name and every rank learns it; each resolves the
  // target for itself (the ranks of other nodes see the path through their own mounts).
  absl::StatusOr<int64_t> token =
      ShareFromRankZero(groups, rank == 0 ? static_cast<int64_t>(NewSaveToken()) : 0);
  if (!token.ok()) return token.status();
  WriterOptions writer_options;
  writer_options.mode = options.write_mode;
  writer_options.exclusive = true;
  std::unique_ptr<ShardedSafetensorsWriter> writer;
  std::optional<StagingDirectory> staging_directory;
  SaveTarget target;
  absl::Status created;
  if (rank == 0) {
    created = [&]() -> absl::Status {
      absl::StatusOr<SaveTarget> resolved =
          ResolveSaveTarget(path, options.root, /*create_parents=*/true);
      if (!resolved.ok()) return resolved.status();
      target = *std::move(resolved);
      // Partials of saves that crashed, here, go first.
      CleanStaleSaves(target.parent);
      // Refuse early what publishing would refuse, before any byte is written.
      struct stat st;
      if (::lstat(target.path().c_str(), &st) == 0) {
        if (!options.overwrite) {
          return absl::AlreadyExistsError(
              absl::StrCat(path,
                           " already exists; choose another path, or set overwrite to replace a "
                           "checkpoint gptbuilder saved there"));
        }
        absl::StatusOr<std::vector<std::string>> replaceable =
            ReplaceableCheckpointFiles(target.path());
        if (!replaceable.ok()) return replaceable.status();
      }
      absl::StatusOr<StagingDirectory> made =
          StagingDirectory::Create(target, static_cast<uint64_t>(*token));
      if (!made.ok()) return made.status();
      staging_directory.emplace(*std::move(made));
      absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
          ShardedSafetensorsWriter::Create(staging_directory->path(), *shards, file_metadata,
                                           index_metadata, writer_options);
      if (!w.ok()) return w.status();
      writer = *std::move(w);
      if (hf) {
        return WriteNewFile(absl::StrCat(staging_directory->path(), "/config.json"), hf_config);
      }
      return absl::OkStatus();
    }();
    if (!created.ok() && staging_directory.has_value()) {
      writer.reset();
      (void)staging_directory->Remove();
    }
  }
  if (absl::Status s = AgreeAcrossWorld(groups, created, "create the checkpoint files"); !s.ok()) {
    return s;
  }
  std::string staging;
  if (rank == 0) {
    staging = staging_directory->path();
  } else {
    absl::StatusOr<SaveTarget> resolved =
        ResolveSaveTarget(path, options.root, /*create_parents=*/false);
    if (resolved.ok()) {
      target = *std::move(resolved);
      staging = target.StagingPath(static_cast<uint64_t>(*token));
    } else {
      created = resolved.status();
    }
  }

  absl::Status written = [&]() -> absl::Status {
    if (!created.ok()) return created;
    if (writer == nullptr) {
      absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
          ShardedSafetensorsWriter::OpenExisting(staging, *shards, file_metadata, writer_options);
      if (!w.ok()) return w.status();
      writer = *std::move(w);
    }
    std::vector<const HeldTensor*> items;
    std::vector<int64_t> sizes;
    for (size_t c = 0; c < held.size(); ++c) {
      if ((*owned)[c].size() != held[c].size()) {
        return absl::InternalError(
            "the held tensors and the plan disagree on a chunk's parameters");
      }
      for (size_t i = 0; i < held[c].size(); ++i) {
        if (!(*owned)[c][i]) continue;
        items.push_back(&held[c][i]);
        sizes.push_back(Bytes(held[c][i].tensor));
      }
    }
    absl::Status s = RunParallel(sizes, options.threads, [&](size_t i) {
      const size_t r = route_of.at(items[i]->info->canonical_name);
      return SaveOne(*writer, routes[r], dtypes[r], *items[i]);
    });
    absl::Status finished = writer->Finish(options.sync);
    return s.ok() ? finished : s;
  }();
  uint64_t bytes_written = 0;
  if (writer != nullptr) {
    for (const auto& shard : writer->shards()) bytes_written += shard->bytes_written();
  }
  writer.reset();
  absl::Status agreed = AgreeAcrossWorld(groups, written, "write its checkpoint slices");
  absl::Status published = agreed;
  if (rank == 0) {
    if (agreed.ok()) {
      published = staging_directory->RemoveLockFile();
      if (published.ok()) {
        published = PublishStaging(staging, target, options.overwrite,
                                   static_cast<uint64_t>(*token), options.sync);
      }
    }
    // What is left of the staging directory (all of it unless published) was this save's.
    if (!published.ok()) (void)staging_directory->Remove();
  }
  if (!agreed.ok()) return agreed;
  if (absl::Status s = AgreeAcrossWorld(groups, published, "publish the checkpoint"); !s.ok()) {
    return s;
  }
  SaveStats stats;
  stats.bytes_written = bytes_written;
  stats.files = static_cast<int>(shards->size());
  stats.seconds = Since(start);
  return stats;
}

}  // namespace gptb::checkpoint
