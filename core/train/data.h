#ifndef GPTB_CORE_TRAIN_DATA_H_
#define GPTB_CORE_TRAIN_DATA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/train.pb.h"

namespace gptb::train {

// Element types of an indexed dataset, with Megatron's codes (DType in indexed_dataset.py).
enum class TokenDType : uint8_t {
  kUint8 = 1,
  kInt8 = 2,
  kInt16 = 3,
  kInt32 = 4,
  kInt64 = 5,
  kFloat64 = 6,
  kFloat32 = 7,
  kUint16 = 8,
};
int TokenDTypeBytes(TokenDType dtype);
const char* TokenDTypeName(TokenDType dtype);  // "uint8", ..., "uint16"

// A Megatron indexed dataset (megatron/core/datasets/indexed_dataset.py, the "MMIDIDX" format):
//   <prefix>.idx: the 9-byte header "MMIDIDX\0\0", version (uint64 LE, 1), dtype code (uint8),
//     sequence count N (uint64), document count D (uint64), then sequence lengths (int32 [N]),
//     sequence pointers (int64 [N], byte offsets into .bin), document indices (int64 [D]),
//     optionally sequence modes (int8 [N]; multimodal datasets).
//   <prefix>.bin: the token ids of every sequence, back to back.
// The .bin file is memory-mapped; every length, pointer and index is checked against the files'
// sizes when opening, so reads never leave the mapping. Immutable after Open: safe to share
// between threads.
class IndexedDataset {
 public:
  // INVALID_ARGUMENT naming the file and the field for every malformed input (bad header,
  // version or dtype code, counts that do not fit the file, negative lengths, pointers outside
  // .bin, unordered document indices, float token types); NOT_FOUND when a file is missing.
  static absl::StatusOr<std::shared_ptr<const IndexedDataset>> Open(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return static_cast<int64_t>(lengths_.size()); }
  const std::vector<int32_t>& sequence_lengths() const { return lengths_; }
  const std::vector<int64_t>& sequence_pointers() const { return pointers_; }
  const std::vector<int64_t>& document_indices() const { return document_indices_; }
  // Tokens of all sequences together.
  int64_t num_tokens() const { return offsets_.back(); }

  // The ids of sequence `index`. OUT_OF_RANGE for a bad index.
  absl::StatusOr<std::vector<int64_t>> Sequence(int64_t index) const;
  // Copies `count` ids of the stream made of every sequence in order, starting at `start`.
  // OUT_OF_RANGE when [start, start + count) is not inside the stream.
  absl::Status ReadStream(int64_t start, int64_t count, int64_t* out) const;

 private:
  IndexedDataset() = default;
  int64_t Token(int64_t byte_offset) const;

  std::string prefix_;
  TokenDType dtype_ = TokenDType::kInt32;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> pointers_;
  std::vector<int64_t> document_indices_;
  std::vector<int64_t> offsets_;  // offsets_[i]: stream position of sequence i; back(): total
  const uint8_t* bin_ = nullptr;
  size_t bin_size_ = 0;
  void* mapping_ = nullptr;  // null for an empty .bin
};

// The shape of a step's global batch: global_batch samples of seq_length + 1 token ids.
struct BatchShape {
  int64_t global_batch = 1;
  int64_t seq_length = 1;
  int64_t numel() const { return global_batch * (seq_length + 1); }
};

// Produces the global batch of an iteration from a TrainBatch source: the ids given, uniform
// synthetic ids, or samples of an indexed dataset. Every rank building the same source sees the
// same batches. Ids must lie in [0, vocab_size).
class BatchSource {
 public:
  // Opens the dataset of a data_path source. INVALID_ARGUMENT for an empty source.
  static absl::StatusOr<BatchSource> Create(const gptbuilder::v1::TrainBatch& batch);

  // [global_batch, seq_length + 1] ids, row-major. INVALID_ARGUMENT when explicit tokens do not
  // have shape.numel() ids, when any id is outside [0, vocab_size), or when a dataset holds
  // fewer than seq_length + 1 tokens.
  absl::StatusOr<std::vector<int64_t>> GlobalBatch(int64_t iteration, const BatchShape& shape,
                                                   int64_t vocab_size) const;

  const gptbuilder::v1::TrainBatch& spec() const { return spec_; }

 private:
  gptbuilder::v1::TrainBatch spec_;
  std::shared_ptr<const IndexedDataset> dataset_;
};

// The synthetic id at (seed, iteration, position) in [0, vocab_size): a counter-based hash, so
// any rank can produce any part of any batch.
int64_t SyntheticToken(uint64_t seed, int64_t iteration, int64_t position, int64_t vocab_size);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_DATA_H_
