#include "core/train/router_expert_bias.h"

#include <vector>

#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"

namespace gptb::train {

absl::Status UpdateRouterExpertBias(model::RankModel& model) {
  const auto& t = model.plan().config().transformer();
  if (!t.moe_router_enable_expert_bias()) return absl::OkStatus();
  std::vector<model::MoeLayer*> routers;
  for (const auto& stage : model.stages()) {
    for (model::MoeLayer* moe : stage->MoeLayers()) routers.push_back(moe);
  }
  if (routers.empty()) return absl::OkStatus();  // a chunk of dense layers only
  const parallel::ProcessGroupCollection* groups = model.groups();
  return parallel::CallTorch("updating the MoE routers' expert_bias", [&] {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> counts;
    counts.reserve(routers.size());
    for (model::MoeLayer* moe : routers) counts.push_back(moe->tokens_per_expert());
    torch::Tensor stacked = torch::stack(counts);
    if (groups != nullptr && groups->has(plan::GroupKind::kTpDpCp) &&
        groups->size(plan::GroupKind::kTpDpCp) > 1) {
      parallel::AllReduceInPlace(stacked, groups->group(plan::GroupKind::kTpDpCp));
    }
    for (size_t i = 0; i < routers.size(); ++i) {
      routers[i]->UpdateExpertBias(stacked[static_cast<int64_t>(i)],
                                   t.moe_router_bias_update_rate());
      routers[i]->tokens_per_expert().zero_();
    }
  });
}

}  // namespace gptb::train
