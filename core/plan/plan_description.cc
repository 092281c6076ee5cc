#include "core/plan/plan_description.h"

#include <algorithm>
#include <vector>

namespace gptb::plan {

gptbuilder::v1::StageDescription DescribeStage(const StagePlan& stage) {
  gptbuilder::v1::StageDescription out;
  out.set_tp_rank(stage.tp_rank);
  out.set_pp_rank(stage.pp_rank);
  out.set_ep_rank(stage.ep_rank);
  out.set_etp_rank(stage.etp_rank);
  if (stage.vp_stage.has_value()) out.set_vp_stage(*stage.vp_stage);
  out.set_pre_process(stage.pre_process);
  out.set_post_process(stage.post_process);
  out.mutable_layers()->Add(stage.layers.begin(), stage.layers.end());
  out.mutable_mtp_layers()->Add(stage.mtp_layers.begin(), stage.mtp_layers.end());
  out.set_layer_spec(stage.layer_spec);
  for (const ParamInfo& p : stage.params) {
    gptbuilder::v1::ParameterDescription* param = out.add_params();
    param->set_name(p.name);
    param->mutable_shape()->Add(p.shape.begin(), p.shape.end());
    param->set_dtype(DTypeName(p.dtype));
  }
  for (const ParamInfo& p : stage.buffers) {
    gptbuilder::v1::ParameterDescription* buffer = out.add_buffers();
    buffer->set_name(p.name);
    buffer->mutable_shape()->Add(p.shape.begin(), p.shape.end());
    buffer->set_dtype(DTypeName(p.dtype));
  }
  out.set_num_params(stage.num_params);
  out.set_param_bytes(stage.param_bytes);
  return out;
}

gptbuilder::v1::PlanDescription DescribePlan(const ModelPlan& plan,
                                             const DescribeOptions& options) {
  gptbuilder::v1::PlanDescription out;
  const RankTopology& topo = plan.topology();
  out.set_world_size(plan.world_size());
  out.set_padded_vocab_size(plan.padded_vocab_size());
  out.set_total_params(plan.TotalParameters());
  gptbuilder::v1::ParallelLayout* parallel = out.mutable_parallel();
  parallel->set_tp(topo.tp());
  parallel->set_pp(topo.pp());
  if (plan.layout().virtual_pipeline()) parallel->set_vp(plan.layout().num_chunks());
  parallel->set_cp(topo.cp());
  parallel->set_ep(topo.ep());
  parallel->set_etp(topo.etp());
  parallel->set_dp(topo.dp());
  parallel->set_expert_dp(topo.edp());
  parallel->set_order(topo.order());
  for (const StagePlan& stage : plan.stages()) *out.add_stages() = DescribeStage(stage);
  // group_of[kind][rank]: the index of the rank's group of that kind, -1 for none.
  std::vector<std::vector<int>> group_of;
  for (GroupKind kind : kAllGroupKinds) {
    std::vector<int> index(plan.world_size(), -1);
    const std::vector<std::vector<int>> all = topo.AllGroups(kind);
    gptbuilder::v1::ProcessGroupList* list =
        options.process_groups ? &(*out.mutable_process_groups())[GroupName(kind)] : nullptr;
    for (size_t g = 0; g < all.size(); ++g) {
      for (int member : all[g]) index[member] = static_cast<int>(g);
      if (list != nullptr) list->add_groups()->mutable_ranks()->Add(all[g].begin(), all[g].end());
    }
    group_of.push_back(std::move(index));
  }
  const int first = std::clamp(options.first_rank, 0, plan.world_size());
  const int end = options.num_ranks < 0
                      ? plan.world_size()
                      : first + std::min(options.num_ranks, plan.world_size() - first);
  for (int r = first; r < end; ++r) {
    const RankPlan rank = plan.Rank(r);
    gptbuilder::v1::RankPlanDescription* rp = out.add_ranks();
    rp->set_rank(r);
    rp->set_tp_rank(rank.coords.tp);
    rp->set_pp_rank(rank.coords.pp);
    rp->set_dp_rank(rank.coords.dp);
    rp->set_cp_rank(rank.coords.cp);
    rp->set_ep_rank(rank.coords.ep);
    rp->set_etp_rank(rank.coords.etp);
    rp->set_expert_dp_rank(rank.coords.edp);
    rp->mutable_stages()->Add(rank.stages.begin(), rank.stages.end());
    rp->set_num_params(rank.memory.num_params);
    rp->set_param_bytes(rank.memory.param_bytes);
    rp->set_grad_bytes(rank.memory.grad_bytes);
    rp->set_optimizer_bytes(rank.memory.optimizer_bytes);
    for (size_t k = 0; k < kAllGroupKinds.size(); ++k) {
      if (group_of[k][r] >= 0)
        (*rp->mutable_groups())[GroupName(kAllGroupKinds[k])] = group_of[k][r];
    }
  }
  return out;
}

}  // namespace gptb::plan
