#include "core/dtype/dtype.h"

#include <array>
#include <string>

namespace gptb {
namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
  const char* safetensors_code;
  bool parameter;
};

// One row per enum value, in enum order: the single table every lookup reads.
constexpr std::array<DTypeRow, 17> kDTypes = {{
    {DType::kFloat32, "float32", 4, "F32", true},
    {DType::kBFloat16, "bfloat16", 2, "BF16", true},
    {DType::kFloat16, "float16", 2, "F16", true},
    {DType::kFloat64, "float64", 8, "F64", false},
    {DType::kInt64, "int64", 8, "I64", false},
    {DType::kInt32, "int32", 4, "I32", false},
    {DType::kInt16, "int16", 2, "I16", false},
    {DType::kInt8, "int8", 1, "I8", false},
    {DType::kUInt64, "uint64", 8, "U64", false},
    {DType::kUInt32, "uint32", 4, "U32", false},
    {DType::kUInt16, "uint16", 2, "U16", false},
    {DType::kUInt8, "uint8", 1, "U8", false},
    {DType::kBool, "bool", 1, "BOOL", false},
    {DType::kFloat8E4M3, "float8_e4m3fn", 1, "F8_E4M3", false},
    {DType::kFloat8E5M2, "float8_e5m2", 1, "F8_E5M2", false},
    {DType::kFloat8E8M0, "float8_e8m0fnu", 1, "F8_E8M0", false},
    {DType::kComplex64, "complex64", 8, "C64", false},
}};

constexpr bool TableInEnumOrder() {
  for (size_t i = 0; i < kDTypes.size(); ++i) {
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  }
  return true;
}
static_assert(TableInEnumOrder(), "kDTypes rows must follow the DType enum order");
static_assert(kDTypes.size() == static_cast<size_t>(DType::kComplex64) + 1,
              "kDTypes must have a row for every DType");

// An out-of-range value (a cast from a corrupt integer) reads as float32 rather than past the
// table; every caller holds a value that came from this enum.
const DTypeRow& Row(DType dtype) {
  const auto i = static_cast<size_t>(dtype);
  return i < kDTypes.size() ? kDTypes[i] : kDTypes[0];
}

}  // namespace

const char* DTypeName(DType dtype) { return Row(dtype).name; }

size_t DTypeSize(DType dtype) { return Row(dtype).size; }

const char* SafetensorsCode(DType dtype) { return Row(dtype).safetensors_code; }

bool IsParameterDType(DType dtype) { return Row(dtype).parameter; }

const std::vector<DType>& ParameterDTypes() {
  static const auto* const dtypes = [] {
    auto* v = new std::vector<DType>;
    for (const DTypeRow& row : kDTypes) {
      if (row.parameter) v->push_back(row.dtype);
    }
    return v;
  }();
  return *dtypes;
}

std::optional<DType> ParseDTypeName(std::string_view name) {
  for (const DTypeRow& row : kDTypes) {
    if (std::string_view(row.name) == name) return row.dtype;
  }
  return std::nullopt;
}

std::optional<DType> ParseParameterDType(std::string_view name) {
  std::optional<DType> dtype = ParseDTypeName(name);
  if (dtype.has_value() && !IsParameterDType(*dtype)) return std::nullopt;
  return dtype;
}

std::optional<DType> ParseSafetensorsCode(std::string_view code) {
  for (const DTypeRow& row : kDTypes) {
    if (std::string_view(row.safetensors_code) == code) return row.dtype;
  }
  return std::nullopt;
}

const std::string& KnownSafetensorsCodes() {
  static const std::string* const codes = [] {
    auto* s = new std::string;
    for (const DTypeRow& row : kDTypes) {
      if (!s->empty()) s->append(", ");
      s->append(row.safetensors_code);
    }
    return s;
  }();
  return *codes;
}

}  // namespace gptb
