#include "core/train/step_memory.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gptb::train {
namespace {

constexpr double kMax = static_cast<double>(std::numeric_limits<int64_t>::max());

// Estimates are computed in double (sizes multiply past 2^63 for absurd requests) and
// saturate.
int64_t Saturate(double bytes) {
  if (!(bytes >= 0)) return 0;
  return bytes >= kMax ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bytes);
}

std::string Gib(int64_t bytes) {
  return absl::StrFormat("%.2f GiB", static_cast<double>(bytes) / (1 << 30));
}

}  // namespace

int64_t StepMemory::total() const {
  return Saturate(static_cast<double>(model_state) + static_cast<double>(activations) +
                  static_cast<double>(logits) + static_cast<double>(token_ids));
}

StepMemory EstimateStepMemory(const plan::ModelPlan& plan, int rank,
                              const gptbuilder::v1::TrainOptions& options, int64_t seq_length) {
  const auto& t = plan.config().transformer();
  const plan::RankPlan r = plan.Rank(rank);
  StepMemory out;
  out.model_state = r.memory.total_bytes();

  const double s = static_cast<double>(seq_length);
  const double b = std::max<double>(options.micro_batch_size(), 1);
  const double num_mb = std::max<double>(options.num_micro_batches(), 1);
  const double tp = std::max(1, plan.topology().tp());
  const double h = t.hidden_size();
  const double a = t.num_attention_heads();
  const double width = static_cast<double>(DTypeSize(plan.dtype()));
  const double gated = t.gated_linear_unit() ? 2 : 1;
  double f = static_cast<double>(t.ffn_hidden_size()) * gated;
  if (t.has_num_moe_experts() && t.num_moe_experts() > 0) {
    const double moe = static_cast<double>(t.has_moe_ffn_hidden_size() ? t.moe_ffn_hidden_size()
                                                                       : t.ffn_hidden_size()) *
                       gated * std::max(1, t.moe_router_topk());
    f = std::max(f, moe);
  }
  const double per_layer = s * b * (h * (10 + 8 / tp) + 4 * f / tp + 5 * a * s / tp) * width / 2;

  // Micro-batches (in chunk units) a pipeline rank holds activations of at once.
  const double pp = plan.topology().pp();
  const double pp_rank = r.coords.pp;
  const double chunks = static_cast<double>(r.stages.size());
  double in_flight = 0;
  if (chunks <= 1) {
    in_flight = std::min(num_mb, pp - pp_rank);
  } else {
    in_flight = std::min(num_mb * chunks, 2 * (pp - pp_rank - 1) + (chunks - 1) * pp + 1);
  }
  size_t layers = 0;
  bool loss_stage = false;
  for (int index : r.stages) {
    const plan::StagePlan& stage = plan.stages()[index];
    layers = std::max(layers, stage.layers.size() + stage.mtp_layers.size());
    loss_stage |= stage.post_process;
  }
  out.in_flight_micro_batches = Saturate(in_flight);
  out.activations = Saturate(per_layer * static_cast<double>(layers) * in_flight);
  if (loss_stage) {
    out.logits = Saturate(3 * s * b * static_cast<double>(plan.padded_vocab_size()) / tp * 4);
  }
  const double dp = plan.topology().dp();
  out.token_ids = Saturate((dp * num_mb * b * (s + 1) + 2 * num_mb * b * s) * 8);
  return out;
}

absl::Status CheckStepMemory(const plan::ModelPlan& plan, const std::vector<int64_t>& budgets,
                             const gptbuilder::v1::TrainOptions& options, int64_t seq_length) {
  for (int rank = 0; rank < plan.world_size() && rank < static_cast<int>(budgets.size()); ++rank) {
    if (budgets[rank] <= 0) continue;
    const StepMemory need = EstimateStepMemory(plan, rank, options, seq_length);
    if (need.total() <= budgets[rank]) continue;
    return absl::ResourceExhaustedError(absl::StrCat(
        "a step of micro_batch_size ", options.micro_batch_size(), " x num_micro_batches ",
        options.num_micro_batches(), " at seq_length ", seq_length, " needs about ",
        Gib(need.total()), " on rank ", rank, " (model state ", Gib(need.model_state),
        ", activations of ", need.in_flight_micro_batches, " micro-batches in flight ",
        Gib(need.activations), ", logits ", Gib(need.logits), ", token ids ", Gib(need.token_ids),
        "), more than its slot's budget of ", Gib(budgets[rank]),
        "; lower micro_batch_size (activations grow with it) or num_micro_batches (token ids "
        "grow with it), or build on larger slots"));
  }
  return absl::OkStatus();
}

}  // namespace gptb::train
