#include "core/distributed/distributed_data_parallel.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <map>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"

namespace gptb::distributed {
namespace {

using parallel::CallTorch;
using plan::GroupKind;

// Runs after the gradient accumulator of one parameter has written `.grad`.
class GradReadyHook : public torch::autograd::FunctionPostHook {
 public:
  GradReadyHook(DistributedDataParallel* ddp, int buffer, int slot)
      : ddp_(ddp), buffer_(buffer), slot_(slot) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    ddp_->OnGradAccumulated(buffer_, slot_);
    return outputs;
  }

 private:
  DistributedDataParallel* ddp_;
  int buffer_;
  int slot_;
};

bool IsNccl(const parallel::ProcessGroupPtr& group) { return group->getBackendName() == "nccl"; }

struct PendingParam {
  std::string name;
  torch::Tensor param;
  const plan::ParamInfo* info;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DistributedDataParallel>> DistributedDataParallel::Create(
    std::shared_ptr<torch::nn::Module> module, const std::vector<plan::ParamInfo>& params,
    const parallel::ProcessGroupCollection& groups, const DdpOptions& options) {
  if (!module) return absl::InvalidArgumentError("DistributedDataParallel needs a module");
  const auto& c = options.config;
  if (c.has_num_buckets()) {
    return absl::UnimplementedError("ddp.num_buckets is not supported; set ddp.bucket_size");
  }
  if (c.num_distributed_optimizer_instances() > 1) {
    return absl::UnimplementedError(
        "ddp.num_distributed_optimizer_instances > 1 is not supported; use 1");
  }
  if (c.param_name_patterns_for_fp32_local_accumulation_size() > 0) {
    return absl::UnimplementedError(
        "ddp.param_name_patterns_for_fp32_local_accumulation is not supported; leave it empty");
  }
  if (c.average_in_collective() && options.calculate_per_token_loss) {
    return absl::InvalidArgumentError(
        "ddp.average_in_collective: Cannot average in collective when calculating per-token "
        "loss!");
  }
  if (c.has_bucket_size() && c.bucket_size() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ddp.bucket_size must be positive; got ", c.bucket_size()));
  }
  for (GroupKind kind : {GroupKind::kDpCp, GroupKind::kExptDp, GroupKind::kPp}) {
    if (!groups.has(kind)) {
      return absl::FailedPreconditionError(absl::StrCat("DistributedDataParallel needs the ",
                                                        plan::GroupName(kind), " process group"));
    }
  }
  std::unique_ptr<DistributedDataParallel> ddp(new DistributedDataParallel());
  ddp->module_ = std::move(module);
  absl::Status status = CallTorch("wrapping the model chunk in DistributedDataParallel",
                                  [&] { return ddp->Build(params, groups, options); });
  if (!status.ok()) return status;
  return ddp;
}

absl::Status DistributedDataParallel::Build(const std::vector<plan::ParamInfo>& params,
                                            const parallel::ProcessGroupCollection& groups,
                                            const DdpOptions& options) {
  config_ = options.config;
  dp_cp_ = groups.group(GroupKind::kDpCp);
  expt_dp_ = groups.group(GroupKind::kExptDp);
  bucket_size_ = ResolveBucketSize(config_, dp_cp_->getSize(), groups.rank(GroupKind::kPp),
                                   options.disable_bucketing);
  scaling_ =
      ComputeGradientScaling(config_.average_in_collective(), options.calculate_per_token_loss,
                             dp_cp_->getSize(), expt_dp_->getSize());

  std::unordered_map<std::string, const plan::ParamInfo*> table;
  for (const plan::ParamInfo& info : params) table.emplace(info.name, &info);

  // Registration order, each tensor once (a tensor registered twice counts under its first name,
  // as Python's named_parameters() dedupes).
  std::vector<PendingParam> dense, expert;
  std::unordered_set<const void*> seen;
  for (auto& item : module_->named_parameters(/*recurse=*/true)) {
    const torch::Tensor& p = item.value();
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    auto it = table.find(item.key());
    if (it == table.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", item.key(), "' of the model chunk is not in the plan's parameter table"));
    }
    all_params_.emplace_back(p, it->second->is_expert);
    if (!p.requires_grad()) continue;
    (it->second->is_expert ? expert : dense).push_back({item.key(), p, it->second});
  }

  const bool dist_opt = config_.use_distributed_optimizer();
  auto allocate = [&](const std::vector<PendingParam>& list, bool is_expert) {
    // Group by (param dtype, grad dtype) in first-seen order.
    std::vector<std::pair<std::pair<torch::Dtype, torch::Dtype>, std::vector<const PendingParam*>>>
        keyed;
    for (const PendingParam& p : list) {
      const torch::Dtype param_dtype = p.param.scalar_type();
      const torch::Dtype grad_dtype = config_.grad_reduce_in_fp32() ? torch::kFloat32 : param_dtype;
      auto key = std::make_pair(param_dtype, grad_dtype);
      auto it = std::find_if(keyed.begin(), keyed.end(),
                             [&](const auto& entry) { return entry.first == key; });
      if (it == keyed.end()) {
        keyed.push_back({key, {}});
        it = keyed.end() - 1;
      }
      it->second.push_back(&p);
    }
    for (auto& [key, members] : keyed) {
      GradBuffer buffer;
      buffer.param_dtype = key.first;
      buffer.grad_dtype = key.second;
      buffer.is_expert = is_expert;
      buffer.group = is_expert ? expt_dp_ : dp_cp_;
      buffer.scaling = is_expert ? scaling_.expert : scaling_.dense;
      std::vector<int64_t> numels;
      std::vector<bool> shared;
      for (const PendingParam* p : members) {
        buffer.names.push_back(p->name);
        buffer.params.push_back(p->param);
        numels.push_back(p->param.numel());
        shared.push_back(p->info->shared_embedding);
      }
      BufferLayoutOptions layout_options;
      layout_options.bucket_size = bucket_size_;
      layout_options.use_distributed_optimizer = dist_opt;
      layout_options.pad_buckets_for_high_nccl_busbw = config_.pad_buckets_for_high_nccl_busbw();
      layout_options.data_parallel_size = buffer.group->getSize();
      buffer.layout = ComputeBufferLayout(numels, shared, layout_options);
      const torch::Device device = buffer.params.front().device();
      buffer.grad_data = torch::zeros({buffer.layout.numel},
                                      torch::TensorOptions().dtype(key.second).device(device));
      std::vector<torch::Tensor> views(buffer.params.size());
      if (dist_opt) {
        buffer.param_data = torch::zeros({buffer.layout.numel},
                                         torch::TensorOptions().dtype(key.first).device(device));
      }
      for (const ParamSlot& slot : buffer.layout.slots) {
        torch::Tensor& param = buffer.params[slot.index];
        views[slot.index] =
            buffer.grad_data.narrow(0, slot.start, slot.end - slot.start).view(param.sizes());
        main_grads_[buffer.names[slot.index]] = views[slot.index];
        if (dist_opt) {
          torch::NoGradGuard no_grad;
          torch::Tensor data =
              buffer.param_data.narrow(0, slot.start, slot.end - slot.start).view(param.sizes());
          data.copy_(param.detach());
          param.set_data(data);
        }
      }
      main_grad_views_.push_back(std::move(views));
      buffers_.push_back(std::move(buffer));
    }
  };
  allocate(dense, /*is_expert=*/false);
  allocate(expert, /*is_expert=*/true);

  for (int b = 0; b < static_cast<int>(buffers_.size()); ++b) {
    for (int s = 0; s < static_cast<int>(buffers_[b].layout.slots.size()); ++s) {
      const torch::Tensor& param = buffers_[b].params[buffers_[b].layout.slots[s].index];
      c10::intrusive_ptr<torch::autograd::Node> accumulator =
          torch::autograd::impl::grad_accumulator(param);
      if (!accumulator) {
        return absl::InternalError(
            absl::StrCat("parameter '", buffers_[b].names[buffers_[b].layout.slots[s].index],
                         "' has no gradient accumulator"));
      }
      const uintptr_t key = accumulator->add_post_hook(std::make_unique<GradReadyHook>(this, b, s));
      hooks_.emplace_back(std::move(accumulator), key);
    }
  }
  ResetBucketStates();
  return absl::OkStatus();
}

DistributedDataParallel::~DistributedDataParallel() {
  // The hooks point at this object; the accumulators may outlive it (the module keeps them
  // reachable while a graph exists).
  for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
}

torch::Tensor DistributedDataParallel::main_grad(const std::string& name) const {
  auto it = main_grads_.find(name);
  return it == main_grads_.end() ? torch::Tensor() : it->second;
}

int DistributedDataParallel::num_buckets_started() const {
  int n = 0;
  for (const auto& states : bucket_states_) {
    for (const BucketState& state : states) n += state.started ? 1 : 0;
  }
  return n;
}

void DistributedDataParallel::ResetBucketStates() {
  bucket_states_.assign(buffers_.size(), {});
  for (size_t b = 0; b < buffers_.size(); ++b) {
    bucket_states_[b].resize(buffers_[b].layout.buckets.size());
    for (size_t k = 0; k < bucket_states_[b].size(); ++k) {
      bucket_states_[b][k].pending = static_cast<int>(buffers_[b].layout.buckets[k].slots.size());
    }
  }
}

void DistributedDataParallel::OnGradAccumulated(int buffer, int slot_index) {
  GradBuffer& buf = buffers_[buffer];
  const ParamSlot& slot = buf.layout.slots[slot_index];
  torch::Tensor& grad = buf.params[slot.index].mutable_grad();
  if (grad.defined()) {
    torch::NoGradGuard no_grad;
    main_grad_views_[buffer][slot.index].add_(grad);
    grad = torch::Tensor();
  }
  if (!config_.overlap_grad_reduce() || !is_last_microbatch_) return;
  BucketState& state = bucket_states_[buffer][slot.bucket];
  if (--state.pending == 0 && !state.started) {
    absl::Status status = StartBucket(buffer, slot.bucket);
    // Hooks run inside backward: an exception is the only way to report.
    TORCH_CHECK(status.ok(), status.ToString());
  }
}

absl::Status DistributedDataParallel::StartBucket(int buffer, int bucket) {
  GradBuffer& buf = buffers_[buffer];
  const BucketLayout& layout = buf.layout.buckets[bucket];
  BucketState& state = bucket_states_[buffer][bucket];
  state.started = true;
  torch::NoGradGuard no_grad;
  torch::Tensor view = buf.grad_data.narrow(0, layout.start, layout.end - layout.start);
  if (config_.check_for_nan_in_grad() && !torch::isfinite(view).all().item<bool>()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ddp.check_for_nan_in_grad: a gradient in bucket ", bucket, " of the ",
                     buf.is_expert ? "expert" : "dense", " ", c10::toString(buf.grad_dtype),
                     " buffer is NaN or infinite on this rank"));
  }
  if (buf.scaling != 1.0) view.mul_(buf.scaling);
  const int size = buf.group->getSize();
  if (size == 1) return absl::OkStatus();
  const bool nccl = IsNccl(buf.group);
  c10d::AllreduceOptions options;
  options.reduceOp = scaling_.average && nccl ? c10d::ReduceOp(c10d::ReduceOp::AVG)
                                              : c10d::ReduceOp(c10d::ReduceOp::SUM);
  state.divide_after = scaling_.average && !nccl;
  // Gloo (LibTorch 1.13) cannot reduce bf16: reduce an fp32 copy.
  state.wire = (!nccl && view.scalar_type() == torch::kBFloat16) ? view.to(torch::kFloat32) : view;
  if (config_.use_distributed_optimizer() && nccl) {
    // Each rank needs only its shard of the reduced bucket (buckets are padded to shard evenly).
    const int64_t shard = view.numel() / size;
    torch::Tensor local = view.narrow(0, buf.group->getRank() * shard, shard);
    c10d::ReduceScatterOptions rs_options;
    rs_options.reduceOp = options.reduceOp;
    state.work = buf.group->reduce_scatter_single(local, view, rs_options);
  } else {
    std::vector<at::Tensor> tensors = {state.wire};
    state.work = buf.group->allreduce(tensors, options);
  }
  return absl::OkStatus();
}

void DistributedDataParallel::WaitBucket(int buffer, int bucket) {
  BucketState& state = bucket_states_[buffer][bucket];
  if (!state.work) return;
  state.work->wait();
  torch::NoGradGuard no_grad;
  const GradBuffer& buf = buffers_[buffer];
  if (state.divide_after) state.wire.div_(buf.group->getSize());
  const BucketLayout& layout = buf.layout.buckets[bucket];
  torch::Tensor view = buf.grad_data.narrow(0, layout.start, layout.end - layout.start);
  if (!state.wire.is_same(view)) view.copy_(state.wire);
  state.work.reset();
  state.wire = torch::Tensor();
}

absl::Status DistributedDataParallel::FinishGradSync() {
  absl::Status status = CallTorch("data-parallel gradient reduction", [&]() -> absl::Status {
    for (int b = 0; b < static_cast<int>(buffers_.size()); ++b) {
      for (int k = 0; k < static_cast<int>(bucket_states_[b].size()); ++k) {
        if (bucket_states_[b][k].started) continue;
        if (absl::Status s = StartBucket(b, k); !s.ok()) return s;
      }
    }
    for (int b = 0; b < static_cast<int>(buffers_.size()); ++b) {
      for (int k = 0; k < static_cast<int>(bucket_states_[b].size()); ++k) WaitBucket(b, k);
    }
    return absl::OkStatus();
  });
  ResetBucketStates();
  return status;
}

void DistributedDataParallel::ZeroGradBuffer() {
  torch::NoGradGuard no_grad;
  for (GradBuffer& buf : buffers_) {
    buf.grad_data.zero_();
    for (torch::Tensor& p : buf.params) p.mutable_grad() = torch::Tensor();
  }
  ResetBucketStates();
}

absl::Status DistributedDataParallel::BroadcastParams() {
  return CallTorch("broadcasting parameters from the data-parallel source rank", [&] {
    torch::NoGradGuard no_grad;
    for (auto& [param, is_expert] : all_params_) {
      torch::Tensor data = param.detach();
      parallel::BroadcastInPlace(data, is_expert ? expt_dp_ : dp_cp_, /*root=*/0);
    }
  });
}

absl::Status DistributedDataParallel::ParamSync() {
  if (!config_.use_distributed_optimizer()) {
    return absl::FailedPreconditionError(
        "ParamSync needs ddp.use_distributed_optimizer (parameters are not sharded otherwise)");
  }
  return CallTorch("gathering parameter shards (distributed optimizer)", [&] {
    torch::NoGradGuard no_grad;
    for (GradBuffer& buf : buffers_) {
      const int size = buf.group->getSize();
      if (size == 1) continue;
      for (const BucketLayout& layout : buf.layout.buckets) {
        torch::Tensor bucket = buf.param_data.narrow(0, layout.start, layout.end - layout.start);
        const int64_t shard = bucket.numel() / size;
        torch::Tensor local = bucket.narrow(0, buf.group->getRank() * shard, shard);
        bucket.copy_(parallel::AllGather(local, buf.group, 0));
      }
    }
  });
}

}  // namespace gptb::distributed
