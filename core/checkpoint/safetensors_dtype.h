#ifndef GPTB_CORE_CHECKPOINT_SAFETENSORS_DTYPE_H_
#define GPTB_CORE_CHECKPOINT_SAFETENSORS_DTYPE_H_

#include <cstddef>
#include <optional>
#include <string_view>

// safetensors stores every element little-endian and this library copies bytes without swapping,
// so it only builds for little-endian hosts (x86-64, aarch64 in its usual mode).
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gptb_core_safetensors assumes a little-endian host"
#endif

namespace gptb::checkpoint {

// Element types of the safetensors format. The first three are the parameter dtypes gptbuilder
// builds with (plan::DType kFloat32 / kBFloat16 / kFloat16 map to them by TorchName); the others
// exist so that any checkpoint can be listed and read.
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

// The name in a safetensors header: "F32", "BF16", "F16", "F64", "I64", ..., "BOOL", "F8_E4M3".
std::string_view SafetensorsName(DType dtype);

// Bytes per element (1 for BOOL and the float8 types, 8 for C64).
size_t ItemSize(DType dtype);

// The PyTorch spelling: "float32", "bfloat16", "float16", "float64", "int64", ..., "bool",
// "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "complex64". These are the strings
// gptb::plan::DTypeName and the config schema use, so callers convert by name.
std::string_view TorchName(DType dtype);

// Inverse of SafetensorsName; nullopt for an unknown name (matching is exact, case-sensitive, as
// in the format's definition). Sub-byte types (F4, F6_*) are unknown here.
std::optional<DType> ParseSafetensorsName(std::string_view name);

// Inverse of TorchName; nullopt for an unknown name.
std::optional<DType> ParseTorchName(std::string_view name);

// A comma-separated list of every safetensors name, for error messages.
std::string_view KnownSafetensorsNames();

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SAFETENSORS_DTYPE_H_
