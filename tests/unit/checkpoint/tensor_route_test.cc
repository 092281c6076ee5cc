// Routes from canonical tensors to stored tensors: transposes, segment reads and writes along
// both dims, padding gaps, validation errors.
#include "core/checkpoint/tensor_route.h"

#include <cstring>
#include <filesystem>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("gptb_route_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

TEST(TransposeBlock, EveryItemSizeAndStride) {
  for (size_t item : {1u, 2u, 3u, 4u, 8u}) {
    const int64_t rows = 37, cols = 45, in_stride = 50, out_stride = 40;
    std::vector<unsigned char> in(rows * in_stride * item), out(cols * out_stride * item, 0xee);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<unsigned char>(i * 7 + 3);
    TransposeBlock(in.data(), in_stride, rows, cols, item, out.data(), out_stride);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(
            std::memcmp(&out[(c * out_stride + r) * item], &in[(r * in_stride + c) * item], item),
            0)
            << "item " << item << " r " << r << " c " << c;
      }
    }
    // Outside the block, the output is untouched.
    EXPECT_EQ(out[(0 * out_stride + rows) * item], 0xee);
  }
}

// A canonical [10, 6] tensor, value 100 r + c, stored as: rows 0-2 in a[1..4), rows 3-6 as
// columns of b (transposed), row 7 not stored (padding), rows 8-9 in a[5..7).
class RouteTest : public ::testing::Test {
 protected:
  static constexpr int64_t kRows = 10, kCols = 6;
  void SetUp() override {
    route_ = {"canon",
              {kRows, kCols},
              {{0, 3, "a", 1, false}, {3, 4, "b", 0, true}, {8, 2, "a", 5, false}}};
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < kCols; ++c)
        canonical_[r * kCols + c] = static_cast<float>(100 * r + c);
    }
    dir_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    absl::StatusOr<std::vector<TensorSpec>> specs = StoredTensorSpecs({route_}, {DType::kFloat32});
    ASSERT_TRUE(specs.ok()) << specs.status();
    ASSERT_EQ(specs->size(), 2u);
    EXPECT_EQ((*specs)[0].name, "a");
    EXPECT_EQ((*specs)[0].shape, (std::vector<int64_t>{7, kCols}));
    EXPECT_EQ((*specs)[1].name, "b");
    EXPECT_EQ((*specs)[1].shape, (std::vector<int64_t>{kCols, 4}));
    absl::StatusOr<std::vector<ShardPlan>> shards = PlanShards(*specs, 1 << 20);
    ASSERT_TRUE(shards.ok());
    auto writer = ShardedSafetensorsWriter::Create(dir_, *shards, {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    // Written in two dim-0 blocks, as two TP ranks would.
    ASSERT_TRUE(WriteRoute(**writer, route_, 0, 0, 5, canonical_, 4).ok());
    ASSERT_TRUE(WriteRoute(**writer, route_, 0, 5, 5, canonical_ + 5 * kCols, 4).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
    auto reader = ShardedSafetensorsReader::Open(dir_);
    ASSERT_TRUE(reader.ok()) << reader.status();
    reader_ = *std::move(reader);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TensorRoute route_;
  float canonical_[kRows * kCols];
  std::string dir_;
  std::unique_ptr<ShardedSafetensorsReader> reader_;
};

TEST_F(RouteTest, StoredBytesFollowTheSegments) {
  std::vector<float> a(7 * kCols), b(kCols * 4);
  ASSERT_TRUE(reader_->ReadTensor("a", a.data()).ok());
  ASSERT_TRUE(reader_->ReadTensor("b", b.data()).ok());
  for (int64_t c = 0; c < kCols; ++c) {
    EXPECT_EQ(a[0 * kCols + c], 0.0f);  // never written
    EXPECT_EQ(a[1 * kCols + c], 100 * 0 + c);
    EXPECT_EQ(a[3 * kCols + c], 100 * 2 + c);
    EXPECT_EQ(a[5 * kCols + c], 100 * 8 + c);
    EXPECT_EQ(a[6 * kCols + c], 100 * 9 + c);
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(b[c * 4 + j], 100 * (3 + j) + c);
  }
}

TEST_F(RouteTest, ReadsRowBlocksAndReportsGaps) {
  absl::StatusOr<DType> dtype = ValidateRoute(*reader_, route_);
  ASSERT_TRUE(dtype.ok()) << dtype.status();
  EXPECT_EQ(*dtype, DType::kFloat32);
  for (auto [start, length] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 10}, {2, 7}, {4, 2}, {7, 1}}) {
    std::vector<float> out(length * kCols, -1.0f);
    absl::StatusOr<std::vector<RowRange>> gaps =
        ReadRoute(*reader_, route_, 0, start, length, out.data());
    ASSERT_TRUE(gaps.ok()) << gaps.status();
    const bool has_gap = start <= 7 && 7 < start + length;
    const std::vector<RowRange> expected_gaps =
        has_gap ? std::vector<RowRange>{{7, 1}} : std::vector<RowRange>{};
    EXPECT_EQ(*gaps, expected_gaps);
    for (int64_t r = start; r < start + length; ++r) {
      for (int64_t c = 0; c < kCols; ++c) {
        EXPECT_EQ(out[(r - start) * kCols + c], r == 7 ? -1.0f : canonical_[r * kCols + c])
            << "r " << r << " c " << c;
      }
    }
  }
}

TEST_F(RouteTest, ReadsColumnBlocks) {
  for (auto [start, length] : std::vector<std::pair<int64_t, int64_t>>{{0, 6}, {1, 3}, {5, 1}}) {
    std::vector<float> out(kRows * length, -1.0f);
    absl::StatusOr<std::vector<RowRange>> gaps =
        ReadRoute(*reader_, route_, 1, start, length, out.data());
    ASSERT_TRUE(gaps.ok()) << gaps.status();
    EXPECT_EQ(*gaps, (std::vector<RowRange>{{7, 1}}));
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < length; ++c) {
        EXPECT_EQ(out[r * length + c], r == 7 ? -1.0f : canonical_[r * kCols + start + c]);
      }
    }
  }
}

TEST_F(RouteTest, BadRequestsAndPartialColumnWrites) {
  std::vector<float> out(kRows * kCols);
  EXPECT_EQ(ReadRoute(*reader_, route_, 2, 0, 1, out.data()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadRoute(*reader_, route_, 0, 8, 3, out.data()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto writer = ShardedSafetensorsWriter::OpenExisting(
      dir_, *PlanShards(*StoredTensorSpecs({route_}, {DType::kFloat32}), 1 << 20), {});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(WriteRoute(**writer, route_, 1, 0, 2, out.data(), 4).code(),
            absl::StatusCode::kUnimplemented);
}

TEST(Route, ColumnWritesOfWholeTensors) {
  // A row-parallel weight [4, 6] stored transposed (GPT-2's Conv1D): written in column blocks.
  const std::string dir = TempDir("columns");
  const TensorRoute route{"w", {4, 6}, {{0, 4, "conv", 0, true}}};
  const TensorRoute plain{"p", {4, 6}, {{0, 4, "p", 0, false}}};
  std::vector<float> w(24);
  std::iota(w.begin(), w.end(), 0.0f);
  auto specs = StoredTensorSpecs({route, plain}, {DType::kFloat32, DType::kFloat32});
  ASSERT_TRUE(specs.ok());
  auto writer = ShardedSafetensorsWriter::Create(dir, *PlanShards(*specs, 1 << 20), {});
  ASSERT_TRUE(writer.ok());
  for (int64_t start : {0, 2, 4}) {
    std::vector<float> block(4 * 2);
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t c = 0; c < 2; ++c) block[r * 2 + c] = w[r * 6 + start + c];
    }
    ASSERT_TRUE(WriteRoute(**writer, route, 1, start, 2, block.data(), 4).ok());
    ASSERT_TRUE(WriteRoute(**writer, plain, 1, start, 2, block.data(), 4).ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok());
  std::vector<float> conv(24), p(24), back(24);
  ASSERT_TRUE((*reader)->ReadTensor("conv", conv.data()).ok());
  ASSERT_TRUE((*reader)->ReadTensor("p", p.data()).ok());
  EXPECT_EQ(p, w);
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(conv[c * 4 + r], w[r * 6 + c]);
  }
  ASSERT_TRUE(ReadRoute(**reader, route, 0, 0, 4, back.data()).ok());
  EXPECT_EQ(back, w);
  fs::remove_all(dir);
}

TEST(Route, ValidationNamesTheProblem) {
  const std::string dir = TempDir("validate");
  auto writer = SafetensorsWriter::Create(dir + "/model.safetensors",
                                          {{"a", DType::kFloat32, {4, 3}},
                                           {"h", DType::kBFloat16, {4, 3}},
                                           {"v", DType::kFloat32, {5}}},
                                          {});
  ASSERT_TRUE(writer.ok());
  std::vector<unsigned char> zeros(64, 0);
  ASSERT_TRUE((*writer)->WriteTensor("a", zeros.data()).ok());
  ASSERT_TRUE((*writer)->WriteTensor("h", zeros.data()).ok());
  ASSERT_TRUE((*writer)->WriteTensor("v", zeros.data()).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok());
  auto message = [&](const TensorRoute& route) {
    absl::StatusOr<DType> d = ValidateRoute(**reader, route);
    EXPECT_FALSE(d.ok());
    return std::string(d.status().message());
  };
  EXPECT_THAT(message({"x", {4, 3}, {{0, 4, "missing", 0, false}}}),
              ::testing::HasSubstr("'missing'"));
  EXPECT_THAT(message({"x", {4, 2}, {{0, 4, "a", 0, false}}}), ::testing::HasSubstr("[4, 3]"));
  EXPECT_THAT(message({"x", {6, 3}, {{0, 3, "a", 2, false}}}), ::testing::HasSubstr("at least"));
  EXPECT_THAT(message({"x", {4, 3}, {{0, 2, "a", 0, false}, {1, 2, "a", 2, false}}}),
              ::testing::HasSubstr("overlap"));
  EXPECT_THAT(message({"x", {4, 3}, {{0, 2, "a", 0, false}, {2, 2, "h", 2, false}}}),
              ::testing::HasSubstr("different dtypes"));
  EXPECT_THAT(message({"x", {3, 4}, {{0, 3, "v", 0, true}}}), ::testing::HasSubstr("transposed"));
  EXPECT_TRUE(ValidateRoute(**reader, {"x", {3, 5}, {{0, 3, "a", 0, true}}}).status().code() !=
              absl::StatusCode::kOk);
  EXPECT_TRUE(ValidateRoute(**reader, {"x", {5, 4}, {{0, 3, "a", 0, true}}}).ok());
  fs::remove_all(dir);
}

TEST(Route, StoredSpecsRejectInconsistentUse) {
  const TensorRoute a{"a", {4, 3}, {{0, 4, "t", 0, false}}};
  const TensorRoute b{"b", {4, 5}, {{0, 4, "t", 4, false}}};
  EXPECT_EQ(StoredTensorSpecs({a, b}, {DType::kFloat32, DType::kFloat32}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StoredTensorSpecs({a, a}, {DType::kFloat32, DType::kBFloat16}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StoredTensorSpecs({a}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Route, IdentityRouteClampsToStoredRows) {
  EXPECT_EQ(IdentityRoute("e", {1152, 8}, 1024).segments[0].rows, 1024);
  EXPECT_EQ(IdentityRoute("e", {1024, 8}, 1152).segments[0].rows, 1024);
  EXPECT_EQ(IdentityRoute("e", {1024, 8}, 1152).segments[0].tensor, "e");
}

// transformers' fused experts (GPT-OSS): expert e's canonical [gate; up] weight [2f, h] lies in
// slice e of a stacked [E, h, 2f] tensor, transposed, gate and up interleaved along the last
// axis; its [2f] bias in slice e of [E, 2f], interleaved. Both experts written whole, read back
// along both dims, and the stored values checked element by element.
TEST(StackedRoute, InterleavedTransposedExpertsRoundTrip) {
  constexpr int64_t kExperts = 2, kF = 3, kH = 4;
  auto weight_route = [](int64_t e) {
    return TensorRoute{absl::StrCat("fc1.", e),
                       {2 * kF, kH},
                       {{0, kF, "gate_up", 0, true, e, 2}, {kF, kF, "gate_up", 1, true, e, 2}}};
  };
  auto bias_route = [](int64_t e) {
    return TensorRoute{
        absl::StrCat("bias.", e),
        {2 * kF},
        {{0, kF, "gate_up_bias", 0, false, e, 2}, {kF, kF, "gate_up_bias", 1, false, e, 2}}};
  };
  std::vector<TensorRoute> routes;
  for (int64_t e = 0; e < kExperts; ++e) {
    routes.push_back(weight_route(e));
    routes.push_back(bias_route(e));
  }
  absl::StatusOr<std::vector<TensorSpec>> specs =
      StoredTensorSpecs(routes, std::vector<DType>(routes.size(), DType::kFloat32));
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].shape, (std::vector<int64_t>{kExperts, kH, 2 * kF}));
  EXPECT_EQ((*specs)[1].shape, (std::vector<int64_t>{kExperts, 2 * kF}));
  const std::string dir = TempDir("stacked");
  absl::StatusOr<std::vector<ShardPlan>> shards = PlanShards(*specs, 1 << 20);
  ASSERT_TRUE(shards.ok());
  auto writer = ShardedSafetensorsWriter::Create(dir, *shards, {});
  ASSERT_TRUE(writer.ok()) << writer.status();
  // Canonical value: 1000 e + 10 row + column (bias: 1000 e + row).
  auto weight = [](int64_t e, int64_t r, int64_t c) { return float(1000 * e + 10 * r + c); };
  for (int64_t e = 0; e < kExperts; ++e) {
    std::vector<float> w(2 * kF * kH), b(2 * kF);
    for (int64_t r = 0; r < 2 * kF; ++r) {
      b[r] = float(1000 * e + r);
      for (int64_t c = 0; c < kH; ++c) w[r * kH + c] = weight(e, r, c);
    }
    // A part of the rows is refused: a stored slice is written whole.
    EXPECT_EQ(WriteRoute(**writer, weight_route(e), 0, 0, kF, w.data(), 4).code(),
              absl::StatusCode::kUnimplemented);
    ASSERT_TRUE(WriteRoute(**writer, weight_route(e), 0, 0, 2 * kF, w.data(), 4).ok());
    ASSERT_TRUE(WriteRoute(**writer, bias_route(e), 0, 0, 2 * kF, b.data(), 4).ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok()) << reader.status();
  // Stored: gate_up[e][c][2 j] = gate row j, gate_up[e][c][2 j + 1] = up row j (= row kF + j).
  std::vector<float> stored(kExperts * kH * 2 * kF);
  ASSERT_TRUE((*reader)->ReadTensor("gate_up", stored.data()).ok());
  for (int64_t e = 0; e < kExperts; ++e) {
    for (int64_t c = 0; c < kH; ++c) {
      for (int64_t j = 0; j < kF; ++j) {
        const float* at = &stored[(e * kH + c) * 2 * kF + 2 * j];
        EXPECT_EQ(at[0], weight(e, j, c));
        EXPECT_EQ(at[1], weight(e, kF + j, c));
      }
    }
  }
  std::vector<float> stored_bias(kExperts * 2 * kF);
  ASSERT_TRUE((*reader)->ReadTensor("gate_up_bias", stored_bias.data()).ok());
  EXPECT_EQ(stored_bias[2 * kF + 1], 1000.0f + kF);  // expert 1, up row 0
  for (int64_t e = 0; e < kExperts; ++e) {
    ASSERT_TRUE(ValidateRoute(**reader, weight_route(e)).ok());
    // Rows 2..5 along dim 0, columns 1..3 along dim 1.
    std::vector<float> rows(4 * kH), cols(2 * kF * 2);
    absl::StatusOr<std::vector<RowRange>> gaps =
        ReadRoute(**reader, weight_route(e), 0, 2, 4, rows.data());
    ASSERT_TRUE(gaps.ok()) << gaps.status();
    EXPECT_TRUE(gaps->empty());
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t c = 0; c < kH; ++c) EXPECT_EQ(rows[r * kH + c], weight(e, 2 + r, c));
    }
    ASSERT_TRUE(ReadRoute(**reader, weight_route(e), 1, 1, 2, cols.data()).ok());
    for (int64_t r = 0; r < 2 * kF; ++r) {
      for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(cols[r * 2 + c], weight(e, r, 1 + c));
    }
  }
  // A slice past the stacked tensor's experts is named.
  absl::StatusOr<DType> bad = ValidateRoute(**reader, weight_route(kExperts));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gptb::checkpoint
