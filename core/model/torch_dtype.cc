#include "core/model/torch_dtype.h"

#include <array>
#include <utility>

namespace gptb::model {
namespace {

// In DType enum order (checked below), so a lookup is an index.
constexpr std::array<std::pair<DType, c10::ScalarType>, 17> kTorchTypes = {{
    {DType::kFloat32, c10::ScalarType::Float},
    {DType::kBFloat16, c10::ScalarType::BFloat16},
    {DType::kFloat16, c10::ScalarType::Half},
    {DType::kFloat64, c10::ScalarType::Double},
    {DType::kInt64, c10::ScalarType::Long},
    {DType::kInt32, c10::ScalarType::Int},
    {DType::kInt16, c10::ScalarType::Short},
    {DType::kInt8, c10::ScalarType::Char},
    {DType::kUInt64, c10::ScalarType::UInt64},
    {DType::kUInt32, c10::ScalarType::UInt32},
    {DType::kUInt16, c10::ScalarType::UInt16},
    {DType::kUInt8, c10::ScalarType::Byte},
    {DType::kBool, c10::ScalarType::Bool},
    {DType::kFloat8E4M3, c10::ScalarType::Float8_e4m3fn},
    {DType::kFloat8E5M2, c10::ScalarType::Float8_e5m2},
    {DType::kFloat8E8M0, c10::ScalarType::Float8_e8m0fnu},
    {DType::kComplex64, c10::ScalarType::ComplexFloat},
}};

constexpr bool InEnumOrder() {
  for (size_t i = 0; i < kTorchTypes.size(); ++i) {
    if (static_cast<size_t>(kTorchTypes[i].first) != i) return false;
  }
  return kTorchTypes.size() == static_cast<size_t>(DType::kComplex64) + 1;
}
static_assert(InEnumOrder(), "kTorchTypes must have one row per DType, in enum order");

}  // namespace

c10::ScalarType TorchScalarType(DType dtype) {
  const auto i = static_cast<size_t>(dtype);
  return i < kTorchTypes.size() ? kTorchTypes[i].second : c10::ScalarType::Float;
}

std::optional<DType> DTypeOfTorch(c10::ScalarType type) {
  for (const auto& [dtype, torch_type] : kTorchTypes) {
    if (torch_type == type) return dtype;
  }
  return std::nullopt;
}

}  // namespace gptb::model
