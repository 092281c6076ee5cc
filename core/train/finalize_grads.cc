#include "core/train/finalize_grads.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"
#include "core/train/router_expert_bias.h"

namespace gptb::train {

using plan::GroupKind;

bool IsEmbeddingCopy(const model::GptStage& stage, const plan::ParamInfo& info) {
  return info.shared_embedding || (!stage.pre_process() && info.name.rfind("embedding.", 0) == 0);
}

namespace {

// _allreduce_non_tensor_model_parallel_grads: one coalesced SUM over the tp group of every
// chunk's partial gradients (fp32 on the wire whatever the buffers' dtype).
absl::Status SumPartialGradsOverTp(model::RankModel& model) {
  const parallel::ProcessGroupCollection* groups = model.groups();
  if (groups == nullptr || !groups->has(GroupKind::kTp) || groups->size(GroupKind::kTp) <= 1) {
    return absl::OkStatus();
  }
  std::vector<torch::Tensor> grads;
  const auto& stages = model.stages();
  for (size_t c = 0; c < stages.size(); ++c) {
    for (const plan::ParamInfo& info : stages[c]->plan().params) {
      if (!info.sum_grad_over_tp) continue;
      torch::Tensor grad = model.ddp(static_cast<int>(c))->main_grad(info.name);
      if (grad.defined()) grads.push_back(grad);  // undefined: frozen (requires_grad false)
    }
  }
  if (grads.empty()) return absl::OkStatus();
  return parallel::CallTorch(
      "all-reducing the partial gradients of replicated parameters over the tensor-parallel "
      "group",
      [&] {
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> flat;
        flat.reserve(grads.size());
        for (const torch::Tensor& g : grads) flat.push_back(g.reshape({-1}).to(torch::kFloat32));
        torch::Tensor coalesced = torch::cat(flat);
        parallel::AllReduceInPlace(coalesced, groups->group(GroupKind::kTp));
        int64_t offset = 0;
        for (torch::Tensor& g : grads) {
          g.copy_(coalesced.narrow(0, offset, g.numel()).view(g.sizes()));
          offset += g.numel();
        }
      });
}

// _allreduce_word_embedding_grads (and the position embeddings' copies); see FinalizeGrads.
absl::Status SumEmbeddingGrads(model::RankModel& model) {
  const auto& stages = model.stages();
  const parallel::ProcessGroupCollection* groups = model.groups();
  const auto& config = model.plan().config();
  const bool mtp =
      config.transformer().has_mtp_num_layers() && config.transformer().mtp_num_layers() > 0;
  if (groups == nullptr || !(config.share_embeddings_and_output_weights() || mtp) ||
      !groups->has(GroupKind::kEmbd) || groups->size(GroupKind::kEmbd) < 2 ||
      groups->size(GroupKind::kPp) < 2) {
    return absl::OkStatus();
  }
  // Both sides list the tensors from the config alone, in the same order.
  std::vector<std::string> canonical = {"embedding.word_embeddings.weight"};
  if (mtp && config.position_embedding_type() == "learned_absolute") {
    canonical.push_back("embedding.position_embeddings.weight");
  }
  // The originals on the first pipeline rank's first chunk, the copies on the last rank's last.
  const int pp_rank = groups->rank(GroupKind::kPp);
  const int chunk = pp_rank == 0 ? 0 : static_cast<int>(stages.size()) - 1;
  std::vector<std::vector<torch::Tensor>> grads(canonical.size());
  for (const plan::ParamInfo& info : stages[chunk]->plan().params) {
    for (size_t k = 0; k < canonical.size(); ++k) {
      if (info.canonical_name != canonical[k]) continue;
      torch::Tensor grad = model.ddp(chunk)->main_grad(info.name);
      if (!grad.defined()) return absl::InternalError(absl::StrCat("no main_grad for ", info.name));
      grads[k].push_back(grad);
    }
  }
  for (size_t k = 0; k < canonical.size(); ++k) {
    if (grads[k].empty()) {
      return absl::InternalError(absl::StrCat("pipeline rank ", pp_rank,
                                              " is in the embedding group but holds no copy of ",
                                              canonical[k]));
    }
  }
  return parallel::CallTorch("all-reducing the word-embedding gradients over the embedding group",
                             [&] {
                               torch::NoGradGuard no_grad;
                               for (std::vector<torch::Tensor>& copies : grads) {
                                 torch::Tensor sum = copies[0];
                                 if (copies.size() > 1) {
                                   sum = copies[0].clone();
                                   for (size_t i = 1; i < copies.size(); ++i) sum.add_(copies[i]);
                                 }
                                 parallel::AllReduceInPlace(sum, groups->group(GroupKind::kEmbd));
                                 for (torch::Tensor& copy : copies) {
                                   if (!copy.is_same(sum)) copy.copy_(sum);
                                 }
                               }
                             });
}

}  // namespace

absl::Status FinalizeGrads(model::RankModel& model) {
  const auto& stages = model.stages();
  for (size_t c = 0; c < stages.size(); ++c) {
    distributed::DistributedDataParallel* ddp = model.ddp(static_cast<int>(c));
    if (ddp == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("chunk ", c, " has no DistributedDataParallel wrapper"));
    }
    if (absl::Status s = ddp->FinishGradSync(); !s.ok()) return s;
  }
  if (absl::Status s = SumPartialGradsOverTp(model); !s.ok()) return s;
  if (absl::Status s = SumEmbeddingGrads(model); !s.ok()) return s;
  return UpdateRouterExpertBias(model);
}

}  // namespace gptb::train
