#include "core/checkpoint/safetensors_dtype.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::checkpoint {
namespace {

constexpr DType kAll[] = {
    DType::kFloat32,    DType::kBFloat16, DType::kFloat16, DType::kFloat64,    DType::kInt64,
    DType::kInt32,      DType::kInt16,    DType::kInt8,    DType::kUInt64,     DType::kUInt32,
    DType::kUInt16,     DType::kUInt8,    DType::kBool,    DType::kFloat8E4M3, DType::kFloat8E5M2,
    DType::kFloat8E8M0, DType::kComplex64};

TEST(DType, NamesRoundTripAndAreDistinct) {
  std::set<std::string> safetensors_names, torch_names;
  for (DType d : kAll) {
    EXPECT_EQ(ParseSafetensorsName(SafetensorsName(d)), d) << SafetensorsName(d);
    EXPECT_EQ(ParseTorchName(TorchName(d)), d) << TorchName(d);
    EXPECT_THAT(std::string(KnownSafetensorsNames()),
                ::testing::HasSubstr(std::string(SafetensorsName(d))));
    safetensors_names.insert(std::string(SafetensorsName(d)));
    torch_names.insert(std::string(TorchName(d)));
  }
  EXPECT_EQ(safetensors_names.size(), std::size(kAll));
  EXPECT_EQ(torch_names.size(), std::size(kAll));
}

TEST(DType, ParameterDTypesUseThePlanStrings) {
  // gptb::plan::DTypeName spells the parameter dtypes "float32", "bfloat16", "float16".
  EXPECT_EQ(ParseTorchName("float32"), DType::kFloat32);
  EXPECT_EQ(ParseTorchName("bfloat16"), DType::kBFloat16);
  EXPECT_EQ(ParseTorchName("float16"), DType::kFloat16);
  EXPECT_EQ(SafetensorsName(DType::kFloat32), "F32");
  EXPECT_EQ(SafetensorsName(DType::kBFloat16), "BF16");
  EXPECT_EQ(SafetensorsName(DType::kFloat16), "F16");
}

TEST(DType, ItemSizes) {
  EXPECT_EQ(ItemSize(DType::kFloat32), 4u);
  EXPECT_EQ(ItemSize(DType::kBFloat16), 2u);
  EXPECT_EQ(ItemSize(DType::kFloat16), 2u);
  EXPECT_EQ(ItemSize(DType::kFloat64), 8u);
  EXPECT_EQ(ItemSize(DType::kInt64), 8u);
  EXPECT_EQ(ItemSize(DType::kInt32), 4u);
  EXPECT_EQ(ItemSize(DType::kInt16), 2u);
  EXPECT_EQ(ItemSize(DType::kInt8), 1u);
  EXPECT_EQ(ItemSize(DType::kUInt8), 1u);
  EXPECT_EQ(ItemSize(DType::kBool), 1u);
  EXPECT_EQ(ItemSize(DType::kFloat8E4M3), 1u);
  EXPECT_EQ(ItemSize(DType::kComplex64), 8u);
}

TEST(DType, UnknownNamesAreRejectedExactly) {
  EXPECT_EQ(ParseSafetensorsName("f32"), std::nullopt);  // names are case-sensitive
  EXPECT_EQ(ParseSafetensorsName("F4"), std::nullopt);   // sub-byte types are not supported
  EXPECT_EQ(ParseSafetensorsName(""), std::nullopt);
  EXPECT_EQ(ParseSafetensorsName("F32 "), std::nullopt);
  EXPECT_EQ(ParseTorchName("fp32"), std::nullopt);
}

}  // namespace
}  // namespace gptb::checkpoint
