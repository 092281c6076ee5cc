// Write/read round trips: dtypes, shapes, layout, slices along every dimension written
// concurrently by threads and by processes.

#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/checkpoint/safetensors_test_util.h"

namespace gptb::checkpoint {
namespace {

using testing::ExpectError;
using testing::Pattern;
using testing::TempDir;
using Bytes = std::vector<unsigned char>;

uint64_t Numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// The sub-block [start, start + length) along `dim`, gathered element by element from the full
// row-major tensor: an implementation independent of the library's run arithmetic.
Bytes ExtractSlice(const Bytes& full, const std::vector<int64_t>& shape, size_t item, int dim,
                   int64_t start, int64_t length) {
  std::vector<int64_t> sub = shape;
  sub[dim] = length;
  Bytes out(Numel(sub) * item);
  std::vector<int64_t> index(shape.size(), 0);
  for (uint64_t e = 0; e < Numel(sub); ++e) {
    uint64_t rest = e;
    for (int d = static_cast<int>(sub.size()) - 1; d >= 0; --d) {
      index[d] = static_cast<int64_t>(rest % sub[d]);
      rest /= sub[d];
    }
    index[dim] += start;
    uint64_t flat = 0;
    for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
    std::memcpy(out.data() + e * item, full.data() + flat * item, item);
  }
  return out;
}

// Splits [0, extent) into `parts` pieces of uneven length (the last ones longer).
std::vector<std::pair<int64_t, int64_t>> Pieces(int64_t extent, int parts) {
  std::vector<std::pair<int64_t, int64_t>> pieces;
  int64_t start = 0;
  for (int p = 0; p < parts; ++p) {
    int64_t end = extent * (p + 1) / parts;
    pieces.emplace_back(start, end - start);
    start = end;
  }
  return pieces;
}

const std::vector<TensorSpec>& ManySpecs() {
  static const std::vector<TensorSpec> specs = {
      {"decoder.weight", DType::kFloat32, {3, 4}},
      {"bf16.vector", DType::kBFloat16, {5}},
      {"f16.cube", DType::kFloat16, {2, 3, 4}},
      {"f64.scalar", DType::kFloat64, {}},
      {"i64.empty", DType::kInt64, {0, 3}},
      {"i32.column", DType::kInt32, {7, 1}},
      {"i16", DType::kInt16, {2, 2}},
      {"i8", DType::kInt8, {9}},
      {"u8.ones", DType::kUInt8, {1, 1, 1, 1}},
      {"bool.mask", DType::kBool, {6}},
      {"f8", DType::kFloat8E4M3, {4}},
      {"u64", DType::kUInt64, {3}},
      {"a.last", DType::kFloat32, {2, 2, 2, 2}},
  };
  return specs;
}

class RoundTripTest : public ::testing::TestWithParam<ReadMode> {};

TEST_P(RoundTripTest, EveryDTypeAndShapeComesBackBitExact) {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode"}};
  std::vector<Bytes> data;
  {
    auto writer = SafetensorsWriter::Create(path, ManySpecs(), metadata);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (size_t i = 0; i < ManySpecs().size(); ++i) {
      const TensorSpec& s = ManySpecs()[i];
      data.push_back(Pattern(Numel(s.shape) * DTypeSize(s.dtype), static_cast<uint32_t>(i)));
      ASSERT_TRUE((*writer)->WriteTensor(s.name, data.back().data()).ok());
    }
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  auto reader = SafetensorsReader::Open(path, {GetParam(), {}, {}});
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->metadata(), metadata);
  EXPECT_EQ((*reader)->header().data_offset % 8, 0u);
  ASSERT_EQ((*reader)->tensors().size(), ManySpecs().size());
  uint64_t expected_offset = (*reader)->header().data_offset;
  uint64_t total = 0;
  for (size_t i = 0; i < ManySpecs().size(); ++i) {
    const TensorSpec& s = ManySpecs()[i];
    // File order is the order given to the writer, back to back.
    const TensorInfo& info = (*reader)->tensors()[i];
    EXPECT_EQ(info.name, s.name);
    EXPECT_EQ(info.dtype, s.dtype);
    EXPECT_EQ(info.shape, s.shape);
    EXPECT_EQ(info.file_offset, expected_offset) << s.name;
    expected_offset += info.nbytes();
    total += info.nbytes();
    Bytes back(data[i].size() + 1, 0xEE);  // one guard byte that must stay untouched
    ASSERT_TRUE((*reader)->ReadTensor(s.name, back.data()).ok());
    EXPECT_EQ(back.back(), 0xEE);
    back.pop_back();
    EXPECT_EQ(back, data[i]) << s.name;
    if (GetParam() == ReadMode::kMmap) {
      auto view = (*reader)->Data(s.name);
      ASSERT_TRUE(view.ok());
      // (memcmp's pointers must be valid even for 0 bytes, and an empty vector's data() is null.)
      if (!data[i].empty()) {
        EXPECT_EQ(std::memcmp(*view, data[i].data(), data[i].size()), 0) << s.name;
      }
    } else {
      ExpectError((*reader)->Data(s.name).status(), absl::StatusCode::kFailedPrecondition,
                  {"kMmap"});
    }
  }
  EXPECT_EQ((*reader)->file_size(), expected_offset);
  EXPECT_EQ((*reader)->bytes_read(), total);
}

TEST_P(RoundTripTest, EmptyFileHasNoTensors) {
  TempDir dir;
  const std::string path = dir.File("empty.safetensors");
  auto writer = SafetensorsWriter::Create(path, {}, {});
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_EQ(testing::ReadBytes(path).size(), 16u);  // prefix + "{}" padded to 8
  auto reader = SafetensorsReader::Open(path, {GetParam(), {}, {}});
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE((*reader)->tensors().empty());
  EXPECT_TRUE((*reader)->metadata().empty());
}

TEST_P(RoundTripTest, ReadSliceReadsOnlyTheSliceBytes) {
  TempDir dir;
  const std::string path = dir.File("w.safetensors");
  const std::vector<int64_t> shape = {64, 32};
  Bytes full = Pattern(64 * 32 * 4, 7);
  {
    auto writer = SafetensorsWriter::Create(path, {{"w", DType::kFloat32, shape}}, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->WriteTensor("w", full.data()).ok());
    ASSERT_TRUE((*writer)->Finish(/*sync=*/false).ok());
  }
  auto reader = SafetensorsReader::Open(path, {GetParam(), {}, {}});
  ASSERT_TRUE(reader.ok());
  Bytes out(64 * 8 * 4);
  ASSERT_EQ(*(*reader)->SliceBytes("w", 1, 8, 8), out.size());
  ASSERT_TRUE((*reader)->ReadSlice("w", 1, 8, 8, out.data()).ok());
  EXPECT_EQ(out, ExtractSlice(full, shape, 4, 1, 8, 8));
  EXPECT_EQ((*reader)->bytes_read(), out.size());
  Bytes rows(3 * 32 * 4);
  ASSERT_TRUE((*reader)->ReadSlice("w", 0, 60, 3, rows.data()).ok());
  EXPECT_EQ(rows, ExtractSlice(full, shape, 4, 0, 60, 3));
  EXPECT_EQ((*reader)->bytes_read(), out.size() + rows.size());
  // An empty slice reads nothing and succeeds.
  ASSERT_TRUE((*reader)->ReadSlice("w", 1, 32, 0, nullptr).ok());
  EXPECT_EQ((*reader)->bytes_read(), out.size() + rows.size());
}

TEST_P(RoundTripTest, ReadSliceRejectsBadArgumentsAndUnknownNames) {
  TempDir dir;
  const std::string path = dir.File("w.safetensors");
  {
    auto writer = SafetensorsWriter::Create(
        path, {{"w", DType::kFloat32, {4, 6}}, {"s", DType::kFloat32, {}}}, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Finish(false).ok());
  }
  auto reader = SafetensorsReader::Open(path, {GetParam(), {}, {}});
  ASSERT_TRUE(reader.ok());
  Bytes out(4 * 6 * 4);
  ExpectError((*reader)->ReadSlice("nope", 0, 0, 1, out.data()), absl::StatusCode::kNotFound,
              {"'nope'", path});
  ExpectError((*reader)->ReadTensor("nope", out.data()), absl::StatusCode::kNotFound, {"'nope'"});
  ExpectError((*reader)->ReadSlice("w", 2, 0, 1, out.data()), absl::StatusCode::kInvalidArgument,
              {"'w'", "[4, 6]", "dim 2 is not in [0, 2)"});
  ExpectError((*reader)->ReadSlice("w", -1, 0, 1, out.data()), absl::StatusCode::kInvalidArgument,
              {"dim -1"});
  ExpectError((*reader)->ReadSlice("w", 1, 4, 3, out.data()), absl::StatusCode::kInvalidArgument,
              {"slice [4, 4 + 3) along dim 1 is not within [0, 6]"});
  ExpectError((*reader)->ReadSlice("w", 0, -1, 1, out.data()), absl::StatusCode::kInvalidArgument,
              {"slice [-1"});
  ExpectError((*reader)->ReadSlice("w", 0, 1, INT64_MAX, out.data()),
              absl::StatusCode::kInvalidArgument, {"not within [0, 4]"});
  ExpectError((*reader)->ReadSlice("s", 0, 0, 1, out.data()), absl::StatusCode::kInvalidArgument,
              {"'s'", "dim 0 is not in [0, 0)"});
  EXPECT_EQ((*reader)->bytes_read(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, RoundTripTest, ::testing::Values(ReadMode::kMmap, ReadMode::kPread),
                         [](const auto& info) {
                           return info.param == ReadMode::kMmap ? "Mmap" : "Pread";
                         });

struct SliceCase {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

const std::vector<SliceCase>& SliceCases() {
  static const std::vector<SliceCase> cases = {
      {"two_d", DType::kFloat32, {12, 10}},
      {"two_d_bf16", DType::kBFloat16, {7, 13}},
      {"three_d", DType::kFloat32, {6, 8, 10}},
      {"three_d_f16", DType::kFloat16, {5, 3, 9}},
  };
  return cases;
}

// Every tensor is cut along `dim` into 4 uneven pieces; one thread per piece writes that piece of
// every tensor through one shared writer. The file must then hold exactly the full tensors, and
// every piece must read back through ReadSlice in both modes.
void WriteAndCheckSlicesAlong(int dim, WriteMode mode) {
  TempDir dir;
  const std::string path = dir.File("sliced.safetensors");
  std::vector<TensorSpec> specs;
  std::map<std::string, Bytes> full;
  uint32_t seed = 100;
  for (const SliceCase& c : SliceCases()) {
    if (dim >= static_cast<int>(c.shape.size())) continue;
    specs.push_back({c.name, c.dtype, c.shape});
    full[c.name] = Pattern(Numel(c.shape) * DTypeSize(c.dtype), seed++);
  }
  auto writer = SafetensorsWriter::Create(path, specs, {{"dim", std::to_string(dim)}},
                                          {Preallocation::kFallocate, mode});
  ASSERT_TRUE(writer.ok()) << writer.status();
  // /tmp is ext4 or tmpfs, both with fallocate, so the mode asked for is the mode used.
  ASSERT_EQ((*writer)->mode(), mode);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const TensorSpec& s : specs) {
        auto [start, length] = Pieces(s.shape[dim], kThreads)[t];
        Bytes piece = ExtractSlice(full[s.name], s.shape, DTypeSize(s.dtype), dim, start, length);
        absl::Status status = (*writer)->WriteSlice(s.name, dim, start, length, piece.data());
        if (!status.ok()) {
          results[t] = status;
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE((*writer)->Finish().ok());

  for (ReadMode mode : {ReadMode::kMmap, ReadMode::kPread}) {
    auto reader = SafetensorsReader::Open(path, {mode, {}, {}});
    ASSERT_TRUE(reader.ok()) << reader.status();
    for (const TensorSpec& s : specs) {
      Bytes back(full[s.name].size());
      ASSERT_TRUE((*reader)->ReadTensor(s.name, back.data()).ok());
      EXPECT_EQ(back, full[s.name]) << s.name << " dim " << dim;
      for (int parts : {1, 3, kThreads}) {
        for (auto [start, length] : Pieces(s.shape[dim], parts)) {
          Bytes piece(*(*reader)->SliceBytes(s.name, dim, start, length));
          ASSERT_TRUE((*reader)->ReadSlice(s.name, dim, start, length, piece.data()).ok());
          EXPECT_EQ(piece,
                    ExtractSlice(full[s.name], s.shape, DTypeSize(s.dtype), dim, start, length))
              << s.name << " dim " << dim << " [" << start << ", +" << length << ")";
        }
      }
    }
  }
}

class ConcurrentSlices : public ::testing::TestWithParam<WriteMode> {};

TEST_P(ConcurrentSlices, ThreadsWritingDim0SlicesGiveTheFullTensors) {
  WriteAndCheckSlicesAlong(0, GetParam());
}
TEST_P(ConcurrentSlices, ThreadsWritingDim1SlicesGiveTheFullTensors) {
  WriteAndCheckSlicesAlong(1, GetParam());
}
TEST_P(ConcurrentSlices, ThreadsWritingDim2SlicesGiveTheFullTensors) {
  WriteAndCheckSlicesAlong(2, GetParam());
}

// Ranks as processes: the parent creates the file, each child opens it on its own and writes
// only its column block of a matrix and its row block of a 3-D tensor.
TEST_P(ConcurrentSlices, ProcessesWritingTheirOwnSlicesGiveTheFullTensors) {
  TempDir dir;
  const std::string path = dir.File("ranks.safetensors");
  const std::vector<TensorSpec> specs = {{"proj.weight", DType::kFloat32, {9, 12}},
                                         {"qkv.weight", DType::kBFloat16, {6, 4, 5}}};
  const std::map<std::string, std::string> metadata = {{"world_size", "3"}};
  const Bytes proj = Pattern(9 * 12 * 4, 1);
  const Bytes qkv = Pattern(6 * 4 * 5 * 2, 2);
  {
    auto creator = SafetensorsWriter::Create(path, specs, metadata);
    ASSERT_TRUE(creator.ok()) << creator.status();
    ASSERT_TRUE((*creator)->Finish().ok());
  }
  constexpr int kRanks = 3;
  std::vector<pid_t> children;
  for (int rank = 0; rank < kRanks; ++rank) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto writer = SafetensorsWriter::OpenExisting(path, specs, metadata,
                                                    {Preallocation::kFallocate, GetParam()});
      if (!writer.ok()) ::_exit(10);
      if ((*writer)->mode() != GetParam()) ::_exit(12);
      Bytes cols = ExtractSlice(proj, {9, 12}, 4, 1, 4 * rank, 4);
      Bytes rows = ExtractSlice(qkv, {6, 4, 5}, 2, 0, 2 * rank, 2);
      bool ok = (*writer)->WriteSlice("proj.weight", 1, 4 * rank, 4, cols.data()).ok() &&
                (*writer)->WriteSlice("qkv.weight", 0, 2 * rank, 2, rows.data()).ok() &&
                (*writer)->Finish().ok();
      ::_exit(ok ? 0 : 11);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  Bytes back_proj(proj.size()), back_qkv(qkv.size());
  ASSERT_TRUE((*reader)->ReadTensor("proj.weight", back_proj.data()).ok());
  ASSERT_TRUE((*reader)->ReadTensor("qkv.weight", back_qkv.data()).ok());
  EXPECT_EQ(back_proj, proj);
  EXPECT_EQ(back_qkv, qkv);
}

INSTANTIATE_TEST_SUITE_P(WriteModes, ConcurrentSlices,
                         ::testing::Values(WriteMode::kPwrite, WriteMode::kMmap),
                         [](const auto& info) {
                           return info.param == WriteMode::kPwrite ? "Pwrite" : "Mmap";
                         });

TEST(SafetensorsWriter, OpenExistingRejectsAFileMadeForOtherTensors) {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  const std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {2, 3}},
                                         {"b", DType::kBFloat16, {4}}};
  ASSERT_TRUE(SafetensorsWriter::Create(path, specs, {{"k", "v"}}).ok());
  EXPECT_TRUE(SafetensorsWriter::OpenExisting(path, specs, {{"k", "v"}}).ok());

  auto other_shape = specs;
  other_shape[1].shape = {2, 2};
  ExpectError(SafetensorsWriter::OpenExisting(path, other_shape, {{"k", "v"}}).status(),
              absl::StatusCode::kFailedPrecondition, {"tensor 'b'", "BF16 [4]", "BF16 [2, 2]"});
  auto other_dtype = specs;
  other_dtype[0].dtype = DType::kFloat16;
  ExpectError(SafetensorsWriter::OpenExisting(path, other_dtype, {{"k", "v"}}).status(),
              absl::StatusCode::kFailedPrecondition, {"tensor 'a'"});
  auto renamed = specs;
  renamed[0].name = "z";
  ExpectError(SafetensorsWriter::OpenExisting(path, renamed, {{"k", "v"}}).status(),
              absl::StatusCode::kFailedPrecondition, {"no tensor 'z'"});
  ExpectError(SafetensorsWriter::OpenExisting(path, specs, {{"k", "w"}}).status(),
              absl::StatusCode::kFailedPrecondition, {"__metadata__"});
  ExpectError(SafetensorsWriter::OpenExisting(dir.File("missing"), specs, {}).status(),
              absl::StatusCode::kNotFound, {"missing"});
  testing::WriteBytes(dir.File("junk"), "short");
  ExpectError(SafetensorsWriter::OpenExisting(dir.File("junk"), specs, {}).status(),
              absl::StatusCode::kFailedPrecondition, {"complete safetensors header"});
}

TEST(SafetensorsWriter, RejectsInvalidSpecsAndLateWrites) {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  ExpectError(SafetensorsWriter::Create(
                  path, {{"a", DType::kFloat32, {2}}, {"a", DType::kFloat32, {3}}}, {})
                  .status(),
              absl::StatusCode::kInvalidArgument, {"'a' is listed twice"});
  ExpectError(SafetensorsWriter::Create(path, {{"a", DType::kFloat32, {2, -1}}}, {}).status(),
              absl::StatusCode::kInvalidArgument, {"'a'", "shape[1] is -1"});
  ExpectError(
      SafetensorsWriter::Create(path, {{"__metadata__", DType::kFloat32, {1}}}, {}).status(),
      absl::StatusCode::kInvalidArgument, {"reserved"});
  ExpectError(SafetensorsWriter::Create(path, {{"", DType::kFloat32, {1}}}, {}).status(),
              absl::StatusCode::kInvalidArgument, {"empty name"});
  ExpectError(
      SafetensorsWriter::Create(path, {{"huge", DType::kFloat32, {1LL << 40, 1LL << 40}}}, {})
          .status(),
      absl::StatusCode::kInvalidArgument, {"'huge'", "2^64"});
  ExpectError(SafetensorsWriter::Create(path, {{"bad\xff", DType::kFloat32, {1}}}, {}).status(),
              absl::StatusCode::kInvalidArgument, {"UTF-8"});
  ExpectError(SafetensorsWriter::Create(dir.File("no/such/dir.safetensors"), {}, {}).status(),
              absl::StatusCode::kNotFound, {"no/such/dir"});

  auto writer = SafetensorsWriter::Create(path, {{"a", DType::kFloat32, {2, 2}}}, {});
  ASSERT_TRUE(writer.ok());
  float values[4] = {1, 2, 3, 4};
  ExpectError((*writer)->WriteSlice("b", 0, 0, 1, values), absl::StatusCode::kNotFound, {"'b'"});
  ExpectError((*writer)->WriteSlice("a", 0, 1, 2, values), absl::StatusCode::kInvalidArgument,
              {"'a'", "not within [0, 2]"});
  ASSERT_TRUE((*writer)->WriteTensor("a", values).ok());
  EXPECT_EQ((*writer)->bytes_written(), 16u);
  ASSERT_TRUE((*writer)->Finish().ok());
  ExpectError((*writer)->WriteTensor("a", values), absl::StatusCode::kFailedPrecondition,
              {"after Finish"});
  ExpectError((*writer)->Finish(), absl::StatusCode::kFailedPrecondition, {"twice"});
}

TEST(SafetensorsWriter, MmapModeNeedsReservedBlocksAndFallsBackToPwrite) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {3, 3}}};
  const Bytes a = Pattern(36, 4);
  auto sparse = SafetensorsWriter::Create(dir.File("sparse"), specs, {},
                                          {Preallocation::kTruncate, WriteMode::kMmap});
  ASSERT_TRUE(sparse.ok());
  EXPECT_EQ((*sparse)->mode(), WriteMode::kPwrite);  // no reserved blocks: no mapping
  ASSERT_TRUE((*sparse)->WriteTensor("a", a.data()).ok());
  ASSERT_TRUE((*sparse)->Finish().ok());
  auto mapped = SafetensorsWriter::Create(dir.File("mapped"), specs, {},
                                          {Preallocation::kFallocate, WriteMode::kMmap});
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ((*mapped)->mode(), WriteMode::kMmap);
  ASSERT_TRUE((*mapped)->WriteTensor("a", a.data()).ok());
  ASSERT_TRUE((*mapped)->Finish().ok());
  EXPECT_EQ(testing::ReadBytes(dir.File("sparse")), testing::ReadBytes(dir.File("mapped")));
  ExpectError((*mapped)->WriteTensor("a", a.data()), absl::StatusCode::kFailedPrecondition,
              {"after Finish"});
}

TEST(SafetensorsWriter, TruncatePreallocationGivesTheSameFile) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {3, 3}}};
  const Bytes a = Pattern(36, 3);
  for (Preallocation p : {Preallocation::kFallocate, Preallocation::kTruncate}) {
    const std::string path = dir.File(p == Preallocation::kFallocate ? "f" : "t");
    auto writer = SafetensorsWriter::Create(path, specs, {}, {p});
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(testing::ReadBytes(path).size(), (*writer)->file_size());
    ASSERT_TRUE((*writer)->WriteTensor("a", a.data()).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  EXPECT_EQ(testing::ReadBytes(dir.File("f")), testing::ReadBytes(dir.File("t")));
}

}  // namespace
}  // namespace gptb::checkpoint
