#include "core/checkpoint/safetensors_dtype.h"

#include <array>

namespace gptb::checkpoint {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view safetensors_name;
  std::string_view torch_name;
  size_t item_size;
};

// One row per enum value, in enum order: the single table every lookup reads.
constexpr std::array<DTypeRow, 17> kDTypes = {{
    {DType::kFloat32, "F32", "float32", 4},
    {DType::kBFloat16, "BF16", "bfloat16", 2},
    {DType::kFloat16, "F16", "float16", 2},
    {DType::kFloat64, "F64", "float64", 8},
    {DType::kInt64, "I64", "int64", 8},
    {DType::kInt32, "I32", "int32", 4},
    {DType::kInt16, "I16", "int16", 2},
    {DType::kInt8, "I8", "int8", 1},
    {DType::kUInt64, "U64", "uint64", 8},
    {DType::kUInt32, "U32", "uint32", 4},
    {DType::kUInt16, "U16", "uint16", 2},
    {DType::kUInt8, "U8", "uint8", 1},
    {DType::kBool, "BOOL", "bool", 1},
    {DType::kFloat8E4M3, "F8_E4M3", "float8_e4m3fn", 1},
    {DType::kFloat8E5M2, "F8_E5M2", "float8_e5m2", 1},
    {DType::kFloat8E8M0, "F8_E8M0", "float8_e8m0fnu", 1},
    {DType::kComplex64, "C64", "complex64", 8},
}};

constexpr bool TableInEnumOrder() {
  for (size_t i = 0; i < kDTypes.size(); ++i) {
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  }
  return true;
}
static_assert(TableInEnumOrder(), "kDTypes rows must follow the DType enum order");

const DTypeRow& Row(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

}  // namespace

std::string_view SafetensorsName(DType dtype) { return Row(dtype).safetensors_name; }

size_t ItemSize(DType dtype) { return Row(dtype).item_size; }

std::string_view TorchName(DType dtype) { return Row(dtype).torch_name; }

std::optional<DType> ParseSafetensorsName(std::string_view name) {
  for (const DTypeRow& row : kDTypes) {
    if (row.safetensors_name == name) return row.dtype;
  }
  return std::nullopt;
}

std::optional<DType> ParseTorchName(std::string_view name) {
  for (const DTypeRow& row : kDTypes) {
    if (row.torch_name == name) return row.dtype;
  }
  return std::nullopt;
}

std::string_view KnownSafetensorsNames() {
  return "F32, BF16, F16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, "
         "F8_E8M0, C64";
}

}  // namespace gptb::checkpoint
