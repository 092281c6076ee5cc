#include "core/dtype/dtype.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb {
namespace {

constexpr DType kAll[] = {
    DType::kFloat32,    DType::kBFloat16, DType::kFloat16, DType::kFloat64,    DType::kInt64,
    DType::kInt32,      DType::kInt16,    DType::kInt8,    DType::kUInt64,     DType::kUInt32,
    DType::kUInt16,     DType::kUInt8,    DType::kBool,    DType::kFloat8E4M3, DType::kFloat8E5M2,
    DType::kFloat8E8M0, DType::kComplex64};

TEST(DType, NamesRoundTripAndAreDistinct) {
  std::set<std::string> safetensors_codes, names;
  for (DType d : kAll) {
    EXPECT_EQ(ParseSafetensorsCode(SafetensorsCode(d)), d) << SafetensorsCode(d);
    EXPECT_EQ(ParseDTypeName(DTypeName(d)), d) << DTypeName(d);
    EXPECT_THAT(std::string(KnownSafetensorsCodes()),
                ::testing::HasSubstr(std::string(SafetensorsCode(d))));
    safetensors_codes.insert(std::string(SafetensorsCode(d)));
    names.insert(std::string(DTypeName(d)));
  }
  EXPECT_EQ(safetensors_codes.size(), std::size(kAll));
  EXPECT_EQ(names.size(), std::size(kAll));
}

TEST(DType, ParameterDTypesAreTheSchemaStrings) {
  // The config schema's params_dtype values (core/config/accepted_values.cc DtypeValues).
  EXPECT_EQ(ParseParameterDType("float32"), DType::kFloat32);
  EXPECT_EQ(ParseParameterDType("bfloat16"), DType::kBFloat16);
  EXPECT_EQ(ParseParameterDType("float16"), DType::kFloat16);
  EXPECT_EQ(ParseParameterDType("float64"), std::nullopt);  // a known dtype, not a parameter one
  EXPECT_EQ(ParseParameterDType("int8"), std::nullopt);
  int parameter_dtypes = 0;
  for (DType d : kAll) parameter_dtypes += IsParameterDType(d) ? 1 : 0;
  EXPECT_EQ(parameter_dtypes, 3);
  EXPECT_THAT(ParameterDTypes(),
              ::testing::ElementsAre(DType::kFloat32, DType::kBFloat16, DType::kFloat16));
  EXPECT_STREQ(SafetensorsCode(DType::kFloat32), "F32");
  EXPECT_STREQ(SafetensorsCode(DType::kBFloat16), "BF16");
  EXPECT_STREQ(SafetensorsCode(DType::kFloat16), "F16");
}

TEST(DType, FillKernelCodesAreTheEnumValues) {
  // core/init/fill_kernel.h's kOutF32 / kOutBf16 / kOutF16 are 0, 1, 2.
  EXPECT_EQ(static_cast<int>(DType::kFloat32), 0);
  EXPECT_EQ(static_cast<int>(DType::kBFloat16), 1);
  EXPECT_EQ(static_cast<int>(DType::kFloat16), 2);
}

TEST(DType, ElementSizes) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kFloat64), 8u);
  EXPECT_EQ(DTypeSize(DType::kInt64), 8u);
  EXPECT_EQ(DTypeSize(DType::kInt32), 4u);
  EXPECT_EQ(DTypeSize(DType::kInt16), 2u);
  EXPECT_EQ(DTypeSize(DType::kInt8), 1u);
  EXPECT_EQ(DTypeSize(DType::kUInt8), 1u);
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kFloat8E4M3), 1u);
  EXPECT_EQ(DTypeSize(DType::kComplex64), 8u);
}

TEST(DType, UnknownNamesAreRejectedExactly) {
  EXPECT_EQ(ParseSafetensorsCode("f32"), std::nullopt);  // codes are case-sensitive
  EXPECT_EQ(ParseSafetensorsCode("F4"), std::nullopt);   // sub-byte types are not supported
  EXPECT_EQ(ParseSafetensorsCode(""), std::nullopt);
  EXPECT_EQ(ParseSafetensorsCode("F32 "), std::nullopt);
  EXPECT_EQ(ParseDTypeName("fp32"), std::nullopt);
}

}  // namespace
}  // namespace gptb
