#include "core/checkpoint/tensor_route.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"

namespace gptb::checkpoint {
namespace {

int64_t Product(const std::vector<int64_t>& shape, size_t from) {
  int64_t n = 1;
  for (size_t i = from; i < shape.size(); ++i) n *= shape[i];
  return n;
}

template <typename T>
void TransposeTyped(const T* in, int64_t in_stride, int64_t rows, int64_t cols, T* out,
                    int64_t out_stride) {
  constexpr int64_t kTile = 32;  // a tile of each side stays in L1 for every item size
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) out[c * out_stride + r] = in[r * in_stride + c];
      }
    }
  }
}

// Canonical rows in [lo, hi) that no segment covers.
std::vector<RowRange> Gaps(const std::vector<Segment>& segments, int64_t lo, int64_t hi) {
  std::vector<RowRange> gaps;
  int64_t next = lo;
  for (const Segment& s : segments) {
    const int64_t a = std::max(lo, s.row), b = std::min(hi, s.row + s.rows);
    if (a >= b) continue;
    if (a > next) gaps.push_back({next, a - next});
    next = std::max(next, b);
  }
  if (next < hi) gaps.push_back({next, hi - next});
  return gaps;
}

// The stored rows (columns when transposed) a stacked segment's slice needs: its last index + 1.
int64_t StackedExtent(const Segment& s) { return s.offset + (s.rows - 1) * s.stride + 1; }

// Copies between a stacked segment's canonical rows (`rows`: [s.rows, inner], dense) and its
// stored slice (`slice`: [extent, inner], or [inner, extent] when transposed; inner is then the
// canonical column count).
void StackedCopy(const Segment& s, int64_t inner, int64_t extent, size_t item, bool to_rows,
                 unsigned char* rows, unsigned char* slice) {
  for (int64_t i = 0; i < s.rows; ++i) {
    const int64_t k = s.offset + i * s.stride;
    unsigned char* row = rows + i * inner * item;
    if (!s.transposed) {
      unsigned char* stored = slice + k * inner * item;
      if (to_rows) {
        std::memcpy(row, stored, inner * item);
      } else {
        std::memcpy(stored, row, inner * item);
      }
      continue;
    }
    for (int64_t c = 0; c < inner; ++c) {
      unsigned char* stored = slice + (c * extent + k) * item;
      if (to_rows) {
        std::memcpy(row + c * item, stored, item);
      } else {
        std::memcpy(stored, row + c * item, item);
      }
    }
  }
}

absl::Status CheckRequest(const TensorRoute& route, int dim, int64_t start, int64_t length) {
  const int rank = static_cast<int>(route.shape.size());
  if (rank < 1 || dim < 0 || dim > 1 || dim >= rank || (dim == 1 && rank != 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat(route.name, ": cannot slice dimension ", dim, " of a rank-", rank,
                     " canonical tensor (dimension 0, or 1 of a 2-D tensor)"));
  }
  if (start < 0 || length < 0 || start + length > route.shape[dim]) {
    return absl::InvalidArgumentError(absl::StrCat(route.name, ": [", start, ", ", start + length,
                                                   ") is outside dimension ", dim, " of size ",
                                                   route.shape[dim]));
  }
  return absl::OkStatus();
}

}  // namespace

void TransposeBlock(const void* in, int64_t in_stride, int64_t rows, int64_t cols, size_t item_size,
                    void* out, int64_t out_stride) {
  switch (item_size) {
    case 1:
      return TransposeTyped(static_cast<const uint8_t*>(in), in_stride, rows, cols,
                            static_cast<uint8_t*>(out), out_stride);
    case 2:
      return TransposeTyped(static_cast<const uint16_t*>(in), in_stride, rows, cols,
                            static_cast<uint16_t*>(out), out_stride);
    case 4:
      return TransposeTyped(static_cast<const uint32_t*>(in), in_stride, rows, cols,
                            static_cast<uint32_t*>(out), out_stride);
    case 8:
      return TransposeTyped(static_cast<const uint64_t*>(in), in_stride, rows, cols,
                            static_cast<uint64_t*>(out), out_stride);
    default:
      break;
  }
  const auto* src = static_cast<const unsigned char*>(in);
  auto* dst = static_cast<unsigned char*>(out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      std::memcpy(dst + (c * out_stride + r) * item_size, src + (r * in_stride + c) * item_size,
                  item_size);
    }
  }
}

bool IsStackedRoute(const TensorRoute& route) {
  return std::any_of(route.segments.begin(), route.segments.end(),
                     [](const Segment& s) { return s.stack >= 0; });
}

TensorRoute IdentityRoute(const std::string& name, const std::vector<int64_t>& shape,
                          int64_t stored_rows) {
  TensorRoute route{name, shape, {}};
  const int64_t rows = std::min(shape.empty() ? 0 : shape[0], stored_rows);
  if (rows > 0) route.segments.push_back({0, rows, name, 0, false});
  return route;
}

absl::StatusOr<DType> ValidateRoute(const ShardedSafetensorsReader& reader,
                                    const TensorRoute& route) {
  if (route.shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(route.name, ": scalar tensors have no rows"));
  }
  std::optional<DType> dtype;
  int64_t next = 0;
  for (const Segment& s : route.segments) {
    if (s.rows <= 0 || s.row < next || s.row + s.rows > route.shape[0] || s.offset < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(route.name, ": segment rows [", s.row, ", ", s.row + s.rows,
                       ") are empty, overlap the previous segment or leave the tensor's ",
                       route.shape[0], " rows"));
    }
    next = s.row + s.rows;
    absl::StatusOr<ShardedSafetensorsReader::Location> at = reader.Find(s.tensor);
    if (!at.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("the checkpoint has no tensor '", s.tensor,
                                                     "' (needed for ", route.name, ")"));
    }
    const TensorInfo& info = *at->tensor;
    if (dtype.has_value() && *dtype != info.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(route.name, ": its stored parts have different dtypes (",
                       std::string(SafetensorsCode(*dtype)), " and ",
                       std::string(SafetensorsCode(info.dtype)), " in '", s.tensor, "')"));
    }
    dtype = info.dtype;
    bool fits;
    std::string expected;
    if (s.stack >= 0) {
      // [> stack, slice]: the slice [extent, canonical dims 1...] or, transposed, [cols, extent].
      const int64_t extent = StackedExtent(s);
      std::vector<int64_t> slice = route.shape;
      if (s.transposed) {
        slice = {route.shape.size() == 2 ? route.shape[1] : -1, extent};
      } else {
        slice[0] = extent;
      }
      fits = s.stride >= 1 && (!s.transposed || route.shape.size() == 2) &&
             info.shape.size() == slice.size() + 1 && info.shape[0] > s.stack;
      for (size_t d = 0; fits && d < slice.size(); ++d) {
        const int64_t have = info.shape[d + 1];
        const bool grows = d == (s.transposed ? 1u : 0u);
        fits = grows ? have >= slice[d] : have == slice[d];
      }
      std::vector<int64_t> want = {s.stack + 1};
      want.insert(want.end(), slice.begin(), slice.end());
      expected = absl::StrCat(ShapeString(want), " (at least; stacked along dimension 0)");
    } else if (s.stride != 1) {
      fits = false;
      expected = "a stacked tensor (a stride needs one)";
    } else if (s.transposed) {
      fits = route.shape.size() == 2 && info.shape.size() == 2 && info.shape[0] == route.shape[1] &&
             info.shape[1] >= s.offset + s.rows;
      expected = absl::StrCat("[", route.shape.size() == 2 ? route.shape[1] : -1,
                              ", >= ", s.offset + s.rows, "] (a transposed [out, in] weight)");
    } else {
      fits = info.shape.size() == route.shape.size() && !info.shape.empty() &&
             info.shape[0] >= s.offset + s.rows &&
             std::equal(info.shape.begin() + 1, info.shape.end(), route.shape.begin() + 1);
      std::vector<int64_t> want = route.shape;
      want[0] = s.offset + s.rows;
      expected = absl::StrCat(ShapeString(want), " (at least that many rows)");
    }
    if (!fits) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", s.tensor, "' has shape ", ShapeString(info.shape), "; ",
                       route.name, " ", ShapeString(route.shape), " needs ", expected));
    }
  }
  return dtype.value_or(DType::kFloat32);
}

absl::StatusOr<std::vector<RowRange>> ReadRoute(const ShardedSafetensorsReader& reader,
                                                const TensorRoute& route, int dim, int64_t start,
                                                int64_t length, void* out) {
  if (absl::Status s = CheckRequest(route, dim, start, length); !s.ok()) return s;
  auto* dst = static_cast<unsigned char*>(out);
  std::vector<unsigned char> tmp;
  if (IsStackedRoute(route)) {
    // Each segment's whole slice, its canonical rows gathered from it, the request copied out.
    const int64_t inner = Product(route.shape, 1);
    std::vector<unsigned char> rows;
    for (const Segment& s : route.segments) {
      const int64_t a = dim == 0 ? std::max(start, s.row) : s.row;
      const int64_t b = dim == 0 ? std::min(start + length, s.row + s.rows) : s.row + s.rows;
      if (a >= b) continue;
      absl::StatusOr<ShardedSafetensorsReader::Location> at = reader.Find(s.tensor);
      if (!at.ok()) return at.status();
      const TensorInfo& info = *at->tensor;
      const size_t item = DTypeSize(info.dtype);
      const int64_t extent = info.shape[s.transposed ? 2 : 1];
      tmp.resize(static_cast<size_t>(Product(info.shape, 1)) * item);
      if (absl::Status st = reader.ReadSlice(s.tensor, 0, s.stack, 1, tmp.data()); !st.ok()) {
        return st;
      }
      rows.resize(static_cast<size_t>(s.rows * inner) * item);
      StackedCopy(s, inner, extent, item, /*to_rows=*/true, rows.data(), tmp.data());
      for (int64_t r = a; r < b; ++r) {
        const unsigned char* from = rows.data() + (r - s.row) * inner * item;
        if (dim == 0) {
          std::memcpy(dst + (r - start) * inner * item, from, inner * item);
        } else {
          std::memcpy(dst + r * length * item, from + start * item, length * item);
        }
      }
    }
    return dim == 0 ? Gaps(route.segments, start, start + length)
                    : Gaps(route.segments, 0, route.shape[0]);
  }
  if (dim == 0) {
    const int64_t inner = Product(route.shape, 1);
    for (const Segment& s : route.segments) {
      const int64_t a = std::max(start, s.row), b = std::min(start + length, s.row + s.rows);
      if (a >= b) continue;
      absl::StatusOr<ShardedSafetensorsReader::Location> at = reader.Find(s.tensor);
      if (!at.ok()) return at.status();
      const size_t item = DTypeSize(at->tensor->dtype);
      unsigned char* target = dst + (a - start) * inner * item;
      const int64_t first = s.offset + (a - s.row), n = b - a;
      if (!s.transposed) {
        if (absl::Status st = reader.ReadSlice(s.tensor, 0, first, n, target); !st.ok()) return st;
        continue;
      }
      const int64_t cols = route.shape[1];
      tmp.resize(static_cast<size_t>(cols * n) * item);
      if (absl::Status st = reader.ReadSlice(s.tensor, 1, first, n, tmp.data()); !st.ok()) {
        return st;
      }
      TransposeBlock(tmp.data(), n, cols, n, item, target, cols);  // [cols, n] -> [n, cols]
    }
    return Gaps(route.segments, start, start + length);
  }
  // dim == 1: every canonical row, columns [start, start + length).
  for (const Segment& s : route.segments) {
    absl::StatusOr<ShardedSafetensorsReader::Location> at = reader.Find(s.tensor);
    if (!at.ok()) return at.status();
    const TensorInfo& info = *at->tensor;
    const size_t item = DTypeSize(info.dtype);
    unsigned char* target = dst + s.row * length * item;
    if (!s.transposed) {
      if (s.offset == 0 && s.rows == info.shape[0]) {
        if (absl::Status st = reader.ReadSlice(s.tensor, 1, start, length, target); !st.ok()) {
          return st;
        }
        continue;
      }
      tmp.resize(static_cast<size_t>(info.shape[0] * length) * item);
      if (absl::Status st = reader.ReadSlice(s.tensor, 1, start, length, tmp.data()); !st.ok()) {
        return st;
      }
      std::memcpy(target, tmp.data() + s.offset * length * item, s.rows * length * item);
      continue;
    }
    // Stored [cols, stored_cols]: canonical columns are stored rows.
    const int64_t stored_cols = info.shape[1];
    tmp.resize(static_cast<size_t>(length * stored_cols) * item);
    if (absl::Status st = reader.ReadSlice(s.tensor, 0, start, length, tmp.data()); !st.ok()) {
      return st;
    }
    TransposeBlock(tmp.data() + s.offset * item, stored_cols, length, s.rows, item, target, length);
  }
  return Gaps(route.segments, 0, route.shape[0]);
}

absl::Status WriteRoute(ShardedSafetensorsWriter& writer, const TensorRoute& route, int dim,
                        int64_t start, int64_t length, const void* data, size_t item_size) {
  if (absl::Status s = CheckRequest(route, dim, start, length); !s.ok()) return s;
  const auto* src = static_cast<const unsigned char*>(data);
  std::vector<unsigned char> tmp;
  if (IsStackedRoute(route)) {
    // A stored slice is written in one piece, from every segment that lies in it.
    if (dim != 0 || start != 0 || length != route.shape[0]) {
      return absl::UnimplementedError(
          absl::StrCat(route.name,
                       ": a tensor stored in a stacked (fused-experts) tensor is "
                       "written whole, not as a slice"));
    }
    const int64_t inner = Product(route.shape, 1);
    std::vector<bool> done(route.segments.size(), false);
    for (size_t i = 0; i < route.segments.size(); ++i) {
      if (done[i]) continue;
      const Segment& first = route.segments[i];
      absl::StatusOr<const TensorInfo*> info = writer.Find(first.tensor);
      if (!info.ok()) return info.status();
      const int64_t extent = (*info)->shape[first.transposed ? 2 : 1];
      tmp.assign(static_cast<size_t>(Product((*info)->shape, 1)) * item_size, 0);
      for (size_t j = i; j < route.segments.size(); ++j) {
        const Segment& s = route.segments[j];
        if (s.tensor != first.tensor || s.stack != first.stack) continue;
        if (s.transposed != first.transposed) {
          return absl::InvalidArgumentError(absl::StrCat(route.name, ": segments in one slice of '",
                                                         s.tensor, "' disagree on transposition"));
        }
        StackedCopy(s, inner, extent, item_size, /*to_rows=*/false,
                    const_cast<unsigned char*>(src + s.row * inner * item_size), tmp.data());
        done[j] = true;
      }
      if (absl::Status st = writer.WriteSlice(first.tensor, 0, first.stack, 1, tmp.data());
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }
  if (dim == 0) {
    const int64_t inner = Product(route.shape, 1);
    for (const Segment& s : route.segments) {
      const int64_t a = std::max(start, s.row), b = std::min(start + length, s.row + s.rows);
      if (a >= b) continue;
      const unsigned char* from = src + (a - start) * inner * item_size;
      const int64_t first = s.offset + (a - s.row), n = b - a;
      if (!s.transposed) {
        if (absl::Status st = writer.WriteSlice(s.tensor, 0, first, n, from); !st.ok()) return st;
        continue;
      }
      const int64_t cols = route.shape[1];
      tmp.resize(static_cast<size_t>(cols * n) * item_size);
      TransposeBlock(from, cols, n, cols, item_size, tmp.data(), n);  // [n, cols] -> [cols, n]
      if (absl::Status st = writer.WriteSlice(s.tensor, 1, first, n, tmp.data()); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }
  for (const Segment& s : route.segments) {
    absl::StatusOr<const TensorInfo*> info = writer.Find(s.tensor);
    if (!info.ok()) return info.status();
    const int64_t stored_rows = (*info)->shape[s.transposed ? 1 : 0];
    if (s.offset != 0 || s.rows != stored_rows) {
      return absl::UnimplementedError(
          absl::StrCat(route.name, ": writing a column slice into part of the stored tensor '",
                       s.tensor, "' is not supported"));
    }
    const unsigned char* from = src + s.row * length * item_size;
    if (!s.transposed) {
      if (absl::Status st = writer.WriteSlice(s.tensor, 1, start, length, from); !st.ok()) {
        return st;
      }
      continue;
    }
    tmp.resize(static_cast<size_t>(length * s.rows) * item_size);
    TransposeBlock(from, length, s.rows, length, item_size, tmp.data(), s.rows);
    if (absl::Status st = writer.WriteSlice(s.tensor, 0, start, length, tmp.data()); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorSpec>> StoredTensorSpecs(const std::vector<TensorRoute>& routes,
                                                          const std::vector<DType>& dtypes) {
  if (routes.size() != dtypes.size()) {
    return absl::InvalidArgumentError("StoredTensorSpecs needs one dtype per route");
  }
  std::vector<TensorSpec> specs;
  std::vector<bool> transposed;
  std::map<std::string, size_t> index;
  for (size_t r = 0; r < routes.size(); ++r) {
    const TensorRoute& route = routes[r];
    for (const Segment& s : route.segments) {
      std::vector<int64_t> shape = route.shape;
      const int64_t extent = s.stack >= 0 ? StackedExtent(s) : s.offset + s.rows;
      if (s.transposed) {
        if (route.shape.size() != 2) {
          return absl::InvalidArgumentError(
              absl::StrCat(route.name, ": only 2-D tensors can be stored transposed"));
        }
        shape = {route.shape[1], extent};
      } else {
        shape[0] = extent;
      }
      // The dimensions that grow with more segments: the stored rows (columns when
      // transposed), and for a stacked tensor also the stack.
      std::vector<size_t> grow = {s.transposed ? 1u : 0u};
      if (s.stack >= 0) {
        shape.insert(shape.begin(), s.stack + 1);
        grow = {0u, grow[0] + 1};
      }
      auto [it, inserted] = index.emplace(s.tensor, specs.size());
      if (inserted) {
        specs.push_back({s.tensor, dtypes[r], shape});
        transposed.push_back(s.transposed);
        continue;
      }
      TensorSpec& spec = specs[it->second];
      bool same = spec.dtype == dtypes[r] && transposed[it->second] == s.transposed &&
                  spec.shape.size() == shape.size();
      for (size_t d = 0; same && d < shape.size(); ++d) {
        if (std::find(grow.begin(), grow.end(), d) == grow.end() && spec.shape[d] != shape[d]) {
          same = false;
        }
      }
      if (!same) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stored tensor '", s.tensor, "' is used inconsistently (", route.name, " needs ",
            ShapeString(shape), " ", std::string(SafetensorsCode(dtypes[r])), ")"));
      }
      for (size_t d : grow) spec.shape[d] = std::max(spec.shape[d], shape[d]);
    }
  }
  return specs;
}

}  // namespace gptb::checkpoint
