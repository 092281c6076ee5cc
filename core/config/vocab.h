#ifndef GPTB_CORE_CONFIG_VOCAB_H_
#define GPTB_CORE_CONFIG_VOCAB_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// Megatron-Bridge's calculate_padded_vocab_size: the smallest multiple of
// make_vocab_size_divisible_by * tensor_model_parallel_size that is >= vocab_size.
// Errors (INVALID_ARGUMENT) carry Bridge's texts, checked in Bridge's order:
// "vocab_size must be positive, got X", "make_vocab_size_divisible_by must be positive, got X",
// "tensor_model_parallel_size must be positive, got X".
absl::StatusOr<int64_t> CalculatePaddedVocabSize(int64_t vocab_size,
                                                 int64_t make_vocab_size_divisible_by,
                                                 int64_t tensor_model_parallel_size);

// The vocabulary size the model is built with (build_model's step 2): padded for the config's
// tensor-parallel size when should_pad_vocab, else vocab_size as is. FAILED_PRECONDITION with
// "vocab_size must be configured before calling build_model()" when vocab_size is unset.
absl::StatusOr<int64_t> ModelVocabSize(const gptbuilder::v1::GPTModelConfig& config);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_VOCAB_H_
