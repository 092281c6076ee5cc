#ifndef GPTB_CORE_CONFIG_LIMITS_H_
#define GPTB_CORE_CONFIG_LIMITS_H_

#include <cstdint>

#include "core/config/violations.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// Bounds on the work one request may ask for. A service answers requests from anyone who can
// reach it, so a config is checked against these before anything is derived, planned or
// allocated: a 10^9-layer model or a world of 10^6 ranks is refused in microseconds instead of
// growing the coordinator until the kernel kills it. The adjustable ones are daemon and CLI
// flags (named in each message); the fixed ones keep size arithmetic exact in 64 bits and sit far
// above any model in use.
struct Limits {
  // Ranks in a world (--max-world-size). Planning is linear in it; 65,536 covers the largest
  // training clusters built to date.
  int64_t max_world_size = 65536;
  // Decoder layers, and MTP layers (--max-num-layers). The deepest published GPTs have ~130.
  int64_t max_num_layers = 1024;
  // Parameter tensors a plan may list over all its distinct stages (--max-plan-tensors). Each
  // costs a few hundred bytes while planned; the largest MoE layouts in use plan ~100,000.
  int64_t max_plan_tensors = 500000;
};

// Fixed bounds (not flags).
// Any width, head count, expert count or sequence length: 2^24 keeps a product of two sizes
// and a dtype width (the largest a parameter's element count gets) below 2^63.
inline constexpr int64_t kMaxDimension = int64_t{1} << 24;
// vocab_size: token ids of every tokenizer and dataset format gptbuilder reads fit in 31 bits.
inline constexpr int64_t kMaxVocabSize = (int64_t{1} << 31) - 1;
// pipeline_model_parallel_layout: characters as written and after expanding repetitions.
inline constexpr int64_t kMaxLayoutChars = 1 << 16;
inline constexpr int64_t kMaxExpandedLayoutChars = 1 << 20;
// A config sent as text (ConfigText.text): the largest real configs (a Hugging Face config.json
// of a large MoE, a YAML with a custom layer spec) are a few KiB.
inline constexpr int64_t kMaxConfigTextBytes = 1 << 20;

// Checks `config` as the client sent it (before Finalize derives anything) against `limits` and
// the fixed bounds, and `world_size` when given. Every problem is a violation naming the field
// (`transformer.num_layers`, `world_size`, ...), with reason LIMIT_EXCEEDED and a message that
// states the limit and how to change it. Work is O(size of the message).
void CheckLimits(const gptbuilder::v1::GPTModelConfig& config, const Limits& limits,
                 const int64_t* world_size, Violations* violations);

// The smallest world the parallel sizes of `config` allow: pp * lcm(tp * cp, etp * ep), with
// unset or non-positive sizes read as 1 and etp unset read as tp. Saturates at INT64_MAX.
int64_t MinimalWorldSize(const gptbuilder::v1::TransformerConfig& t);

// *out = a * b (a + b); false, leaving *out unspecified, when the result does not fit in int64.
bool CheckedMul(int64_t a, int64_t b, int64_t* out);
bool CheckedAdd(int64_t a, int64_t b, int64_t* out);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_LIMITS_H_
