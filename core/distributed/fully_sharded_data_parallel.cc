#include "core/distributed/fully_sharded_data_parallel.h"

#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"

namespace gptb::distributed {
namespace {

using parallel::CallTorch;
using plan::GroupKind;

int64_t ShardSize(int64_t numel, int dp) { return (numel + dp - 1) / dp; }

}  // namespace

const char* FsdpFlavorName(FsdpFlavor flavor) {
  switch (flavor) {
    case FsdpFlavor::kMegatronFsdp:
      return "megatron_fsdp";
    case FsdpFlavor::kTorchFsdp2:
      return "torch_fsdp2";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<FullyShardedDataParallel>> FullyShardedDataParallel::Create(
    std::shared_ptr<torch::nn::Module> module, const std::vector<plan::ParamInfo>& params,
    const parallel::ProcessGroupCollection& groups, const FsdpOptions& options) {
  if (!module) return absl::InvalidArgumentError("FSDP needs a module");
  for (GroupKind kind : {GroupKind::kDpCp, GroupKind::kExptDp}) {
    if (!groups.has(kind)) {
      return absl::FailedPreconditionError(
          absl::StrCat("FSDP needs the ", plan::GroupName(kind), " process group"));
    }
  }
  std::unique_ptr<FullyShardedDataParallel> fsdp(new FullyShardedDataParallel());
  fsdp->module_ = std::move(module);
  fsdp->flavor_ = options.flavor;
  fsdp->grad_scaling_ = 1.0 / groups.size(GroupKind::kDpCp);

  std::unordered_map<std::string, const plan::ParamInfo*> table;
  for (const plan::ParamInfo& info : params) table.emplace(info.name, &info);
  std::unordered_set<const void*> seen;
  for (auto& item : fsdp->module_->named_parameters(/*recurse=*/true)) {
    if (!seen.insert(item.value().unsafeGetTensorImpl()).second) continue;
    auto it = table.find(item.key());
    if (it == table.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", item.key(), "' of the model chunk is not in the plan's parameter table"));
    }
    Sharded s;
    s.name = item.key();
    s.param = item.value();
    s.group = groups.group(it->second->is_expert ? GroupKind::kExptDp : GroupKind::kDpCp);
    fsdp->params_.push_back(std::move(s));
  }
  absl::Status status = CallTorch("sharding the model chunk (FSDP)", [&] {
    torch::NoGradGuard no_grad;
    for (Sharded& s : fsdp->params_) {
      torch::Tensor full = s.param.detach();
      if (options.broadcast_from_source) parallel::BroadcastInPlace(full, s.group, /*root=*/0);
      const int dp = s.group->getSize();
      s.shape = full.sizes().vec();
      s.numel = full.numel();
      const int64_t shard = ShardSize(s.numel, dp);
      torch::Tensor flat = torch::zeros({shard * dp}, full.options());
      flat.narrow(0, 0, s.numel).copy_(full.reshape({-1}));
      s.shard = flat.narrow(0, s.group->getRank() * shard, shard).clone();
      s.grad_shard = torch::zeros_like(s.shard, s.shard.options().dtype(torch::kFloat32));
      s.param.set_data(torch::empty({0}, full.options()));
    }
  });
  if (!status.ok()) return status;
  return fsdp;
}

absl::Status FullyShardedDataParallel::Gather() {
  if (gathered_) return absl::OkStatus();
  absl::Status status = CallTorch("gathering FSDP parameter shards", [&] {
    torch::NoGradGuard no_grad;
    for (Sharded& s : params_) {
      torch::Tensor flat = parallel::AllGather(s.shard, s.group, 0);
      s.param.set_data(flat.narrow(0, 0, s.numel).view(s.shape));
    }
  });
  gathered_ = status.ok();
  if (!status.ok()) Release();
  return status;
}

void FullyShardedDataParallel::Release() {
  torch::NoGradGuard no_grad;
  for (Sharded& s : params_) {
    s.param.mutable_grad() = torch::Tensor();
    s.param.set_data(torch::empty({0}, s.shard.options()));
  }
  gathered_ = false;
}

const FullyShardedDataParallel::Sharded* FullyShardedDataParallel::Find(
    const std::string& name) const {
  for (const Sharded& s : params_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

torch::Tensor FullyShardedDataParallel::shard(const std::string& name) const {
  const Sharded* s = Find(name);
  return s ? s->shard : torch::Tensor();
}

torch::Tensor FullyShardedDataParallel::sharded_grad(const std::string& name) const {
  const Sharded* s = Find(name);
  return s ? s->grad_shard : torch::Tensor();
}

absl::Status FullyShardedDataParallel::ReduceScatterGradients() {
  if (!gathered_) {
    return absl::FailedPreconditionError(
        "ReduceScatterGradients needs gathered parameters (call it after backward, before "
        "Release)");
  }
  return CallTorch("reduce-scattering FSDP gradients", [&] {
    torch::NoGradGuard no_grad;
    for (Sharded& s : params_) {
      torch::Tensor& grad = s.param.mutable_grad();
      if (!grad.defined()) continue;
      const int dp = s.group->getSize();
      torch::Tensor flat =
          torch::zeros({s.shard.numel() * dp}, grad.options().dtype(torch::kFloat32));
      flat.narrow(0, 0, s.numel).copy_(grad.reshape({-1}));
      flat.mul_(grad_scaling_);
      s.grad_shard.add_(parallel::ReduceScatter(flat, s.group, 0));
      grad = torch::Tensor();
    }
  });
}

void FullyShardedDataParallel::ZeroGradShards() {
  torch::NoGradGuard no_grad;
  for (Sharded& s : params_) s.grad_shard.zero_();
}

}  // namespace gptb::distributed
