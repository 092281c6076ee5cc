#include "core/model/torch_dtype.h"

#include <c10/core/ScalarType.h>

#include "gtest/gtest.h"

namespace gptb::model {
namespace {

// LibTorch is the independent reference here: the table's element size of every DType must be
// LibTorch's for the scalar type it maps to, and the mapping must go both ways.
TEST(TorchDType, EveryDTypeMapsToATorchTypeOfTheSameSize) {
  for (int i = 0; i <= static_cast<int>(DType::kComplex64); ++i) {
    const auto dtype = static_cast<DType>(i);
    const c10::ScalarType type = TorchScalarType(dtype);
    EXPECT_EQ(c10::elementSize(type), DTypeSize(dtype)) << DTypeName(dtype);
    EXPECT_EQ(DTypeOfTorch(type), dtype) << DTypeName(dtype);
  }
}

TEST(TorchDType, ParameterDTypes) {
  EXPECT_EQ(TorchScalarType(DType::kFloat32), c10::ScalarType::Float);
  EXPECT_EQ(TorchScalarType(DType::kBFloat16), c10::ScalarType::BFloat16);
  EXPECT_EQ(TorchScalarType(DType::kFloat16), c10::ScalarType::Half);
}

TEST(TorchDType, TypesOutsideTheTableHaveNoDType) {
  EXPECT_EQ(DTypeOfTorch(c10::ScalarType::ComplexDouble), std::nullopt);
  EXPECT_EQ(DTypeOfTorch(c10::ScalarType::QInt8), std::nullopt);
}

}  // namespace
}  // namespace gptb::model
