// Every malformed or truncated input gives its own clear error, in both read modes, and never a
// crash. Files are built byte by byte so each corruption is exactly the one named.

#include <unistd.h>

#include <string>
#include <vector>

#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/checkpoint/safetensors_test_util.h"

namespace gptb::checkpoint {
namespace {

using testing::ExpectError;
using testing::RawSafetensors;
using testing::TempDir;
using Code = absl::StatusCode;

class CorruptFileTest : public ::testing::TestWithParam<ReadMode> {
 protected:
  // Writes `bytes` to a file and opens it in the parameter's mode; returns the status.
  absl::Status OpenBytes(const std::string& bytes) {
    const std::string path = dir_.File("bad.safetensors");
    testing::WriteBytes(path, bytes);
    auto reader = SafetensorsReader::Open(path, {GetParam(), {}, {}});
    if (reader.ok()) return absl::OkStatus();
    // Errors about the file's content name the file.
    if (reader.status().code() != Code::kNotFound) {
      EXPECT_THAT(std::string(reader.status().message()), ::testing::HasSubstr(path));
    }
    return reader.status();
  }
  absl::Status OpenJson(const std::string& json, size_t data_bytes) {
    return OpenBytes(RawSafetensors(json, std::string(data_bytes, '\x5a')));
  }

  TempDir dir_;
};

TEST_P(CorruptFileTest, ValidBaselineOpens) {
  EXPECT_TRUE(OpenJson(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8).ok());
  // Padding spaces after the JSON and a metadata entry are part of the format.
  EXPECT_TRUE(OpenJson(R"({"__metadata__": {"a": "b"}, "w": {"dtype": "BF16", "shape": [1, 2],)"
                       R"( "data_offsets": [0, 4]}}      )",
                       4)
                  .ok());
}

TEST_P(CorruptFileTest, MissingFileIsNotFound) {
  auto reader = SafetensorsReader::Open(dir_.File("absent.safetensors"), {GetParam(), {}, {}});
  ExpectError(reader.status(), Code::kNotFound, {"absent.safetensors"});
}

TEST_P(CorruptFileTest, FileShorterThanTheLengthPrefix) {
  ExpectError(OpenBytes(""), Code::kDataLoss, {"0 bytes", "8-byte header length"});
  ExpectError(OpenBytes("abc"), Code::kDataLoss, {"3 bytes"});
}

TEST_P(CorruptFileTest, HeaderLengthBeyondTheFile) {
  std::string bytes = RawSafetensors(R"({"w": {"dtype": "F32", "shape": [1], )"
                                     R"("data_offsets": [0, 4]}})",
                                     "1234");
  uint64_t n = 1000;
  std::memcpy(bytes.data(), &n, 8);
  ExpectError(OpenBytes(bytes), Code::kDataLoss,
              {"header length in the first 8 bytes runs past the end of the", "-byte file"});
}

TEST_P(CorruptFileTest, HeaderLengthOverTheCap) {
  std::string bytes(16, ' ');
  uint64_t n = kMaxHeaderBytes + 1;
  std::memcpy(bytes.data(), &n, 8);
  ExpectError(OpenBytes(bytes), Code::kInvalidArgument, {"exceeds the cap of 104857600 bytes"});
  n = ~uint64_t{0};  // 2^64 - 1: no arithmetic on it may wrap
  std::memcpy(bytes.data(), &n, 8);
  ExpectError(OpenBytes(bytes), Code::kInvalidArgument, {"exceeds the cap of", "bytes"});
}

TEST_P(CorruptFileTest, NotJson) {
  ExpectError(OpenJson("{not json", 0), Code::kInvalidArgument, {"not valid JSON"});
  ExpectError(OpenJson("", 0), Code::kInvalidArgument, {"not valid JSON"});
  ExpectError(OpenJson("{\"w\": 1} trailing", 0), Code::kInvalidArgument, {"not valid JSON"});
  ExpectError(OpenJson("{\"bad utf8 \xC3\x28\": 1}", 0), Code::kInvalidArgument,
              {"not valid JSON"});
}

TEST_P(CorruptFileTest, JsonThatIsNotAnObject) {
  ExpectError(OpenJson("[1, 2]", 0), Code::kInvalidArgument,
              {"JSON array", "must be a JSON object"});
  ExpectError(OpenJson("\"F32\"", 0), Code::kInvalidArgument, {"JSON string"});
  ExpectError(OpenJson(R"({"w": [1]})", 0), Code::kInvalidArgument,
              {"tensor 'w'", "entry is a JSON array"});
}

TEST_P(CorruptFileTest, MissingFields) {
  ExpectError(OpenJson(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "missing \"dtype\""});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "missing \"shape\""});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2]}})", 8), Code::kInvalidArgument,
              {"tensor 'w'", "missing \"data_offsets\""});
}

TEST_P(CorruptFileTest, UnknownOrMistypedDType) {
  ExpectError(OpenJson(R"({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "unknown dtype \"F33\"", "known: F32, BF16"});
  ExpectError(OpenJson(R"({"w": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"unknown dtype \"f32\""});
  ExpectError(OpenJson(R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "\"dtype\" is a JSON number"});
}

TEST_P(CorruptFileTest, ShapeNotListOfNonNegativeIntegers) {
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"tensor 'w': shape[1] is a negative integer"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"shape[0] is a non-integer"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"shape[0] is a JSON string"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"\"shape\" is a JSON number", "list of non-negative"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [9223372036854775808], )"
                       R"("data_offsets": [0, 8]}})",
                       8),
              Code::kInvalidArgument, {"shape[0] is 9223372036854775808", "9223372036854775807"});
}

TEST_P(CorruptFileTest, DataOffsetsMalformed) {
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "two integers"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}})", 8),
              Code::kInvalidArgument, {"two integers"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8),
              Code::kInvalidArgument, {"data_offsets[0] is a negative integer"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 8),
              Code::kInvalidArgument, {"tensor 'w'", "[8, 0] has its begin after its end"});
}

TEST_P(CorruptFileTest, ShapeAndOffsetsDisagree) {
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
              Code::kInvalidArgument,
              {"tensor 'w': shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"});
  ExpectError(OpenJson(R"({"w": {"dtype": "BF16", "shape": [], "data_offsets": [0, 4]}})", 4),
              Code::kInvalidArgument, {"shape [] of BF16 needs 2 bytes"});
}

TEST_P(CorruptFileTest, OverlappingRanges) {
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                       R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                       24),
              Code::kInvalidArgument, {"tensors 'a' [0, 16] and 'b' [8, 24] overlap"});
  // The same range twice is an overlap too.
  ExpectError(OpenJson(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                       R"( "b": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
                       4),
              Code::kInvalidArgument, {"overlap"});
}

TEST_P(CorruptFileTest, RangesOutOfBounds) {
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
              Code::kDataLoss,
              {"tensor 'a': data_offsets [0, 16] end past the data section, which has 8 bytes"});
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [100, 104]}})", 8),
              Code::kDataLoss, {"tensor 'a'", "[100, 104]"});
}

TEST_P(CorruptFileTest, HugeNumbersDoNotOverflow) {
  // shape product * item size past 2^64, with offsets that would match it after wrapping.
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                       R"( "data_offsets": [0, 0]}})",
                       0),
              Code::kInvalidArgument, {"tensor 'w'", "[4294967296, 4294967296]", "2^64 bytes"});
  // A zero dim does not hide an overflowing product of the other dims.
  ExpectError(OpenJson(R"({"w": {"dtype": "F64", "shape": [0, 4294967296, 4294967296],)"
                       R"( "data_offsets": [0, 0]}})",
                       0),
              Code::kInvalidArgument, {"2^64 bytes"});
  // The largest u64 offsets are parsed exactly and rejected by the bounds check.
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [0],)"
                       R"( "data_offsets": [18446744073709551615, 18446744073709551615]}})",
                       8),
              Code::kDataLoss, {"18446744073709551615"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2],)"
                       R"( "data_offsets": [18446744073709551615, 7]}})",
                       8),
              Code::kInvalidArgument, {"begin after its end"});
  // Past u64: JSON parses it as a float, which is not an offset.
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [2],)"
                       R"( "data_offsets": [0, 18446744073709551616]}})",
                       8),
              Code::kInvalidArgument, {"data_offsets[1] is a non-integer or out-of-range number"});
  ExpectError(OpenJson(R"({"w": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 8]}})", 8),
              Code::kInvalidArgument, {"not valid JSON"});
}

TEST_P(CorruptFileTest, TruncatedData) {
  const std::string path = dir_.File("t.safetensors");
  {
    auto writer = SafetensorsWriter::Create(
        path, {{"first", DType::kFloat32, {4}}, {"last", DType::kBFloat16, {3, 3}}}, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Finish(false).ok());
  }
  std::string bytes = testing::ReadBytes(path);
  bytes.resize(bytes.size() - 3);
  ExpectError(OpenBytes(bytes), Code::kDataLoss,
              {"tensor 'last': data_offsets [16, 34] end past the data section, which has 31 "
               "bytes (the file is truncated"});
}

TEST_P(CorruptFileTest, GapsAndTrailingBytes) {
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                       R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                       12),
              Code::kInvalidArgument, {"no tensor covers data bytes [4, 8) before tensor 'b'"});
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12),
              Code::kInvalidArgument, {"12 bytes but the tensors end at 4", "8 trailing bytes"});
  // Both are accepted when full coverage is not required.
  const std::string path = dir_.File("gap.safetensors");
  testing::WriteBytes(path, RawSafetensors(R"({"a": {"dtype": "F32", "shape": [1], )"
                                           R"("data_offsets": [4, 8]}})",
                                           std::string(12, 'x')));
  ReaderOptions lenient{GetParam(), {}, {}};
  lenient.header.require_full_coverage = false;
  auto reader = SafetensorsReader::Open(path, lenient);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->tensors()[0].file_offset, 8u + (*reader)->header().header_size + 4);
}

TEST_P(CorruptFileTest, DuplicateKeys) {
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                       R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                       8),
              Code::kInvalidArgument, {"the key 'a' twice"});
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "dtype": "F16", "shape": [1],)"
                       R"( "data_offsets": [0, 4]}})",
                       4),
              Code::kInvalidArgument, {"the key 'dtype' twice"});
}

TEST_P(CorruptFileTest, NestingDeeperThanAHeader) {
  std::string deep(100000, '[');
  ExpectError(OpenJson(R"({"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})", 4),
              Code::kInvalidArgument, {"nests deeper"});
  ExpectError(OpenJson("{\"a\": " + deep, 0), Code::kInvalidArgument, {"JSON"});
}

TEST_P(CorruptFileTest, MetadataMustBeStrings) {
  ExpectError(OpenJson(R"({"__metadata__": {"step": 3}})", 0), Code::kInvalidArgument,
              {"\"__metadata__\".'step' is a JSON number", "must be strings"});
  ExpectError(OpenJson(R"({"__metadata__": ["x"]})", 0), Code::kInvalidArgument,
              {"\"__metadata__\" is a JSON array"});
}

INSTANTIATE_TEST_SUITE_P(Modes, CorruptFileTest,
                         ::testing::Values(ReadMode::kMmap, ReadMode::kPread),
                         [](const auto& info) {
                           return info.param == ReadMode::kMmap ? "Mmap" : "Pread";
                         });

// A mapping cannot report a file that shrinks after Open (the access faults); kPread is the mode
// for files that may change underneath, and it reports the short read.
TEST(SafetensorsReader, FileTruncatedAfterOpenIsDataLossInPreadMode) {
  TempDir dir;
  const std::string path = dir.File("shrinks.safetensors");
  {
    auto writer = SafetensorsWriter::Create(path, {{"w", DType::kFloat32, {256}}}, {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Finish(false).ok());
  }
  auto reader = SafetensorsReader::Open(path, {ReadMode::kPread, {}, {}});
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  std::vector<float> out(256);
  ExpectError((*reader)->ReadTensor("w", out.data()), Code::kDataLoss,
              {path, "the file ends at byte 100", "truncated"});
}

TEST(ParseHeader, AcceptsExactlyTheFileSizeItDescribes) {
  const std::string json = R"({"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})";
  auto header = ParseHeader(json, 8 + json.size() + 16);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->data_offset, 8 + json.size());
  EXPECT_EQ(header->tensors[0].file_offset, 8 + json.size());
  EXPECT_EQ(header->tensors[0].numel(), 2u);
  ExpectError(ParseHeader(json, 8 + json.size() + 15).status(), Code::kDataLoss, {"'w'"});
  ExpectError(ParseHeader(json, 5).status(), Code::kDataLoss, {"runs past the end"});
}

TEST(ComputeSlice, CoalescesWholeRowsAndStridesTheRest) {
  TensorInfo t;
  t.name = "t";
  t.dtype = DType::kFloat32;
  t.shape = {3, 4, 5};
  t.data_end = 3 * 4 * 5 * 4;
  auto rows = ComputeSlice(t, 0, 1, 2);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->runs, 1u);
  EXPECT_EQ(rows->run_bytes, 2u * 4 * 5 * 4);
  EXPECT_EQ(rows->first_offset, 4u * 5 * 4);
  auto mid = ComputeSlice(t, 1, 1, 2);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->runs, 3u);
  EXPECT_EQ(mid->run_bytes, 2u * 5 * 4);
  EXPECT_EQ(mid->stride, 4u * 5 * 4);
  EXPECT_EQ(mid->first_offset, 5u * 4);
  auto whole = ComputeSlice(t, 2, 0, 5);  // the whole last dim: one run over the tensor
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->runs, 1u);
  EXPECT_EQ(whole->run_bytes, t.nbytes());
  auto empty = ComputeSlice(t, 1, 4, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->total_bytes(), 0u);
  // A TensorInfo whose byte count does not match its shape is refused rather than read past.
  t.data_end = 8;
  ExpectError(ComputeSlice(t, 0, 0, 3).status(), Code::kInvalidArgument,
              {"do not match its shape"});
}

}  // namespace
}  // namespace gptb::checkpoint
