// Interoperability with an independent implementation: reference_safetensors.py writes and reads
// safetensors files by hand with numpy (Debian has no python3-safetensors).

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/checkpoint/safetensors_test_util.h"

namespace gptb::checkpoint {
namespace {

using testing::TempDir;

const char kScript[] = GPTB_SOURCE_DIR "/tests/unit/checkpoint/reference_safetensors.py";

// Runs the reference script with Debian's interpreter (the one with numpy); returns its exit code.
int RunScript(const std::string& args) {
  const std::string command = std::string(GPTB_PYTHON) + " " + kScript + " " + args;
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

float Bf16ToFloat(uint16_t bits) {
  uint32_t wide = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

uint16_t FloatToBf16Exact(float f) {  // only for values bf16 holds exactly
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  EXPECT_EQ(bits & 0xFFFF, 0u) << f << " is not exact in bfloat16";
  return static_cast<uint16_t>(bits >> 16);
}

float HalfToFloat(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

uint16_t FloatToHalfExact(float f) {  // only for normal values with <= 11 significant bits
  if (f == 0) return 0;
  int exponent;
  float fraction = std::frexp(f, &exponent);  // f = fraction * 2^exponent, fraction in [0.5, 1)
  uint16_t mantissa = static_cast<uint16_t>(std::ldexp(fraction, 11)) & 0x3FF;
  return static_cast<uint16_t>(((exponent + 14) << 10) | mantissa);
}

template <typename T>
std::vector<T> AsVector(const std::string& bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

class PythonWrittenFileTest : public ::testing::TestWithParam<ReadMode> {};

TEST_P(PythonWrittenFileTest, ReaderMatchesNumpyBytesAndValues) {
  TempDir dir;
  ASSERT_EQ(RunScript("write " + dir.path()), 0);
  std::ifstream expected_file(dir.File("expected.json"));
  const nlohmann::json expected = nlohmann::json::parse(expected_file);

  auto reader = SafetensorsReader::Open(dir.File("reference.safetensors"), {GetParam(), {}, {}});
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"producer", "numpy by hand"}}));
  ASSERT_EQ((*reader)->tensors().size(), expected.size());

  for (const auto& [name, want] : expected.items()) {
    SCOPED_TRACE(name);
    auto info = (*reader)->Find(name);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(SafetensorsCode((*info)->dtype), want["dtype"].get<std::string>());
    EXPECT_EQ((*info)->shape, want["shape"].get<std::vector<int64_t>>());
    std::string bytes((*info)->nbytes(), '\0');
    ASSERT_TRUE((*reader)->ReadTensor(name, bytes.data()).ok());
    EXPECT_EQ(bytes, testing::ReadBytes(dir.File(name + ".bin")));

    const nlohmann::json& values = want["values"];
    ASSERT_EQ(values.size(), (*info)->numel());
    for (size_t i = 0; i < values.size(); ++i) {
      switch ((*info)->dtype) {
        case DType::kFloat32:
          EXPECT_EQ(AsVector<float>(bytes)[i], values[i].get<float>()) << i;
          break;
        case DType::kBFloat16:
          EXPECT_EQ(Bf16ToFloat(AsVector<uint16_t>(bytes)[i]), values[i].get<float>()) << i;
          break;
        case DType::kFloat16:
          EXPECT_EQ(HalfToFloat(AsVector<uint16_t>(bytes)[i]), values[i].get<float>()) << i;
          break;
        case DType::kFloat64:
          EXPECT_EQ(AsVector<double>(bytes)[i], values[i].get<double>()) << i;
          break;
        case DType::kInt64:
          EXPECT_EQ(AsVector<int64_t>(bytes)[i], values[i].get<int64_t>()) << i;
          break;
        case DType::kInt32:
          EXPECT_EQ(AsVector<int32_t>(bytes)[i], values[i].get<int32_t>()) << i;
          break;
        case DType::kUInt8:
          EXPECT_EQ(AsVector<uint8_t>(bytes)[i], values[i].get<uint8_t>()) << i;
          break;
        case DType::kBool:
          EXPECT_EQ(AsVector<uint8_t>(bytes)[i] != 0, values[i].get<bool>()) << i;
          break;
        default:
          ADD_FAILURE() << "the script wrote an unexpected dtype";
      }
    }
  }

  // Columns [1, 4) of the 3x5 float32 matrix: strided reads of an independently written file.
  std::vector<float> cols(3 * 3);
  ASSERT_TRUE((*reader)->ReadSlice("model.embed.weight", 1, 1, 3, cols.data()).ok());
  const nlohmann::json& matrix = expected["model.embed.weight"]["values"];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(cols[r * 3 + c], matrix[r * 5 + c + 1].get<float>()) << r << "," << c;
    }
  }
  // The middle plane along dim 1 of the 2x3x4 float16 cube.
  std::vector<uint16_t> plane(2 * 1 * 4);
  ASSERT_TRUE((*reader)->ReadSlice("layers.0.f16", 1, 1, 1, plane.data()).ok());
  const nlohmann::json& cube = expected["layers.0.f16"]["values"];
  for (int a = 0; a < 2; ++a) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(HalfToFloat(plane[a * 4 + c]), cube[a * 12 + 4 + c].get<float>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PythonWrittenFileTest,
                         ::testing::Values(ReadMode::kMmap, ReadMode::kPread),
                         [](const auto& info) {
                           return info.param == ReadMode::kMmap ? "Mmap" : "Pread";
                         });

// The C++ writer's file, written slice by slice, parsed and checked by numpy. The values are the
// formulas reference_safetensors.py's `verify` recomputes.
TEST(PythonReadsWriterOutput, NumpyVerifiesEveryTensor) {
  TempDir dir;
  const std::string path = dir.File("cpp.safetensors");
  const std::vector<TensorSpec> specs = {{"w.f32", DType::kFloat32, {4, 6}},
                                         {"w.bf16", DType::kBFloat16, {3, 5}},
                                         {"w.i64", DType::kInt64, {5}},
                                         {"w.mask", DType::kBool, {4}},
                                         {"w.f16", DType::kFloat16, {2, 2, 2}}};
  auto writer =
      SafetensorsWriter::Create(path, specs, {{"writer", "gptbuilder"}, {"format", "pt"}});
  ASSERT_TRUE(writer.ok()) << writer.status();

  std::vector<float> f32(24);
  for (int i = 0; i < 24; ++i) f32[i] = i * 0.5f - 3.0f;
  // Column blocks [0, 2), [2, 6) of the 4x6 matrix, each gathered into a dense 4xk block.
  for (auto [start, length] : {std::pair<int, int>{0, 2}, {2, 4}}) {
    std::vector<float> block;
    for (int r = 0; r < 4; ++r) {
      for (int c = start; c < start + length; ++c) block.push_back(f32[r * 6 + c]);
    }
    ASSERT_TRUE((*writer)->WriteSlice("w.f32", 1, start, length, block.data()).ok());
  }
  std::vector<uint16_t> bf16(15);
  for (int i = 0; i < 15; ++i) bf16[i] = FloatToBf16Exact(i * 0.5f - 3.0f);
  ASSERT_TRUE((*writer)->WriteSlice("w.bf16", 0, 0, 1, bf16.data()).ok());
  ASSERT_TRUE((*writer)->WriteSlice("w.bf16", 0, 1, 2, bf16.data() + 5).ok());
  std::vector<int64_t> i64(5);
  for (int i = 0; i < 5; ++i) i64[i] = int64_t{i} * 1000003 - 7;
  ASSERT_TRUE((*writer)->WriteTensor("w.i64", i64.data()).ok());
  const uint8_t mask[4] = {1, 0, 0, 1};
  ASSERT_TRUE((*writer)->WriteTensor("w.mask", mask).ok());
  std::vector<uint16_t> f16(8);
  for (int i = 0; i < 8; ++i) {
    f16[i] = FloatToHalfExact(i * 0.5f);
    ASSERT_EQ(HalfToFloat(f16[i]), i * 0.5f);
  }
  ASSERT_TRUE((*writer)->WriteTensor("w.f16", f16.data()).ok());
  ASSERT_TRUE((*writer)->Finish().ok());

  EXPECT_EQ(RunScript("verify " + path), 0);
}

// The script's checks can fail: a file with one wrong value is rejected.
TEST(PythonReadsWriterOutput, NumpyRejectsAWrongValue) {
  TempDir dir;
  const std::string path = dir.File("wrong.safetensors");
  const std::vector<TensorSpec> specs = {{"w.f32", DType::kFloat32, {4, 6}},
                                         {"w.bf16", DType::kBFloat16, {3, 5}},
                                         {"w.i64", DType::kInt64, {5}},
                                         {"w.mask", DType::kBool, {4}},
                                         {"w.f16", DType::kFloat16, {2, 2, 2}}};
  auto writer =
      SafetensorsWriter::Create(path, specs, {{"writer", "gptbuilder"}, {"format", "pt"}});
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Finish().ok());  // every tensor left as zeros
  EXPECT_EQ(RunScript("verify " + path + " 2>/dev/null"), 1);
}

}  // namespace
}  // namespace gptb::checkpoint
