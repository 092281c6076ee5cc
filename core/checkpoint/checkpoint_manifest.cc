#include "core/checkpoint/checkpoint_manifest.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <functional>
#include <tuple>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/config/config_emitter.h"
#include "core/config/config_loader.h"
#include "core/config/violations.h"
#include "google/protobuf/text_format.h"

namespace gptb::checkpoint {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using gptbuilder::v1::GPTModelConfig;

// ---- layout-independent order ----------------------------------------------------------------

// (section, index) of a canonical name: embedding 0, decoder layer 1 (global index), final norm
// 2, MTP layer 3 (global index), output layer 4, anything else 5.
std::pair<int, int64_t> Section(std::string_view name) {
  auto indexed = [&](std::string_view prefix) -> std::optional<int64_t> {
    if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
    std::string_view rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    int64_t index = 0;
    const std::string_view digits = rest.substr(0, dot);
    if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &index)) {
      return std::nullopt;
    }
    return index;
  };
  if (name.substr(0, 10) == "embedding.") return {0, 0};
  if (auto i = indexed("decoder.layers.")) return {1, *i};
  if (name.substr(0, 24) == "decoder.final_layernorm.") return {2, 0};
  if (auto i = indexed("mtp.layers.")) return {3, *i};
  if (name.substr(0, 13) == "output_layer.") return {4, 0};
  return {5, 0};
}

// "a.10.b" after "a.9.b": runs of digits compare as numbers.
bool NaturalLess(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      std::string_view na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

bool CanonicalLess(const CanonicalTensor& a, const CanonicalTensor& b) {
  const auto sa = Section(a.name), sb = Section(b.name);
  if (sa != sb) return sa < sb;
  return NaturalLess(a.name, b.name);
}

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// The identity of a slice of a canonical tensor: its name and the pieces along partition_dim.
std::string SliceKey(const plan::ParamInfo& p) {
  std::string key = absl::StrCat(p.canonical_name, "|", p.partition_dim);
  for (const plan::Piece& piece : p.pieces)
    absl::StrAppend(&key, ":", piece.start, "+", piece.length);
  return key;
}

int64_t SliceNumel(const plan::ParamInfo& p) {
  if (p.partition_dim < 0) return Numel(p.canonical_shape);
  int64_t rows = 0;
  for (const plan::Piece& piece : p.pieces) rows += piece.length;
  return Numel(p.canonical_shape) / std::max<int64_t>(1, p.canonical_shape[p.partition_dim]) * rows;
}

// ---- config comparison -----------------------------------------------------------------------

// A field's value as text: repeated fields as [a, b], unset fields without a schema default as
// "unset" (Megatron's None).
std::string FieldText(const Message& message, const FieldDescriptor* field) {
  const auto* reflection = message.GetReflection();
  if (field->is_repeated()) {
    std::vector<std::string> items;
    for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
      std::string item;
      google::protobuf::TextFormat::PrintFieldValueToString(message, field, i, &item);
      items.push_back(std::move(item));
    }
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  if (!reflection->HasField(message, field) && !field->has_default_value()) return "unset";
  std::string text;
  google::protobuf::TextFormat::PrintFieldValueToString(message, field, -1, &text);
  return text;
}

// Resolves "transformer.num_layers" to the sub-message and field.
std::pair<const Message*, const FieldDescriptor*> Resolve(const Message& root,
                                                          std::string_view path) {
  const Message* message = &root;
  std::vector<std::string> parts = absl::StrSplit(absl::string_view(path.data(), path.size()), '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) return {nullptr, nullptr};
    if (i + 1 == parts.size()) return {message, field};
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return {nullptr, nullptr};
    }
    message = &message->GetReflection()->GetMessage(*message, field);
  }
  return {nullptr, nullptr};
}

// Fields that change the tensors (their shapes or which exist).
constexpr const char* kShapeFields[] = {
    "vocab_size",
    "position_embedding_type",
    "share_embeddings_and_output_weights",
    "transformer.num_layers",
    "transformer.hidden_size",
    "transformer.num_attention_heads",
    "transformer.num_query_groups",
    "transformer.kv_channels",
    "transformer.ffn_hidden_size",
    "transformer.normalization",
    "transformer.gated_linear_unit",
    "transformer.add_bias_linear",
    "transformer.add_qkv_bias",
    "transformer.qk_layernorm",
    "transformer.attention_output_gate",
    "transformer.softmax_type",
    "transformer.multi_latent_attention",
    "transformer.q_lora_rank",
    "transformer.kv_lora_rank",
    "transformer.qk_head_dim",
    "transformer.qk_pos_emb_head_dim",
    "transformer.v_head_dim",
    "transformer.mtp_num_layers",
    "transformer.num_moe_experts",
};
// MoE shape fields, compared only for MoE models.
constexpr const char* kMoeShapeFields[] = {
    "transformer.moe_layer_freq",
    "transformer.moe_ffn_hidden_size",
    "transformer.moe_shared_expert_intermediate_size",
    "transformer.moe_shared_expert_gate",
    "transformer.moe_router_enable_expert_bias",
};
// Fields that change what the same weights compute.
constexpr const char* kNumericFields[] = {
    "transformer.layernorm_epsilon", "transformer.layernorm_zero_centered_gamma",
    "transformer.activation_func",   "transformer.glu_linear_offset",
    "transformer.softmax_scale",     "transformer.qk_l2_norm",
    "transformer.window_size",       "transformer.window_attn_skip_freq",
};
constexpr const char* kRopeFields[] = {
    "rotary_percent",
    "rotary_base",
    "rope_scaling",
    "seq_len_interpolation_factor",
    "transformer.rotary_interleaved",
};
constexpr const char* kMoeNumericFields[] = {
    "transformer.moe_router_topk",        "transformer.moe_router_score_function",
    "transformer.moe_router_pre_softmax", "transformer.moe_router_topk_scaling_factor",
    "transformer.moe_router_num_groups",  "transformer.moe_router_group_topk",
};

}  // namespace

const char* CheckpointFormatName(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kAuto:
      return "auto";
    case CheckpointFormat::kCanonical:
      return "canonical";
    case CheckpointFormat::kHuggingFace:
      return "huggingface";
  }
  return "?";
}

std::optional<CheckpointFormat> ParseCheckpointFormat(std::string_view name) {
  if (name == "auto" || name.empty()) return CheckpointFormat::kAuto;
  if (name == "canonical") return CheckpointFormat::kCanonical;
  if (name == "huggingface" || name == "hf") return CheckpointFormat::kHuggingFace;
  return std::nullopt;
}

bool IsVocabTensor(std::string_view canonical_name) {
  return canonical_name == "embedding.word_embeddings.weight" ||
         canonical_name == "output_layer.weight";
}

absl::StatusOr<std::vector<CanonicalTensor>> CanonicalTensors(const plan::ModelPlan& plan) {
  std::unordered_map<std::string, size_t> index;
  std::vector<CanonicalTensor> out;
  for (const plan::StagePlan& stage : plan.stages()) {
    for (const plan::ParamInfo& p : stage.checkpoint_tensors) {
      auto [it, inserted] = index.emplace(p.canonical_name, out.size());
      if (inserted) {
        out.push_back(
            {p.canonical_name, p.canonical_shape, p.dtype, IsVocabTensor(p.canonical_name)});
        continue;
      }
      const CanonicalTensor& seen = out[it->second];
      if (seen.shape != p.canonical_shape || seen.dtype != p.dtype) {
        return absl::InternalError(
            absl::StrCat("stages disagree on canonical tensor ", p.canonical_name, ": [",
                         absl::StrJoin(seen.shape, ", "), "] ", DTypeName(seen.dtype), " versus [",
                         absl::StrJoin(p.canonical_shape, ", "), "] ", DTypeName(p.dtype)));
      }
    }
  }
  std::sort(out.begin(), out.end(), CanonicalLess);
  return out;
}

absl::StatusOr<std::vector<std::vector<bool>>> OwnedParameters(const plan::ModelPlan& plan,
                                                               int rank) {
  const plan::RankTopology& topology = plan.topology();
  if (rank < 0 || rank >= topology.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is not in a world of ", topology.world_size()));
  }
  const int chunks = plan.layout().num_chunks();
  const size_t num_stages = plan.stages().size();
  std::vector<std::vector<int>> ranks_of(num_stages);  // ascending
  for (int r = 0; r < topology.world_size(); ++r) {
    const plan::RankCoords coords = topology.Coords(r);
    for (int c = 0; c < chunks; ++c) ranks_of[plan.StageIndex(coords, c)].push_back(r);
  }
  // Every slice with the ranks holding it. Originals are preferred over tied/MTP copies.
  struct Holder {
    int rank;
    int stage;
  };
  struct Slice {
    std::string key;
    std::string name;
    int64_t bytes = 0;
    int64_t numel = 0;
    std::vector<Holder> originals, copies;
  };
  std::vector<Slice> slices;
  std::unordered_map<std::string, size_t> slice_of;
  for (size_t s = 0; s < num_stages; ++s) {
    for (const plan::ParamInfo& p : plan.stages()[s].checkpoint_tensors) {
      const std::string key = SliceKey(p);
      auto [it, inserted] = slice_of.emplace(key, slices.size());
      if (inserted) {
        const int64_t numel = SliceNumel(p);
        slices.push_back({key,
                          p.canonical_name,
                          numel * static_cast<int64_t>(DTypeSize(p.dtype)),
                          numel,
                          {},
                          {}});
      }
      Slice& slice = slices[it->second];
      for (int r : ranks_of[s]) {
        (p.shared_embedding ? slice.copies : slice.originals).push_back({r, static_cast<int>(s)});
      }
    }
  }
  // The owned slices must tile every canonical tensor.
  std::unordered_map<std::string, int64_t> covered;
  std::unordered_map<std::string, int64_t> expected;
  for (const plan::StagePlan& stage : plan.stages()) {
    for (const plan::ParamInfo& p : stage.checkpoint_tensors) {
      expected[p.canonical_name] = Numel(p.canonical_shape);
    }
  }
  for (const Slice& slice : slices) covered[slice.name] += slice.numel;
  for (const auto& [name, numel] : expected) {
    if (covered[name] != numel) {
      return absl::InternalError(absl::StrCat("the ranks' slices of ", name, " cover ",
                                              covered[name], " of its ", numel, " elements"));
    }
  }
  // Largest slices first, each to the holder with the fewest bytes so far (then the lowest
  // rank): replicas share the writing, so no rank idles while another writes everything.
  std::vector<size_t> order(slices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (slices[a].bytes != slices[b].bytes) return slices[a].bytes > slices[b].bytes;
    return slices[a].key < slices[b].key;
  });
  std::vector<int64_t> assigned(topology.world_size(), 0);
  std::unordered_map<std::string, Holder> owner;
  for (size_t i : order) {
    const Slice& slice = slices[i];
    const std::vector<Holder>& holders = slice.originals.empty() ? slice.copies : slice.originals;
    const Holder* best = &holders.front();
    for (const Holder& h : holders) {
      if (std::tie(assigned[h.rank], h.rank, h.stage) <
          std::tie(assigned[best->rank], best->rank, best->stage)) {
        best = &h;
      }
    }
    assigned[best->rank] += slice.bytes;
    owner.emplace(slice.key, *best);
  }
  std::vector<std::vector<bool>> owned(chunks);
  const plan::RankCoords coords = topology.Coords(rank);
  for (int c = 0; c < chunks; ++c) {
    const int s = plan.StageIndex(coords, c);
    for (const plan::ParamInfo& p : plan.stages()[s].checkpoint_tensors) {
      const Holder& h = owner.at(SliceKey(p));
      owned[c].push_back(h.stage == s && h.rank == rank);
    }
  }
  return owned;
}

std::string LayoutString(const plan::ModelPlan& plan) {
  const plan::RankTopology& t = plan.topology();
  const auto& tc = plan.config().transformer();
  return absl::StrCat(
      "world=", t.world_size(), " tp=", t.tp(), " pp=", t.pp(), " vp=",
      tc.has_virtual_pipeline_model_parallel_size() ? tc.virtual_pipeline_model_parallel_size() : 1,
      " cp=", t.cp(), " ep=", t.ep(), " etp=", t.etp());
}

absl::StatusOr<std::map<std::string, std::string>> CheckpointMetadata(
    const plan::ModelPlan& plan, const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {kFormatKey, kCanonicalFormatName},
      {kFormatVersionKey, absl::StrCat(kFormatVersion)},
      {kConfigKey, config::EmitJson(plan.config())},
      {kPaddedVocabKey, absl::StrCat(plan.padded_vocab_size())},
      {kSourceLayoutKey, LayoutString(plan)},
  };
  if (plan.config().has_hf_model_id() && !plan.config().hf_model_id().empty()) {
    metadata[kHfModelIdKey] = plan.config().hf_model_id();
  }
  for (const auto& [key, value] : extra) {
    if (key == "format" || key.rfind("gptb_", 0) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint metadata key '", key,
                       "' is reserved for gptbuilder; choose a key without the gptb_ prefix"));
    }
    metadata[key] = value;
  }
  return metadata;
}

absl::StatusOr<GPTModelConfig> StoredConfig(const std::map<std::string, std::string>& metadata,
                                            std::string_view source_name) {
  const std::string source(source_name);
  auto format = metadata.find(kFormatKey);
  if (format == metadata.end() || format->second != kCanonicalFormatName) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " is not a gptbuilder checkpoint: its safetensors metadata has no ",
                     kFormatKey, " = ", kCanonicalFormatName));
  }
  auto version = metadata.find(kFormatVersionKey);
  int v = 0;
  if (version == metadata.end() || !absl::SimpleAtoi(version->second, &v) || v < 1) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": metadata ", kFormatVersionKey,
                                                   " is missing or not a positive integer"));
  }
  if (v > kFormatVersion) {
    return absl::UnimplementedError(absl::StrCat(source, " has checkpoint format version ", v,
                                                 "; this build reads versions up to ",
                                                 kFormatVersion));
  }
  auto text = metadata.find(kConfigKey);
  if (text == metadata.end()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": metadata has no ", kConfigKey));
  }
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigText(
      text->second, config::ConfigFormat::kJson, absl::StrCat(source, " ", kConfigKey));
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the stored config does not parse: ", loaded.status().message()));
  }
  return loaded->model;
}

absl::Status CheckConfigCompatible(const GPTModelConfig& stored, const GPTModelConfig& model,
                                   bool strict, std::string_view source_name) {
  const std::string source(source_name);
  config::Violations violations;
  auto compare = [&](const char* path) {
    auto [sm, sf] = Resolve(stored, path);
    auto [mm, mf] = Resolve(model, path);
    if (sf == nullptr || mf == nullptr) {
      violations.Add(path, "INTERNAL", "the schema has no such field");
      return;
    }
    const std::string a = FieldText(*sm, sf), b = FieldText(*mm, mf);
    if (a != b) {
      violations.Add(path, "CHECKPOINT_MISMATCH",
                     absl::StrCat("the checkpoint at ", source, " has ", a, ", the model has ", b,
                                  "; build the model with the checkpoint's value."));
    }
  };
  for (const char* f : kShapeFields) compare(f);
  const bool moe =
      stored.transformer().has_num_moe_experts() && model.transformer().has_num_moe_experts();
  if (moe) {
    for (const char* f : kMoeShapeFields) compare(f);
  }
  if (strict) {
    for (const char* f : kNumericFields) compare(f);
    const auto rope = [](const GPTModelConfig& c) {
      return c.position_embedding_type() == "rope" || c.position_embedding_type() == "yarn";
    };
    if (rope(stored) && rope(model)) {
      for (const char* f : kRopeFields) compare(f);
      if (stored.rope_scaling() && model.rope_scaling()) compare("rope_scaling_factor");
    }
    if (moe) {
      for (const char* f : kMoeNumericFields) compare(f);
    }
  }
  return violations.ToStatus();
}

}  // namespace gptb::checkpoint
