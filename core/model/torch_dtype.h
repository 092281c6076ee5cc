#ifndef GPTB_CORE_MODEL_TORCH_DTYPE_H_
#define GPTB_CORE_MODEL_TORCH_DTYPE_H_

#include <c10/core/ScalarType.h>

#include <optional>

#include "core/dtype/dtype.h"

namespace gptb::model {

// The one place a gptb::DType meets LibTorch (the table itself, core/dtype, is torch-free).

// LibTorch's scalar type for `dtype`; every DType has one.
c10::ScalarType TorchScalarType(DType dtype);

// The DType of a LibTorch scalar type; nullopt for one the table lacks (float64 complex,
// quantized and bit types, ...).
std::optional<DType> DTypeOfTorch(c10::ScalarType type);

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_TORCH_DTYPE_H_
