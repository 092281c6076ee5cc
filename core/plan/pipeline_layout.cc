#include "core/plan/pipeline_layout.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/pipeline_layout_string.h"

namespace gptb::plan {
namespace {

using gptbuilder::v1::TransformerConfig;

struct Split {
  int num_layers = 0;
  int offset = 0;
};

// Layers and offset without a layout string: even split, uneven first/last, or account_for_*.
// Mirrors get_num_layers_to_build and get_transformer_layer_offset; the arithmetic was checked
// by Finalize, and what remains inconsistent is reported here.
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
    if (middle_stages > 0 && middle_layers % middle_stages != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("with uneven pipeline stages the ", middle_layers,
                       " remaining layers must divide over the ", middle_stages, " middle stages"));
    }
    int per_rank = middle_stages > 0 ? middle_layers / middle_stages : 0;
    if (first_pp && t.has_num_layers_in_first_pipeline_stage()) per_rank = F;
    if (last_pp && t.has_num_layers_in_last_pipeline_stage()) per_rank = Z;
    if (per_rank % v != 0) {
      return absl::InvalidArgumentError(absl::StrCat("pp rank ", pp_rank, " holds ", per_rank,
                                                     " layers, not divisible by the ", v,
                                                     " virtual stages"));
    }
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
  int total = L + (t.account_for_embedding_in_pipeline_split() ? 1 : 0) +
              (t.account_for_loss_in_pipeline_split() ? 1 : 0);
  if (total % p != 0) {
    return absl::InvalidArgumentError(absl::StrCat(total,
                                                   " layers (including embedding/loss "
                                                   "slots) do not divide over ",
                                                   p, " pipeline stages"));
  }
  const int per_rank = total / p;
  if (per_rank % v != 0) {
    return absl::InvalidArgumentError(absl::StrCat(per_rank,
                                                   " layers per pipeline rank do not "
                                                   "divide over ",
                                                   v, " virtual stages"));
  }
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
    return absl::InvalidArgumentError("not enough layers for the embedding/loss pipeline slots");
  }
  return split;
}

}  // namespace

std::vector<int> ChunkLayout::LayerIds() const {
  std::vector<int> ids(num_layers);
  for (int i = 0; i < num_layers; ++i) ids[i] = layer_offset + i;
  return ids;
}

absl::StatusOr<PipelineLayout> PipelineLayout::Create(const TransformerConfig& t) {
  PipelineLayout layout;
  const int p = t.pipeline_model_parallel_size();
  layout.pp_ = p;
  std::optional<config::PipelineLayoutString> parsed;
  if (t.has_pipeline_model_parallel_layout()) {
    absl::StatusOr<config::PipelineLayoutString> s =
        config::ParsePipelineLayout(t.pipeline_model_parallel_layout(), p);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("transformer.pipeline_model_parallel_layout: ", s.status().message()));
    }
    std::vector<std::string> errors = config::ValidatePipelineLayout(
        *s, t.num_layers(),
        t.has_mtp_num_layers() ? std::optional<int>(t.mtp_num_layers()) : std::nullopt);
    if (!errors.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("transformer.pipeline_model_parallel_layout: ",
                                                     absl::StrJoin(errors, "; ")));
    }
    parsed = *std::move(s);
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
