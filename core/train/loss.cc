#include "core/train/loss.h"

#include "core/parallel/cross_entropy.h"

namespace gptb::train {

torch::Tensor MicroBatchLoss::Total() const {
  torch::Tensor total = lm;
  if (mtp.defined()) total = total + mtp;
  if (aux.defined()) total = total + aux.to(torch::kFloat32);
  return total;
}

torch::Tensor LanguageModelLoss(const torch::Tensor& logits, const torch::Tensor& labels,
                                const parallel::ProcessGroupPtr& tp) {
  torch::Tensor per_token = parallel::VocabParallelCrossEntropy(logits, labels, tp);
  return per_token.sum() / static_cast<double>(per_token.numel());
}

torch::Tensor RollLeft(const torch::Tensor& t) {
  torch::Tensor rolled = torch::roll(t, {-1}, {-1});
  rolled.select(-1, rolled.size(-1) - 1).zero_();
  return rolled;
}

MicroBatchLoss PostProcessForward(model::GptStage& stage, const distributed::Float16Module* f16,
                                  const torch::Tensor& input, const torch::Tensor& input_ids,
                                  const torch::Tensor& labels, const parallel::ProcessGroupPtr& tp,
                                  double mtp_loss_scaling_factor) {
  // Logits stay [s, b, V/tp] as the output layer makes them; the labels and masks are transposed
  // to match instead (a [b, s] copy, not one of the step's largest tensors).
  auto logits_of = [&](const torch::Tensor& hidden) {
    torch::Tensor logits = stage.SequenceFirstLogits(hidden);
    return f16 != nullptr ? f16->Output(logits) : logits;
  };
  auto sequence_first = [](const torch::Tensor& t) { return t.transpose(0, 1).contiguous(); };
  MicroBatchLoss loss;
  const torch::Tensor hidden = stage.Hidden(f16 != nullptr ? f16->Input(input) : input);
  loss.lm = LanguageModelLoss(logits_of(hidden), sequence_first(labels), tp);
  // The decoder layers' aux losses, read before MTP layers run their own MoE forward.
  loss.aux = stage.AuxLoss();

  const auto& mtp_layers = stage.mtp_layers();
  if (!mtp_layers.empty()) {
    const int64_t s = input_ids.size(1);
    torch::Tensor freqs;
    if (stage.rotary() != nullptr) freqs = stage.rotary()->Frequencies(s, hidden.device());
    torch::Tensor ids = input_ids;
    torch::Tensor mtp_labels = labels;
    torch::Tensor mask = torch::ones(labels.sizes(), torch::TensorOptions().dtype(torch::kFloat32));
    torch::Tensor h = hidden;
    torch::Tensor total;
    for (const auto& layer : mtp_layers) {
      ids = RollLeft(ids);
      mtp_labels = RollLeft(mtp_labels);
      mask = RollLeft(mask);
      torch::Tensor embedded = stage.embedding()->forward(ids);
      h = layer->forward(h, embedded, freqs, stage.rotary());
      torch::Tensor per_token =
          parallel::VocabParallelCrossEntropy(logits_of(h), sequence_first(mtp_labels), tp) *
          sequence_first(mask).to(h.device());
      torch::Tensor depth = per_token.sum() / mask.sum().clamp_min(1.0).item<double>();
      total = total.defined() ? total + depth : depth;
    }
    loss.mtp = total * (mtp_loss_scaling_factor / static_cast<double>(mtp_layers.size()));
  }
  return loss;
}

}  // namespace gptb::train
