#ifndef GPTB_CORE_DTYPE_DTYPE_H_
#define GPTB_CORE_DTYPE_DTYPE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gptb {

// Element types, one table for the whole project (core/dtype/dtype.cc): the plan's parameter
// dtypes, the initializer's output encodings and every element type a safetensors file can hold.
// The first three are the dtypes models are built in; their enum values (0, 1, 2) are also the
// fill kernels' output codes (core/init/fill_kernel.h). Nothing here needs LibTorch: the torch
// mapping lives in core/model/torch_dtype.h.
enum class DType {
  kFloat32,
  kBFloat16,
  kFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt64,
  kUInt32,
  kUInt16,
  kUInt8,
  kBool,
  kFloat8E4M3,
  kFloat8E5M2,
  kFloat8E8M0,
  kComplex64,
};

// Names and codes are C strings so they go into absl::StrCat and protobuf setters as they are
// (Debian's Abseil has its own string_view, which std::string_view does not convert to).

// The PyTorch spelling, which is also the config schema's and the plan's: "float32", "bfloat16",
// "float16", "float64", "int64", ..., "bool", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu",
// "complex64".
const char* DTypeName(DType dtype);

// Bytes per element (1 for bool and the float8 types, 8 for complex64).
size_t DTypeSize(DType dtype);

// The code in a safetensors header: "F32", "BF16", "F16", "F64", "I64", ..., "BOOL", "F8_E4M3".
const char* SafetensorsCode(DType dtype);

// True for the dtypes a model's parameters can be built in (float32, bfloat16, float16).
bool IsParameterDType(DType dtype);

// The parameter dtypes in table order: float32, bfloat16, float16.
const std::vector<DType>& ParameterDTypes();

// Inverse of DTypeName; nullopt for an unknown name.
std::optional<DType> ParseDTypeName(std::string_view name);

// ParseDTypeName restricted to the parameter dtypes (the schema's params_dtype values).
std::optional<DType> ParseParameterDType(std::string_view name);

// Inverse of SafetensorsCode; nullopt for an unknown code (matching is exact and case-sensitive,
// as in the format's definition). Sub-byte types (F4, F6_*) are unknown here.
std::optional<DType> ParseSafetensorsCode(std::string_view code);

// Every safetensors code, comma-separated, for error messages.
const std::string& KnownSafetensorsCodes();

}  // namespace gptb

#endif  // GPTB_CORE_DTYPE_DTYPE_H_
