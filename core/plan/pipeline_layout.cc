#include "core/plan/pipeline_layout.h"

#include <cstdint>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gptb::plan {
namespace {

using gptbuilder::v1::TransformerConfig;

// "8 or 12": the multiples of `divisor` around `value`, for messages.
std::string NearestMultiples(int64_t value, int64_t divisor) {
  const int64_t below = (value / divisor) * divisor;
  const int64_t above = below + divisor;
  if (below <= 0) return absl::StrCat(above);
  return absl::StrCat(below, " or ", above);
}

struct Split {
  int num_layers = 0;
  int offset = 0;
};

// Layers and offset without a layout string: even split, uneven first/last, or account_for_*.
// Mirrors get_num_layers_to_build and get_transformer_layer_offset. Create runs
// CheckPipelineSplit first, so every division here is exact; the one error left is a broken
// invariant, not a user error.
absl::StatusOr<Split> ComputeSplit(const TransformerConfig& t, int pp_rank, std::optional<int> vp) {
  const int p = t.pipeline_model_parallel_size();
  const int v = vp.has_value() ? t.virtual_pipeline_model_parallel_size() : 1;
  const int vs = vp.value_or(0);
  const bool first_pp = pp_rank == 0;
  const bool last_pp = pp_rank == p - 1;
  const bool first_vp = vs == 0;
  const bool last_vp = vs == v - 1;
  const int L = t.num_layers();
  Split split;
  if (p == 1) {
    split.num_layers = L;
    return split;
  }
  const bool uneven =
      t.has_num_layers_in_first_pipeline_stage() || t.has_num_layers_in_last_pipeline_stage();
  if (uneven) {
    const int F =
        t.has_num_layers_in_first_pipeline_stage() ? t.num_layers_in_first_pipeline_stage() : 0;
    const int Z =
        t.has_num_layers_in_last_pipeline_stage() ? t.num_layers_in_last_pipeline_stage() : 0;
    const int middle_stages = p - (t.has_num_layers_in_first_pipeline_stage() ? 1 : 0) -
                              (t.has_num_layers_in_last_pipeline_stage() ? 1 : 0);
    const int middle_layers = L - F - Z;
    int per_rank = middle_stages > 0 ? middle_layers / middle_stages : 0;
    if (first_pp && t.has_num_layers_in_first_pipeline_stage()) per_rank = F;
    if (last_pp && t.has_num_layers_in_last_pipeline_stage()) per_rank = Z;
    split.num_layers = per_rank / v;
    const int middle_rank = t.has_num_layers_in_first_pipeline_stage() ? pp_rank - 1 : pp_rank;
    if (vp.has_value()) {
      const int f1 = F / v, z1 = Z / v, mid1 = middle_layers / v;
      const int total = f1 + mid1 + z1;
      split.offset =
          first_pp ? vs * total
                   : vs * total + f1 + middle_rank * (middle_stages > 0 ? mid1 / middle_stages : 0);
    } else {
      split.offset =
          first_pp ? 0 : middle_rank * (middle_stages > 0 ? middle_layers / middle_stages : 0) + F;
    }
    return split;
  }
  const int total = L + (t.account_for_embedding_in_pipeline_split() ? 1 : 0) +
                    (t.account_for_loss_in_pipeline_split() ? 1 : 0);
  const int per_rank = total / p;
  split.num_layers = per_rank / v;
  if (vp.has_value()) {
    split.offset = vs * (total / v) + pp_rank * (per_rank / v);
  } else {
    split.offset = pp_rank * per_rank;
  }
  if (t.account_for_embedding_in_pipeline_split()) {
    if (first_vp && first_pp) {
      split.num_layers -= 1;
    } else {
      split.offset -= 1;
    }
  }
  if (t.account_for_loss_in_pipeline_split() && last_vp && last_pp) split.num_layers -= 1;
  if (split.num_layers < 0) {
    return absl::InternalError("the embedding/loss pipeline slots left a chunk without layers");
  }
  return split;
}

}  // namespace

std::optional<PipelineLayoutString> CheckLayoutString(const TransformerConfig& t,
                                                      std::vector<PipelineSplitProblem>* problems) {
  if (!t.has_pipeline_model_parallel_layout() || t.pipeline_model_parallel_size() <= 0) {
    return std::nullopt;
  }
  if (absl::StripAsciiWhitespace(t.pipeline_model_parallel_layout()).empty()) return std::nullopt;
  absl::StatusOr<PipelineLayoutString> layout =
      ParsePipelineLayout(t.pipeline_model_parallel_layout(), t.pipeline_model_parallel_size());
  if (!layout.ok()) {
    problems->push_back(
        {"pipeline_model_parallel_layout", "INVALID_LAYOUT",
         absl::StrCat(
             layout.status().message(),
             " (a layout is stages of E, t, m, L separated by '|', e.g. \"Et*3|t*4|t*4,L\").")});
    return std::nullopt;
  }
  for (const std::string& problem : ValidatePipelineLayout(
           *layout, t.num_layers(),
           t.has_mtp_num_layers() ? std::optional<int>(t.mtp_num_layers()) : std::nullopt)) {
    problems->push_back(
        {"pipeline_model_parallel_layout", "INVALID_LAYOUT", absl::StrCat(problem, ".")});
  }
  return *std::move(layout);
}

std::vector<PipelineSplitProblem> CheckPipelineSplit(const TransformerConfig& t) {
  std::vector<PipelineSplitProblem> problems;
  auto add = [&problems](std::string field, std::string reason, std::string message) {
    problems.push_back({std::move(field), std::move(reason), std::move(message)});
  };
  const int64_t layers = t.num_layers();
  const int64_t pp = t.pipeline_model_parallel_size();
  if (layers <= 0 || pp <= 0) return problems;
  // A non-positive vp is reported by Finalize's NOT_POSITIVE and ignored here.
  std::optional<int64_t> vp;
  if (t.has_virtual_pipeline_model_parallel_size() &&
      t.virtual_pipeline_model_parallel_size() > 0) {
    vp = t.virtual_pipeline_model_parallel_size();
  }
  const bool has_first = t.has_num_layers_in_first_pipeline_stage();
  const bool has_last = t.has_num_layers_in_last_pipeline_stage();
  const bool account =
      t.account_for_embedding_in_pipeline_split() || t.account_for_loss_in_pipeline_split();
  const bool has_layout = t.has_pipeline_model_parallel_layout();
  if (has_layout) {
    // CheckLayoutString decides.
  } else if (has_first || has_last) {
    // Uneven PP (Megatron's arithmetic, same order and conditions).
    int64_t remaining = layers;
    int64_t middle_stages = pp;
    bool stage_sizes_ok = true;
    if (has_first && has_last && pp < 2) {
      // (ours) Megatron's arithmetic goes negative here and accepts nonsense.
      add("num_layers_in_first_pipeline_stage", "PIPELINE_SPLIT_MISMATCH",
          "num_layers_in_first_pipeline_stage and num_layers_in_last_pipeline_stage together "
          "need pipeline_model_parallel_size >= 2.");
      stage_sizes_ok = false;
    }
    const std::tuple<const char*, bool, int64_t> stages[] = {
        {"num_layers_in_first_pipeline_stage", has_first, t.num_layers_in_first_pipeline_stage()},
        {"num_layers_in_last_pipeline_stage", has_last, t.num_layers_in_last_pipeline_stage()}};
    for (const auto& [name, has, value] : stages) {
      if (!has) continue;
      if (value <= 0) {
        add(name, "NOT_POSITIVE", absl::StrCat(name, " must be larger than 0, got ", value, "."));
        stage_sizes_ok = false;
        continue;
      }
      if (vp.has_value() && value % *vp != 0) {
        add(name, "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
            absl::StrCat(name, " (", value,
                         ") must be divisible by "
                         "virtual_pipeline_model_parallel_size (",
                         *vp, "), e.g. ", NearestMultiples(value, *vp), "."));
      }
      remaining -= value;
      middle_stages -= 1;
    }
    if (!stage_sizes_ok) {
      // The remaining arithmetic would only restate the problems above.
    } else if ((remaining != 0) != (middle_stages != 0)) {
      add("num_layers", "PIPELINE_SPLIT_MISMATCH",
          absl::StrCat("Mismatch: ", remaining, " middle layers remaining but ", middle_stages,
                       " middle PP stages available; with pipeline_model_parallel_size ", pp,
                       " the first/last stage sizes must leave ",
                       middle_stages == 0 ? "no layers (they must add up to num_layers)"
                                          : "at least one layer per middle stage",
                       "."));
    } else if (middle_stages > 0 && remaining % middle_stages != 0) {
      add("num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE",
          absl::StrCat("number of layers at middle stage: ", remaining,
                       " must be divisible by the middle pipeline model parallel size ",
                       middle_stages, "; adjust num_layers or the first/last stage sizes."));
    } else if (middle_stages > 0 && vp.has_value() && (remaining / middle_stages) % *vp != 0) {
      add("num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
          absl::StrCat("number of layers on each middle pipeline rank: ", remaining / middle_stages,
                       " must be divisible by virtual pipeline parallel degree ", *vp, "."));
    }
  } else if (account) {
    // account_for_* (Megatron): embedding and loss count as one layer slot each.
    const int64_t slots = layers + (t.account_for_embedding_in_pipeline_split() ? 1 : 0) +
                          (t.account_for_loss_in_pipeline_split() ? 1 : 0);
    if (slots % pp != 0) {
      add("num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE",
          absl::StrCat("num_layers (", layers, ") plus the embedding/loss slots (", slots,
                       " in all) must be divisible by pipeline_model_parallel_size (", pp,
                       "), e.g. num_layers ", NearestMultiples(slots, pp), " minus ",
                       slots - layers, "."));
    } else if (vp.has_value() && (slots / pp) % *vp != 0) {
      add("num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
          absl::StrCat("number of layers on each pipeline rank: ", slots / pp,
                       " (after account_for_embedding_in_pipeline_split or "
                       "account_for_loss_in_pipeline_split) must be divisible by "
                       "virtual_pipeline_model_parallel_size ",
                       *vp, "."));
    }
  } else if (layers % pp != 0) {
    // PIPELINE_SPLIT_UNEVEN (ours; Megatron asserts when a stage is built).
    add("num_layers", "PIPELINE_SPLIT_UNEVEN",
        absl::StrCat("num_layers (", layers,
                     ") must be divisible by "
                     "pipeline_model_parallel_size (",
                     pp, "), e.g. ", NearestMultiples(layers, pp),
                     "; or set num_layers_in_first/last_pipeline_stage, "
                     "account_for_embedding/loss_in_pipeline_split or a "
                     "pipeline_model_parallel_layout."));
  }
  // VP_CHUNKS_UNEVEN (Bridge finalize step 3, with Python `or` semantics: first=0, last=None is
  // not asymmetric; first=None, last=0 is).
  const bool first_or_last_set =
      (has_first && t.num_layers_in_first_pipeline_stage() != 0) || has_last;
  const bool flexible = account || first_or_last_set || has_layout;
  if (vp.has_value() && !flexible && (layers / pp) % *vp != 0) {
    add("virtual_pipeline_model_parallel_size", "VP_CHUNKS_UNEVEN",
        absl::StrCat("Make sure the number of model chunks is the same across all pipeline "
                     "stages. (num_layers // pipeline_model_parallel_size = ",
                     layers / pp, " is not divisible by virtual_pipeline_model_parallel_size ", *vp,
                     "; use num_layers a multiple of ", pp * *vp, ".)"));
  }
  return problems;
}

std::vector<int> ChunkLayout::LayerIds() const {
  std::vector<int> ids(num_layers);
  for (int i = 0; i < num_layers; ++i) ids[i] = layer_offset + i;
  return ids;
}

absl::StatusOr<PipelineLayout> PipelineLayout::Create(const TransformerConfig& t) {
  PipelineLayout layout;
  const int p = t.pipeline_model_parallel_size();
  layout.pp_ = p;
  if (p <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("transformer.pipeline_model_parallel_size must be >= 1, got ", p));
  }
  std::vector<PipelineSplitProblem> problems;
  std::optional<PipelineLayoutString> parsed = CheckLayoutString(t, &problems);
  if (t.has_pipeline_model_parallel_layout() && !parsed.has_value() && problems.empty()) {
    return absl::InvalidArgumentError(
        "transformer.pipeline_model_parallel_layout: must not be empty");
  }
  if (!t.has_pipeline_model_parallel_layout()) problems = CheckPipelineSplit(t);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrJoin(problems, "; ", [](std::string* out, const PipelineSplitProblem& problem) {
          absl::StrAppend(out, "transformer.", problem.field, ": ", problem.message);
        }));
  }
  int v = 1;
  if (parsed.has_value()) {
    v = parsed->virtual_pipeline_model_parallel_size;
    layout.virtual_ = p > 1 && (v > 1 || t.has_virtual_pipeline_model_parallel_size());
  } else if (p > 1 && t.has_virtual_pipeline_model_parallel_size()) {
    v = t.virtual_pipeline_model_parallel_size();
    layout.virtual_ = true;
  }
  if (v <= 0) return absl::InvalidArgumentError("virtual pipeline size must be positive");
  layout.chunks_per_rank_ = v;
  const int mtp_layers = t.has_mtp_num_layers() ? t.mtp_num_layers() : 0;
  for (int pp_rank = 0; pp_rank < p; ++pp_rank) {
    for (int c = 0; c < v; ++c) {
      ChunkLayout chunk;
      chunk.pp_rank = pp_rank;
      chunk.chunk_index = c;
      if (layout.virtual_) chunk.vp_stage = c;
      chunk.pre_process = pp_rank == 0 && c == 0;
      chunk.post_process = pp_rank == p - 1 && c == v - 1;
      if (parsed.has_value()) {
        chunk.num_layers = parsed->Count('t', pp_rank, c);
        chunk.layer_offset = parsed->Offset('t', pp_rank, c);
        chunk.num_mtp_layers = parsed->Count('m', pp_rank, c);
        chunk.mtp_offset = parsed->Offset('m', pp_rank, c);
        if (p == 1) chunk.mtp_offset = 0;
      } else {
        absl::StatusOr<Split> split = ComputeSplit(t, pp_rank, chunk.vp_stage);
        if (!split.ok()) return split.status();
        chunk.num_layers = split->num_layers;
        chunk.layer_offset = split->offset;
        chunk.num_mtp_layers = chunk.post_process ? mtp_layers : 0;
        chunk.mtp_offset = 0;
      }
      if (t.has_mtp_num_layers()) {
        chunk.has_final_layernorm =
            chunk.num_layers > 0 && chunk.layer_offset + chunk.num_layers == t.num_layers();
      } else {
        chunk.has_final_layernorm = chunk.post_process;
      }
      layout.chunks_.push_back(chunk);
    }
  }
  return layout;
}

}  // namespace gptb::plan
