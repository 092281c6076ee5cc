#include "core/model/rank_model.h"

#include <chrono>
#include <thread>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/distributed/wrap.h"
#include "core/init/checksum.h"
#include "core/init/initializer.h"
#include "core/model/distributed_parallel_context.h"
#include "core/model/gpt_stage.h"
#include "core/model/param_table.h"
#include "core/parallel/torch_status.h"
#include "core/plan/plan_description.h"

namespace gptb::model {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class RankModelImpl : public RankModel {
 public:
  RankModelImpl(plan::ModelPlan plan, int rank) : plan_(std::move(plan)), rank_(rank) {}

  int rank() const override { return rank_; }
  const plan::ModelPlan& plan() const override { return plan_; }
  int64_t parameter_bytes() const override { return parameter_bytes_; }
  int64_t gradient_bytes() const override { return gradient_bytes_; }
  std::vector<std::pair<BuildPhase, double>> phase_seconds() const override { return phases_; }
  const std::vector<std::shared_ptr<GptStage>>& stages() const override { return stages_; }
  ParallelContext* parallel_context() const override { return parallel_.get(); }
  const parallel::ProcessGroupCollection* groups() const override {
    return groups_.has_value() ? &*groups_ : nullptr;
  }
  distributed::DistributedDataParallel* ddp(int chunk) const override {
    return ddp_.at(chunk).get();
  }
  distributed::FullyShardedDataParallel* fsdp(int chunk) const override {
    return fsdp_.at(chunk).get();
  }
  const distributed::Float16Module* float16(int chunk) const override {
    return float16_.at(chunk).has_value() ? &*float16_.at(chunk) : nullptr;
  }

  absl::StatusOr<std::vector<gptbuilder::v1::StageDescription>> Describe() const override {
    std::vector<gptbuilder::v1::StageDescription> out;
    for (const auto& stage : stages_) {
      gptbuilder::v1::StageDescription described = plan::DescribeStage(stage->plan());
      const auto held = stage->named_parameters();
      if (static_cast<int>(held.size()) != described.params_size()) {
        return absl::DataLossError(absl::StrCat("rank ", rank_, " holds ", held.size(),
                                                " tensors in a stage the plan gives ",
                                                described.params_size()));
      }
      for (int i = 0; i < described.params_size(); ++i) {
        gptbuilder::v1::ParameterDescription& param = *described.mutable_params(i);
        const torch::Tensor tensor = held[i].value().detach().contiguous().cpu();
        const std::vector<int64_t> shape = tensor.sizes().vec();
        const std::optional<DType> dtype = DTypeOfTorch(tensor.scalar_type());
        if (held[i].key() != param.name() ||
            !std::equal(shape.begin(), shape.end(), param.shape().begin(), param.shape().end()) ||
            !dtype.has_value() || DTypeName(*dtype) != param.dtype()) {
          return absl::DataLossError(
              absl::StrCat("rank ", rank_, " holds tensor ", i, " as ", held[i].key(), " [",
                           absl::StrJoin(shape, ", "), "] ", c10::toString(tensor.scalar_type()),
                           "; the plan has ", param.name(), " [",
                           absl::StrJoin(param.shape(), ", "), "] ", param.dtype()));
        }
        param.set_checksum(
            init::Checksum(tensor.data_ptr(), tensor.numel() * tensor.element_size()));
      }
      out.push_back(std::move(described));
    }
    return out;
  }

  absl::Status Build(const RankBuildOptions& options);

 private:
  void Phase(BuildPhase phase, double seconds, const RankBuildOptions& options, int layers_built,
             int64_t bytes_done) {
    phases_.emplace_back(phase, seconds);
    if (options.on_progress) {
      BuildProgress progress;
      progress.rank = rank_;
      progress.phase = phase;
      progress.layers_built = layers_built;
      progress.layers_total = layers_total_;
      progress.bytes_initialized = bytes_done;
      progress.bytes_total = parameter_bytes_;
      progress.phase_seconds = seconds;
      options.on_progress(progress);
    }
  }
  // Fills the stages from options.load_from; all ranks agree on the outcome, so a rank that
  // cannot load fails the build everywhere instead of leaving its peers waiting in the wrap.
  absl::Status Load(const RankBuildOptions& options) {
    checkpoint::HeldTensors held;
    for (const auto& stage : stages_) {
      held.emplace_back();
      auto tensors = stage->CheckpointTensors();
      if (!tensors.ok()) return tensors.status();
      for (auto& [info, tensor] : *tensors) held.back().push_back({info, tensor});
    }
    checkpoint::LoadOptions load = options.load;
    if (load.threads <= 0) load.threads = InitThreads(options);
    absl::StatusOr<checkpoint::LoadStats> loaded =
        checkpoint::LoadWeights(plan_, held, options.load_from, load);
    absl::Status status =
        loaded.ok() ? absl::OkStatus()
                    : absl::Status(loaded.status().code(),
                                   absl::StrCat("rank ", rank_, ": loading ", options.load_from,
                                                ": ", loaded.status().message()));
    return checkpoint::AgreeAcrossWorld(groups(), status, "load the checkpoint");
  }
  static int InitThreads(const RankBuildOptions& options) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return options.init_threads > 0
               ? options.init_threads
               : std::max(1, static_cast<int>(cores) / std::max(1, options.ranks_per_process));
  }
  absl::Status CheckCancelled(const RankBuildOptions& options) const {
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError(absl::StrCat("rank ", rank_, ": build cancelled"));
    }
    return absl::OkStatus();
  }

  // Declaration order is destruction order reversed: stages go before the groups they use.
  plan::ModelPlan plan_;
  int rank_;
  std::optional<parallel::ProcessGroupCollection> groups_;
  std::unique_ptr<ParallelContext> parallel_;
  std::vector<std::shared_ptr<GptStage>> stages_;
  std::vector<std::unique_ptr<distributed::DistributedDataParallel>> ddp_;
  std::vector<std::unique_ptr<distributed::FullyShardedDataParallel>> fsdp_;
  std::vector<std::optional<distributed::Float16Module>> float16_;
  std::vector<std::pair<BuildPhase, double>> phases_;
  int64_t parameter_bytes_ = 0;
  int64_t gradient_bytes_ = 0;
  int layers_total_ = 0;
};

absl::Status RankModelImpl::Build(const RankBuildOptions& options) {
  const plan::RankPlan rank_plan = plan_.Rank(rank_);
  for (int index : rank_plan.stages) {
    const plan::StagePlan& stage = plan_.stages()[index];
    layers_total_ += static_cast<int>(stage.layers.size() + stage.mtp_layers.size());
    parameter_bytes_ += stage.param_bytes;
  }
  torch::Device device(torch::kCPU);
  if (absl::Status s =
          parallel::CallTorch("device", [&] { device = torch::Device(options.device); });
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("device '", options.device, "' is not valid"));
  }
  if (device.is_cuda()) {
#ifndef GPTB_WITH_CUDA
    return absl::FailedPreconditionError(
        absl::StrCat("device '", options.device, "' needs a build with -DGPTB_WITH_CUDA=ON"));
#endif
  }

  // 1. Rendezvous and the process groups this rank belongs to.
  Clock::time_point start = Clock::now();
  {
    absl::StatusOr<parallel::StorePtr> store =
        parallel::CallTorchOr("connect to the rendezvous store", [&] {
          // A world of one needs no rendezvous: its groups are all local.
          if (plan_.world_size() == 1 && options.store_port == 0) {
            return parallel::StorePtr(c10::make_intrusive<c10d::HashStore>());
          }
          c10d::TCPStoreOptions store_options;
          store_options.port = static_cast<uint16_t>(options.store_port);
          store_options.isServer = false;
          store_options.waitWorkers = false;
          store_options.timeout = options.timeout;
          parallel::StorePtr tcp =
              c10::make_intrusive<c10d::TCPStore>(options.store_host, store_options);
          return parallel::StorePtr(
              c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, tcp));
        });
    if (!store.ok()) return store.status();
    parallel::ProcessGroupOptions group_options;
    group_options.timeout = options.timeout;
    group_options.gloo_hostname = options.bind_address;
    if (device.is_cuda()) {
      group_options.backend = parallel::Backend::kNccl;
      group_options.cuda_device = device.index();
    }
    absl::StatusOr<parallel::ProcessGroupCollection> groups =
        parallel::ProcessGroupCollection::Create(plan_.topology(), rank_, *store, group_options);
    if (!groups.ok()) return groups.status();
    groups_.emplace(*std::move(groups));
    parallel_ = std::make_unique<DistributedParallelContext>(
        &*groups_, static_cast<uint64_t>(options.build.seed()),
        options.build.data_parallel_random_init(), device);
  }
  Phase(BuildPhase::kProcessGroups, Since(start), options, 0, 0);
  if (absl::Status s = CheckCancelled(options); !s.ok()) return s;

  // 2. Construct this rank's chunks: only the local shards are allocated.
  start = Clock::now();
  int layers_built = 0;
  for (int chunk_index = 0; chunk_index < static_cast<int>(rank_plan.stages.size());
       ++chunk_index) {
    const plan::StagePlan& stage = plan_.stages()[rank_plan.stages[chunk_index]];
    const plan::ChunkLayout& chunk = plan_.layout().Chunk(stage.pp_rank, stage.chunk_index);
    absl::StatusOr<layer_spec::StageLayerSpecs> specs =
        layer_spec::ResolveStageLayerSpecs(plan_.config(), chunk.LayerIds());
    if (!specs.ok()) return specs.status();
    auto mtp = layer_spec::MtpBlockSpec(plan_.config(), *specs, chunk.num_mtp_layers);
    if (!mtp.ok()) return mtp.status();
    absl::Status built = parallel::CallTorch("construct stage", [&] {
      torch::NoGradGuard no_grad;
      stages_.push_back(
          std::make_shared<GptStage>(plan_.config(), stage, *specs, *mtp, parallel_.get(), device));
    });
    if (!built.ok()) return built;
    layers_built += static_cast<int>(stage.layers.size() + stage.mtp_layers.size());
    if (absl::Status s = CheckCancelled(options); !s.ok()) return s;
  }
  Phase(BuildPhase::kConstruct, Since(start), options, layers_built, 0);

  // 3. Initialise every shard straight from the counter-based stream (core/init), or load it
  // from a checkpoint.
  start = Clock::now();
  const gptbuilder::v1::TransformerConfig& t = plan_.config().transformer();
  if (!options.load_from.empty()) {
    if (absl::Status s = Load(options); !s.ok()) return s;
  } else if (t.perform_initialization()) {
    const uint64_t seed = static_cast<uint64_t>(options.build.seed());
    // Megatron's data_parallel_random_init: data-parallel replicas draw from different seeds
    // (+10 per replica) and DDP's broadcast_params then copies the group's first replica to the
    // others. The offset is the rank's place in the group its tensor is broadcast over (dp_cp, or
    // expt_dp for expert tensors), so the broadcast source always holds the seed's values and the
    // model stays layout-invariant.
    const bool dp_random =
        options.build.data_parallel_random_init() && options.build.wrap_with_ddp();
    const int dense_replica = dp_random ? std::max(0, groups_->rank(plan::GroupKind::kDpCp)) : 0;
    const int expert_replica = dp_random ? std::max(0, groups_->rank(plan::GroupKind::kExptDp)) : 0;
    init::FillOptions fill;
    fill.num_threads = InitThreads(options);
    int64_t done = 0;
    for (const auto& stage : stages_) {
      const std::vector<plan::ParamInfo>& infos = stage->plan().params;
      size_t i = 0;
      for (const auto& item : stage->named_parameters()) {
        const plan::ParamInfo& info = infos[i++];
        torch::Tensor tensor = item.value();
        init::ShardLayout layout;
        layout.canonical_shape = info.canonical_shape;
        layout.partition_dim = info.partition_dim;
        for (const plan::Piece& piece : info.pieces)
          layout.pieces.push_back({piece.start, piece.length});
        const init::InitSpec spec = info.init.kind == plan::InitMethod::Kind::kNormal
                                        ? init::InitSpec::Normal(info.init.value)
                                        : init::InitSpec::Constant(info.init.value);
        const uint64_t replica_seed =
            seed + 10 * static_cast<uint64_t>(info.is_expert ? expert_replica : dense_replica);
        absl::Status filled = init::FillShard(replica_seed, info.canonical_name, spec, layout,
                                              info.dtype, tensor.data_ptr(), tensor.numel(), fill);
        if (!filled.ok()) {
          return absl::InternalError(
              absl::StrCat("initialising ", info.name, ": ", filled.message()));
        }
        done += info.bytes();
      }
      if (absl::Status s = CheckCancelled(options); !s.ok()) return s;
      if (options.on_progress) {
        BuildProgress progress;
        progress.rank = rank_;
        progress.phase = BuildPhase::kInitialize;
        progress.layers_built = layers_built;
        progress.layers_total = layers_total_;
        progress.bytes_initialized = done;
        progress.bytes_total = parameter_bytes_;
        progress.phase_seconds = Since(start);
        options.on_progress(progress);
      }
    }
  }
  Phase(BuildPhase::kInitialize, Since(start), options, layers_built, parameter_bytes_);

  // 4. Wrap as build_distributed_models does: Float16Module (the tensors already have the wrapped
  // dtype: they were allocated and initialised in it), then DDP or FSDP-style sharding, then the
  // broadcast of data_parallel_random_init.
  start = Clock::now();
  absl::StatusOr<std::vector<distributed::ChunkWrap>> wraps = distributed::PlanDistributedWrap(
      t, options.build, &options.ddp, plan_.topology().pp(), rank_plan.coords.pp);
  if (!wraps.ok()) return wraps.status();
  if (wraps->size() != stages_.size()) {
    return absl::InternalError("the wrap plan and the pipeline layout disagree on the chunk count");
  }
  for (size_t c = 0; c < stages_.size(); ++c) {
    const distributed::ChunkWrap& wrap = (*wraps)[c];
    std::shared_ptr<GptStage> stage = stages_[c];
    float16_.emplace_back();
    ddp_.emplace_back();
    fsdp_.emplace_back();
    if (wrap.mixed_precision) {
      absl::StatusOr<distributed::Float16Module> f16 = distributed::Float16Module::Wrap(
          *stage, TorchScalarType(plan_.dtype()), stage->pre_process(), stage->post_process());
      if (!f16.ok()) return f16.status();
      float16_.back().emplace(*std::move(f16));
    }
    if (wrap.wrapper == distributed::DataParallelWrapper::kDdp) {
      distributed::DdpOptions ddp_options;
      ddp_options.config = options.ddp;
      ddp_options.disable_bucketing = wrap.disable_bucketing;
      auto ddp = distributed::DistributedDataParallel::Create(stage, stage->plan().params, *groups_,
                                                              ddp_options);
      if (!ddp.ok()) return ddp.status();
      if (wrap.broadcast_params) {
        if (absl::Status s = (*ddp)->BroadcastParams(); !s.ok()) return s;
      }
      for (const distributed::GradBuffer& buffer : (*ddp)->buffers()) {
        gradient_bytes_ += buffer.grad_data.numel() * buffer.grad_data.element_size();
      }
      ddp_.back() = *std::move(ddp);
    } else if (wrap.wrapper == distributed::DataParallelWrapper::kMegatronFsdp ||
               wrap.wrapper == distributed::DataParallelWrapper::kTorchFsdp2) {
      distributed::FsdpOptions fsdp_options;
      fsdp_options.flavor = wrap.wrapper == distributed::DataParallelWrapper::kMegatronFsdp
                                ? distributed::FsdpFlavor::kMegatronFsdp
                                : distributed::FsdpFlavor::kTorchFsdp2;
      fsdp_options.broadcast_from_source = wrap.broadcast_params;
      auto fsdp = distributed::FullyShardedDataParallel::Create(stage, stage->plan().params,
                                                                *groups_, fsdp_options);
      if (!fsdp.ok()) return fsdp.status();
      fsdp_.back() = *std::move(fsdp);
    }
    if (absl::Status s = CheckCancelled(options); !s.ok()) return s;
  }
  Phase(BuildPhase::kWrap, Since(start), options, layers_built, parameter_bytes_);
  Phase(BuildPhase::kDone, 0.0, options, layers_built, parameter_bytes_);
  return absl::OkStatus();
}

}  // namespace

const char* BuildPhaseName(BuildPhase phase) {
  switch (phase) {
    case BuildPhase::kProcessGroups:
      return "process_groups";
    case BuildPhase::kConstruct:
      return "construct";
    case BuildPhase::kInitialize:
      return "init";
    case BuildPhase::kWrap:
      return "wrap";
    case BuildPhase::kDone:
      return "done";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<RankModel>> BuildRankModel(const RankBuildOptions& options) {
  if (options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is not in a world of ", options.world_size));
  }
  plan::PlanOptions plan_options;
  plan_options.world_size = options.world_size;
  plan_options.build = options.build;
  plan_options.ddp = options.ddp;
  absl::StatusOr<plan::ModelPlan> plan = plan::ModelPlan::Create(options.config, plan_options);
  if (!plan.ok()) return plan.status();
  auto model = std::make_unique<RankModelImpl>(*std::move(plan), options.rank);
  // On failure the half-built model is destroyed here, releasing its tensors and groups.
  if (absl::Status s = model->Build(options); !s.ok()) return s;
  return std::unique_ptr<RankModel>(std::move(model));
}

}  // namespace gptb::model
