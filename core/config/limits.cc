#include "core/config/limits.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/plan/pipeline_layout_string.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace gptb::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;

constexpr char kReason[] = "LIMIT_EXCEEDED";
constexpr char kFixed[] =
    "a fixed bound that keeps gptbuilder's size arithmetic exact, far above any model in use";

// Every value of the integer field `name` of `message` (none when unset or absent from the
// schema), with its index for repeated fields (-1 for singular ones).
template <typename Fn>
void ForEachInt(const Message& message, const std::string& name, Fn&& fn) {
  const FieldDescriptor* field = message.GetDescriptor()->FindFieldByName(name);
  if (field == nullptr) return;
  const auto* reflection = message.GetReflection();
  auto value = [&](int index) -> int64_t {
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return index < 0 ? reflection->GetInt32(message, field)
                         : reflection->GetRepeatedInt32(message, field, index);
      case FieldDescriptor::CPPTYPE_INT64:
        return index < 0 ? reflection->GetInt64(message, field)
                         : reflection->GetRepeatedInt64(message, field, index);
      default:
        return 0;
    }
  };
  if (field->is_repeated()) {
    for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
      if (!fn(i, value(i))) return;
    }
  } else if (reflection->HasField(message, field)) {
    fn(-1, value(-1));
  }
}

std::string Path(const std::string& prefix, const std::string& name, int index) {
  return absl::StrCat(prefix, name, index < 0 ? "" : absl::StrCat("[", index, "]"));
}

class LimitChecker {
 public:
  explicit LimitChecker(Violations* violations) : violations_(violations) {}

  // Values of `name` above `max`; the first offending entry of a list is reported.
  void AtMost(const Message& message, const std::string& prefix, const std::string& name,
              int64_t max, const std::string& what, const std::string& how) {
    ForEachInt(message, name, [&](int index, int64_t value) {
      if (value <= max) return true;
      violations_->Add(Path(prefix, name, index), kReason,
                       absl::StrCat(name, " ", value, " is over the limit of ", max,
                                    what.empty() ? "" : " ", what, "; ", how, "."));
      return false;
    });
  }

  void Dimension(const Message& message, const std::string& prefix, const std::string& name) {
    AtMost(message, prefix, name, kMaxDimension, "", kFixed);
  }

  void ListLength(const Message& message, const std::string& prefix, const std::string& name,
                  int64_t max, const std::string& how) {
    const FieldDescriptor* field = message.GetDescriptor()->FindFieldByName(name);
    if (field == nullptr || !field->is_repeated()) return;
    const int size = message.GetReflection()->FieldSize(message, field);
    if (size > max) {
      violations_->Add(
          absl::StrCat(prefix, name), kReason,
          absl::StrCat(name, " has ", size, " entries, over the limit of ", max, "; ", how, "."));
    }
  }

  std::string WorldHow() const {
    return "raise --max-world-size (a flag of gptbd coordinator and of gptb) to allow more ranks";
  }
  std::string LayersHow() const {
    return "raise --max-num-layers (a flag of gptbd coordinator and of gptb) to allow deeper "
           "models";
  }

 private:
  Violations* violations_;
};

}  // namespace

bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool CheckedAdd(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

int64_t MinimalWorldSize(const TransformerConfig& t) {
  auto size = [](bool has, int64_t value) { return has && value > 0 ? value : int64_t{1}; };
  const int64_t tp = size(true, t.tensor_model_parallel_size());
  const int64_t pp = size(true, t.pipeline_model_parallel_size());
  const int64_t cp = size(true, t.context_parallel_size());
  const int64_t ep = size(true, t.expert_model_parallel_size());
  const int64_t etp = size(t.has_expert_tensor_parallel_size(), t.expert_tensor_parallel_size());
  const int64_t expert_tp = t.has_expert_tensor_parallel_size() ? etp : tp;
  constexpr int64_t kSaturated = std::numeric_limits<int64_t>::max();
  int64_t dense = 0, expert = 0, out = 0;
  if (!CheckedMul(tp, cp, &dense) || !CheckedMul(expert_tp, ep, &expert)) return kSaturated;
  const int64_t gcd = std::gcd(dense, expert);
  if (!CheckedMul(dense / gcd, expert, &out) || !CheckedMul(out, pp, &out)) return kSaturated;
  return out;
}

void CheckLimits(const GPTModelConfig& config, const Limits& limits, const int64_t* world_size,
                 Violations* violations) {
  LimitChecker c(violations);
  const TransformerConfig& t = config.transformer();
  const std::string tp = "transformer.";
  const size_t before = violations->size();

  // Parallel sizes: each is a group of ranks, so none can exceed the world.
  for (const char* name :
       {"tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size",
        "expert_model_parallel_size", "expert_tensor_parallel_size",
        "virtual_pipeline_model_parallel_size", "hierarchical_context_parallel_sizes",
        "tensor_parallel_num_weight_shards"}) {
    c.AtMost(t, tp, name, limits.max_world_size, "ranks", c.WorldHow());
  }
  c.Dimension(t, tp, "microbatch_group_size_per_vp_stage");
  c.ListLength(t, tp, "hierarchical_context_parallel_sizes", 16, kFixed);

  // Layer counts.
  for (const char* name :
       {"num_layers", "mtp_num_layers", "num_layers_in_first_pipeline_stage",
        "num_layers_in_last_pipeline_stage", "recompute_num_layers", "cpu_offloading_num_layers"}) {
    c.AtMost(t, tp, name, limits.max_num_layers, "layers", c.LayersHow());
  }
  c.ListLength(t, tp, "moe_layer_freq", limits.max_num_layers, c.LayersHow());
  c.ListLength(t, tp, "window_size", 2, kFixed);

  // Widths, head and expert counts, sequence lengths.
  for (const char* name :
       {"hidden_size", "ffn_hidden_size", "kv_channels", "num_attention_heads", "num_query_groups",
        "num_moe_experts", "moe_ffn_hidden_size", "moe_shared_expert_intermediate_size",
        "moe_router_topk", "moe_router_num_groups", "moe_router_group_topk", "moe_latent_size",
        "q_lora_rank", "kv_lora_rank", "qk_head_dim", "qk_pos_emb_head_dim", "v_head_dim",
        "original_max_position_embeddings", "window_size"}) {
    c.Dimension(t, tp, name);
  }
  for (const char* name : {"seq_length", "make_vocab_size_divisible_by"}) {
    c.Dimension(config, "", name);
  }
  c.AtMost(config, "", "vocab_size", kMaxVocabSize, "tokens", kFixed);

  // Model chunks (pp x vp, vp as given or as a layout string implies it): a plan holds one
  // stage per chunk and shard position, and a chunk per layer is the finest useful split.
  int64_t chunks_per_rank = t.has_virtual_pipeline_model_parallel_size()
                                ? std::max<int64_t>(t.virtual_pipeline_model_parallel_size(), 1)
                                : 1;
  const int64_t pp = std::max<int64_t>(t.pipeline_model_parallel_size(), 1);
  if (t.has_pipeline_model_parallel_layout()) {
    const std::string& layout = t.pipeline_model_parallel_layout();
    if (static_cast<int64_t>(layout.size()) > kMaxLayoutChars) {
      violations->Add(
          absl::StrCat(tp, "pipeline_model_parallel_layout"), kReason,
          absl::StrCat("pipeline_model_parallel_layout has ", layout.size(),
                       " characters, over the limit of ", kMaxLayoutChars, "; ", kFixed, "."));
    } else if (absl::StatusOr<std::vector<std::string>> stages = plan::ExpandPipelineLayout(layout);
               stages.ok()) {
      // (A malformed layout is Finalize's to report.)
      chunks_per_rank = std::max<int64_t>(chunks_per_rank, stages->size() / pp);
    }
  }
  if (int64_t chunks = 0;
      !CheckedMul(pp, chunks_per_rank, &chunks) || chunks > limits.max_num_layers) {
    violations->Add(
        absl::StrCat(tp, "pipeline_model_parallel_size"), kReason,
        absl::StrCat("pipeline_model_parallel_size (", pp, ") x virtual pipeline stages (",
                     chunks_per_rank, ") asks for more model chunks than the limit of ",
                     limits.max_num_layers, " (a chunk per layer is the finest split); ",
                     c.LayersHow(), "."));
  }

  // The world: the one given, and the smallest one the parallel sizes need. Only meaningful
  // once every parallel size is within bounds.
  if (world_size != nullptr) {
    if (*world_size <= 0) {
      violations->Add(
          "world_size", "NOT_POSITIVE",
          absl::StrCat("world size must be a positive integer, got ", *world_size, "."));
    } else if (*world_size > limits.max_world_size) {
      violations->Add("world_size", kReason,
                      absl::StrCat("world size ", *world_size, " is over the limit of ",
                                   limits.max_world_size, " ranks; ", c.WorldHow(), "."));
    }
  }
  if (violations->size() == before) {
    const int64_t minimal = MinimalWorldSize(t);
    if (minimal > limits.max_world_size) {
      violations->Add("world_size", kReason,
                      absl::StrCat("the parallel sizes need at least ", minimal,
                                   " ranks (pipeline_model_parallel_size * lcm(tensor * context, "
                                   "expert tensor * expert model parallel sizes)), over the limit "
                                   "of ",
                                   limits.max_world_size, " ranks; ", c.WorldHow(), "."));
    }
  }
}

}  // namespace gptb::config
