#ifndef GPTB_CORE_MODEL_RANK_MODEL_H_
#define GPTB_CORE_MODEL_RANK_MODEL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/checkpoint/weight_io.h"
#include "core/distributed/distributed_data_parallel.h"
#include "core/distributed/float16_module.h"
#include "core/distributed/fully_sharded_data_parallel.h"
#include "core/parallel/process_group_collection.h"
#include "core/plan/model_plan.h"
#include "gptbuilder/v1/model_config.pb.h"
#include "gptbuilder/v1/plan.pb.h"

namespace gptb::model {

// The phases of one rank's build, in order (Prometheus phase labels use these names).
enum class BuildPhase { kProcessGroups, kConstruct, kInitialize, kWrap, kDone };
const char* BuildPhaseName(
    BuildPhase phase);  // "process_groups", "construct", "init", "wrap", "done"

struct BuildProgress {
  int rank = 0;
  BuildPhase phase = BuildPhase::kProcessGroups;
  int layers_built = 0;
  int layers_total = 0;
  int64_t bytes_initialized = 0;
  int64_t bytes_total = 0;
  double phase_seconds = 0.0;  // time spent in the phase that just finished (or so far)
};

// Everything one rank needs to build its share of a model: the finalized config and the
// arguments of build_distributed_models, its place in the world, and the rendezvous store
// (a c10d TCPStore hosted by the coordinator; each build uses its own key prefix).
struct RankBuildOptions {
  gptbuilder::v1::GPTModelConfig config;  // finalized
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  gptbuilder::v1::BuildOptions build;
  int world_size = 1;
  int rank = 0;
  std::string store_host = "127.0.0.1";
  int store_port = 0;
  std::string store_prefix;  // e.g. "builds/<model>/<build id>/"
  // Address Gloo binds for this rank's process groups (the worker's own address).
  std::string bind_address = "127.0.0.1";
  // One timeout for the store and every process group.
  std::chrono::milliseconds timeout{60000};
  // "cpu", or "cuda:<index>" when built with GPTB_WITH_CUDA.
  std::string device = "cpu";
  // Threads that initialise this rank's tensors (0: the machine's cores divided by
  // ranks_per_process).
  int init_threads = 0;
  int ranks_per_process = 1;
  // Load the weights instead of initialising them: a gptbuilder canonical checkpoint or a
  // Hugging Face model directory (core/checkpoint/weight_io.h, LoadWeights). The config must
  // match the checkpoint's (strict architecture check unless load.strict_config is false); each
  // rank reads only its own slices. Empty: initialise from build.seed.
  std::string load_from;
  checkpoint::LoadOptions load;
  // Called from the building thread; must be cheap.
  std::function<void(const BuildProgress&)> on_progress;
  // Polled between layers; returning true aborts the build with CANCELLED.
  std::function<bool()> cancelled;
};

// What one rank holds after build_distributed_models: its stages (one per vp chunk), wrapped
// as configured, on its process groups. Destroying it releases every tensor and group.
class RankModel {
 public:
  virtual ~RankModel() = default;

  virtual int rank() const = 0;
  virtual const plan::ModelPlan& plan() const = 0;
  // The stages as held, one per model chunk: each the plan's description of the stage
  // (core/plan DescribeStage) with every held tensor's checksum (core/init Checksum). DATA_LOSS
  // when a held tensor's name, shape or dtype is not the plan's.
  virtual absl::StatusOr<std::vector<gptbuilder::v1::StageDescription>> Describe() const = 0;
  // Bytes of parameter storage (and gradient buffers) this rank holds.
  virtual int64_t parameter_bytes() const = 0;
  virtual int64_t gradient_bytes() const = 0;
  // Wall time of each finished phase.
  virtual std::vector<std::pair<BuildPhase, double>> phase_seconds() const = 0;
  // The stages (one per model chunk, in chunk order) for forward/backward and training.
  virtual const std::vector<std::shared_ptr<class GptStage>>& stages() const = 0;
  virtual class ParallelContext* parallel_context() const = 0;
  // The rank's process groups.
  virtual const parallel::ProcessGroupCollection* groups() const = 0;
  // Chunk `i`'s data-parallel wrapper (null when wrap_with_ddp is false or FSDP is used) and
  // FSDP wrapper (null unless use_megatron_fsdp / use_torch_fsdp2), and its Float16Module casts
  // (null without fp16/bf16).
  virtual distributed::DistributedDataParallel* ddp(int chunk) const = 0;
  virtual distributed::FullyShardedDataParallel* fsdp(int chunk) const = 0;
  virtual const distributed::Float16Module* float16(int chunk) const = 0;
};

// Builds this rank's stages: rendezvous on the store, create the process groups this rank
// belongs to, construct its chunks from the plan (only the local shards are ever allocated),
// initialise them, wrap them (Float16Module, DDP / FSDP-style sharding) and broadcast replicas
// when data_parallel_random_init. Every rank of the world must call it concurrently. On error
// everything allocated so far is released before returning.
absl::StatusOr<std::unique_ptr<RankModel>> BuildRankModel(const RankBuildOptions& options);

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_RANK_MODEL_H_
