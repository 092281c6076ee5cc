#include "core/config/vocab.h"

#include "absl/strings/str_cat.h"

namespace gptb::config {

absl::StatusOr<int64_t> CalculatePaddedVocabSize(int64_t vocab_size,
                                                 int64_t make_vocab_size_divisible_by,
                                                 int64_t tensor_model_parallel_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size must be positive, got ", vocab_size));
  }
  if (make_vocab_size_divisible_by <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "make_vocab_size_divisible_by must be positive, got ", make_vocab_size_divisible_by));
  }
  if (tensor_model_parallel_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor_model_parallel_size must be positive, got ", tensor_model_parallel_size));
  }
  const int64_t multiple = make_vocab_size_divisible_by * tensor_model_parallel_size;
  return ((vocab_size + multiple - 1) / multiple) * multiple;
}

absl::StatusOr<int64_t> ModelVocabSize(const gptbuilder::v1::GPTModelConfig& config) {
  if (!config.has_vocab_size()) {
    return absl::FailedPreconditionError(
        "vocab_size must be configured before calling build_model()");
  }
  if (!config.should_pad_vocab()) return config.vocab_size();
  return CalculatePaddedVocabSize(config.vocab_size(), config.make_vocab_size_divisible_by(),
                                  config.transformer().tensor_model_parallel_size());
}

}  // namespace gptb::config
