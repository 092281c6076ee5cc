#include "core/train/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/posix_file.h"

namespace gptb::train {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kFixedHeaderBytes = 9 + 8 + 1 + 8 + 8;

template <typename T>
T ReadLe(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));  // the format is little-endian, as is every supported host
  return value;
}

// A request naming a path that does not open is a bad request (INVALID_ARGUMENT): every rank
// refuses it alike before any communication, and the model stays as it was. The open never
// blocks (a FIFO would hang the rank's thread) and only regular files are read.
absl::Status CannotOpen(const std::string& path, const absl::Status& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("batch.data_path: cannot open '", path, "' (", why.message(),
                   "); the path prefix must name <prefix>.idx and <prefix>.bin readable on every "
                   "worker"));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  absl::StatusOr<int> fd = checkpoint::OpenRegularFileForRead(path);
  if (!fd.ok()) return CannotOpen(path, fd.status());
  uint64_t size = 0;
  absl::Status status = checkpoint::FileSize(*fd, path, &size);
  std::string data(status.ok() ? size : 0, '\0');
  if (status.ok()) status = checkpoint::PreadFull(*fd, data.data(), size, 0, path);
  ::close(*fd);
  if (!status.ok()) return CannotOpen(path, status);
  return data;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

int TokenDTypeBytes(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::kUint8:
    case TokenDType::kInt8:
      return 1;
    case TokenDType::kInt16:
    case TokenDType::kUint16:
      return 2;
    case TokenDType::kInt32:
    case TokenDType::kFloat32:
      return 4;
    case TokenDType::kInt64:
    case TokenDType::kFloat64:
      return 8;
  }
  return 0;
}

const char* TokenDTypeName(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::kUint8:
      return "uint8";
    case TokenDType::kInt8:
      return "int8";
    case TokenDType::kInt16:
      return "int16";
    case TokenDType::kInt32:
      return "int32";
    case TokenDType::kInt64:
      return "int64";
    case TokenDType::kFloat64:
      return "float64";
    case TokenDType::kFloat32:
      return "float32";
    case TokenDType::kUint16:
      return "uint16";
  }
  return "?";
}

absl::StatusOr<std::shared_ptr<const IndexedDataset>> IndexedDataset::Open(
    const std::string& prefix) {
  const std::string idx_path = prefix + ".idx";
  const std::string bin_path = prefix + ".bin";
  absl::StatusOr<std::string> idx = ReadFile(idx_path);
  if (!idx.ok()) return idx.status();
  const auto* p = reinterpret_cast<const uint8_t*>(idx->data());
  const size_t size = idx->size();
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(idx_path, ": ", what));
  };
  if (size < kFixedHeaderBytes) {
    return bad(absl::StrCat("file has ", size, " bytes; an index needs at least ",
                            kFixedHeaderBytes, " (header, version, dtype, counts)"));
  }
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return bad("header is not \"MMIDIDX\\0\\0\" (not a Megatron indexed dataset index)");
  }
  const uint64_t version = ReadLe<uint64_t>(p + 9);
  if (version != 1) return bad(absl::StrCat("version is ", version, "; only version 1 is known"));
  const uint8_t code = p[17];
  if (code < 1 || code > 8) {
    return bad(absl::StrCat("dtype code is ", static_cast<int>(code),
                            "; valid codes are 1 (uint8) to 8 (uint16)"));
  }
  const auto dtype = static_cast<TokenDType>(code);
  if (dtype == TokenDType::kFloat32 || dtype == TokenDType::kFloat64) {
    return bad(
        absl::StrCat("dtype is ", TokenDTypeName(dtype), "; token ids need an integer type"));
  }
  const uint64_t sequences = ReadLe<uint64_t>(p + 18);
  const uint64_t documents = ReadLe<uint64_t>(p + 26);
  const uint64_t body = size - kFixedHeaderBytes;
  // Checked one at a time so the products below cannot overflow.
  if (sequences > body / 12 || documents > (body - sequences * 12) / 8) {
    return bad(absl::StrCat("sequence count ", sequences, " and document count ", documents,
                            " need more than the file's ", size, " bytes"));
  }
  const uint64_t needed = sequences * 12 + documents * 8;
  const uint64_t trailing = body - needed;
  if (trailing != 0 && trailing != sequences) {
    return bad(absl::StrCat("file has ", trailing,
                            " bytes after the document indices; expected 0, or ", sequences,
                            " (sequence modes)"));
  }

  std::shared_ptr<IndexedDataset> ds(new IndexedDataset());
  ds->prefix_ = prefix;
  ds->dtype_ = dtype;
  ds->lengths_.resize(sequences);
  ds->pointers_.resize(sequences);
  ds->document_indices_.resize(documents);
  const uint8_t* cursor = p + kFixedHeaderBytes;
  if (sequences > 0) {
    std::memcpy(ds->lengths_.data(), cursor, sequences * 4);
    cursor += sequences * 4;
    std::memcpy(ds->pointers_.data(), cursor, sequences * 8);
    cursor += sequences * 8;
  }
  if (documents > 0) std::memcpy(ds->document_indices_.data(), cursor, documents * 8);

  // The data file.
  absl::StatusOr<int> opened = checkpoint::OpenRegularFileForRead(bin_path);
  if (!opened.ok()) return CannotOpen(bin_path, opened.status());
  const int fd = *opened;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat '", bin_path, "': ", strerror(err)));
  }
  ds->bin_size_ = static_cast<size_t>(st.st_size);
  if (ds->bin_size_ > 0) {
    void* mapping = ::mmap(nullptr, ds->bin_size_, PROT_READ, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot map '", bin_path, "': ", strerror(err)));
    }
    ds->mapping_ = mapping;
    ds->bin_ = static_cast<const uint8_t*>(mapping);
  }
  ::close(fd);

  const int64_t item = TokenDTypeBytes(dtype);
  const auto bin_size = static_cast<int64_t>(ds->bin_size_);
  ds->offsets_.assign(sequences + 1, 0);
  for (uint64_t i = 0; i < sequences; ++i) {
    const int64_t length = ds->lengths_[i];
    const int64_t pointer = ds->pointers_[i];
    if (length < 0)
      return bad(absl::StrCat("sequence_lengths[", i, "] is negative (", length, ")"));
    if (pointer < 0 || pointer > bin_size || length > (bin_size - pointer) / item) {
      return bad(absl::StrCat("sequence ", i, " (pointer ", pointer, ", ", length, " ",
                              TokenDTypeName(dtype), " ids) lies outside ", bin_path, " (",
                              bin_size, " bytes)"));
    }
    ds->offsets_[i + 1] = ds->offsets_[i] + length;
  }
  int64_t previous = 0;
  for (uint64_t i = 0; i < documents; ++i) {
    const int64_t index = ds->document_indices_[i];
    if (index < previous || index > static_cast<int64_t>(sequences)) {
      return bad(absl::StrCat("document_indices[", i, "] = ", index, " is not in [previous index ",
                              previous, ", sequence count ", sequences, "]"));
    }
    previous = index;
  }
  return std::shared_ptr<const IndexedDataset>(std::move(ds));
}

IndexedDataset::~IndexedDataset() {
  if (mapping_ != nullptr) ::munmap(mapping_, bin_size_);
}

int64_t IndexedDataset::Token(int64_t byte_offset) const {
  const uint8_t* p = bin_ + byte_offset;
  switch (dtype_) {
    case TokenDType::kUint8:
      return *p;
    case TokenDType::kInt8:
      return static_cast<int8_t>(*p);
    case TokenDType::kInt16:
      return ReadLe<int16_t>(p);
    case TokenDType::kUint16:
      return ReadLe<uint16_t>(p);
    case TokenDType::kInt32:
      return ReadLe<int32_t>(p);
    case TokenDType::kInt64:
      return ReadLe<int64_t>(p);
    case TokenDType::kFloat32:
    case TokenDType::kFloat64:
      break;  // rejected by Open
  }
  return -1;
}

absl::StatusOr<std::vector<int64_t>> IndexedDataset::Sequence(int64_t index) const {
  if (index < 0 || index >= num_sequences()) {
    return absl::OutOfRangeError(
        absl::StrCat("sequence ", index, " is not in [0, ", num_sequences(), ") of ", prefix_));
  }
  std::vector<int64_t> out(lengths_[index]);
  if (absl::Status s = ReadStream(offsets_[index], lengths_[index], out.data()); !s.ok()) return s;
  return out;
}

absl::Status IndexedDataset::ReadStream(int64_t start, int64_t count, int64_t* out) const {
  if (start < 0 || count < 0 || start > num_tokens() || count > num_tokens() - start) {
    return absl::OutOfRangeError(absl::StrCat("tokens [", start, ", ", start + count,
                                              ") are not inside the ", num_tokens(), " tokens of ",
                                              prefix_));
  }
  const int64_t item = TokenDTypeBytes(dtype_);
  // The sequence holding `start`: the last one whose offset is <= start (skipping empty ones).
  int64_t seq = std::upper_bound(offsets_.begin(), offsets_.end(), start) - offsets_.begin() - 1;
  int64_t done = 0;
  while (done < count) {
    const int64_t within = start + done - offsets_[seq];
    const int64_t take = std::min<int64_t>(lengths_[seq] - within, count - done);
    for (int64_t k = 0; k < take; ++k) out[done + k] = Token(pointers_[seq] + (within + k) * item);
    done += take;
    ++seq;
  }
  return absl::OkStatus();
}

int64_t SyntheticToken(uint64_t seed, int64_t iteration, int64_t position, int64_t vocab_size) {
  const uint64_t h = SplitMix64(SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(iteration)) ^
                                static_cast<uint64_t>(position));
  return static_cast<int64_t>(h % static_cast<uint64_t>(vocab_size));
}

absl::StatusOr<BatchSource> BatchSource::Create(const gptbuilder::v1::TrainBatch& batch) {
  BatchSource source;
  source.spec_ = batch;
  switch (batch.source_case()) {
    case gptbuilder::v1::TrainBatch::kTokens:
    case gptbuilder::v1::TrainBatch::kSyntheticSeed:
      return source;
    case gptbuilder::v1::TrainBatch::kDataPath: {
      if (batch.data_path().empty()) {
        return absl::InvalidArgumentError("batch.data_path is empty; give a dataset path prefix");
      }
      absl::StatusOr<std::shared_ptr<const IndexedDataset>> ds =
          IndexedDataset::Open(batch.data_path());
      if (!ds.ok()) return ds.status();
      source.dataset_ = *std::move(ds);
      return source;
    }
    case gptbuilder::v1::TrainBatch::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("batch: no source; set tokens, synthetic_seed or data_path");
}

absl::StatusOr<std::vector<int64_t>> BatchSource::GlobalBatch(int64_t iteration,
                                                              const BatchShape& shape,
                                                              int64_t vocab_size) const {
  if (shape.global_batch <= 0 || shape.seq_length <= 0 || vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a batch needs positive sizes; got global batch ", shape.global_batch,
                     ", seq_length ", shape.seq_length, ", vocab size ", vocab_size));
  }
  const int64_t n = shape.numel();
  const int64_t row = shape.seq_length + 1;
  std::vector<int64_t> ids;
  switch (spec_.source_case()) {
    case gptbuilder::v1::TrainBatch::kTokens: {
      const auto& given = spec_.tokens().ids();
      if (static_cast<int64_t>(given.size()) != n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "batch.tokens.ids has ", given.size(), " ids; a global batch of ", shape.global_batch,
            " samples of seq_length + 1 = ", row, " ids needs ", n));
      }
      ids.assign(given.begin(), given.end());
      break;
    }
    case gptbuilder::v1::TrainBatch::kSyntheticSeed: {
      ids.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        ids[i] = SyntheticToken(spec_.synthetic_seed(), iteration, i, vocab_size);
      }
      return ids;  // in range by construction
    }
    case gptbuilder::v1::TrainBatch::kDataPath: {
      const int64_t tokens = dataset_->num_tokens();
      if (tokens < row) {
        return absl::InvalidArgumentError(
            absl::StrCat("batch.data_path: ", dataset_->prefix(), " holds ", tokens,
                         " tokens; a sample needs seq_length + 1 = ", row));
      }
      const int64_t samples = (tokens - 1) / shape.seq_length;
      ids.resize(n);
      for (int64_t i = 0; i < shape.global_batch; ++i) {
        const int64_t sample = (iteration * shape.global_batch + i) % samples;
        absl::Status s = dataset_->ReadStream(sample * shape.seq_length, row, ids.data() + i * row);
        if (!s.ok()) return s;
      }
      break;
    }
    case gptbuilder::v1::TrainBatch::SOURCE_NOT_SET:
      return absl::InvalidArgumentError(
          "batch: no source; set tokens, synthetic_seed or data_path");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch token ", i, " (sample ", i / row, ", position ", i % row, ") is ",
                       ids[i], "; token ids must lie in [0, ", vocab_size, ")"));
    }
  }
  return ids;
}

}  // namespace gptb::train
