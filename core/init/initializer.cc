#include "core/init/initializer.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/init/fill_kernel.h"
#include "core/init/half.h"

namespace gptb::init {
namespace {

constexpr int64_t kMaxNumel = int64_t{1} << 62;
// Thread ranges start at multiples of this many local elements (whole cache lines for every
// dtype, and whole generator blocks when the shard is one contiguous run).
constexpr int64_t kThreadAlign = 1024;
// Each thread prefaults and fills its range in chunks of this many bytes, so the pages the
// kernel has just zeroed are still in cache when the fill writes them.
constexpr int64_t kChunkBytes = int64_t{256} << 10;
// Largest |z| the normal kernel can produce (sqrt(48 ln 2) = 5.7678), rounded up.
constexpr double kMaxNormalDeviation = 5.77;

uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string LayoutText(const ShardLayout& layout) {
  std::string pieces = absl::StrJoin(layout.pieces, ", ", [](std::string* out, const Piece& p) {
    absl::StrAppend(out, "[", p.start, ", +", p.length, ")");
  });
  return absl::StrCat("canonical_shape [", absl::StrJoin(layout.canonical_shape, ", "),
                      "], partition_dim ", layout.partition_dim, ", pieces {", pieces, "}");
}

// True when `v` (already rounded to fp32) is finite after conversion to `dtype`.
bool FitsDType(double v, DType dtype) {
  if (!std::isfinite(v)) return false;
  const float f = static_cast<float>(v);
  if (!std::isfinite(f)) return false;
  switch (dtype) {
    case DType::kFloat32:
      return true;
    case DType::kBFloat16:
      return (Fp32ToBf16Bits(f) & 0x7fffu) < 0x7f80u;
    case DType::kFloat16:
      return (Fp32ToFp16Bits(f) & 0x7fffu) < 0x7c00u;
    default:  // not a parameter dtype: FillShard refuses those first
      return false;
  }
}

absl::Status ValidateSpec(const InitSpec& spec, DType dtype) {
  auto finite = [](double v) { return std::isfinite(v); };
  switch (spec.dist) {
    case Distribution::kNormal: {
      if (!finite(spec.mean)) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.mean must be a finite number, got ", spec.mean));
      }
      if (!finite(spec.std) || spec.std < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.std must be a finite number >= 0, got ", spec.std));
      }
      const double bound = std::fabs(spec.mean) + kMaxNormalDeviation * spec.std;
      if (!FitsDType(bound, dtype)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec: normal(mean ", spec.mean, ", std ", spec.std, ") reaches |x| = ", bound,
            ", which overflows ", DTypeName(dtype), "; use a smaller std or a wider dtype"));
      }
      return absl::OkStatus();
    }
    case Distribution::kConstant:
      if (!FitsDType(spec.value, dtype)) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.value must be finite in ", DTypeName(dtype), ", got ", spec.value));
      }
      return absl::OkStatus();
    case Distribution::kUniform:
      if (!finite(spec.low) || !finite(spec.high) || spec.low > spec.high) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.low and spec.high must be finite with low <= high, got [", spec.low,
                         ", ", spec.high, "]"));
      }
      if (!FitsDType(spec.low, dtype) || !FitsDType(spec.high, dtype) ||
          !FitsDType(
              static_cast<double>(static_cast<float>(spec.high) - static_cast<float>(spec.low)),
              dtype == DType::kFloat16 ? DType::kFloat32 : dtype)) {
        return absl::InvalidArgumentError(absl::StrCat("spec: uniform [", spec.low, ", ", spec.high,
                                                       "] overflows ", DTypeName(dtype)));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("spec.dist is not a known Distribution");
}

bool CpuHasAvx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

bool CpuHasAvx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

absl::StatusOr<const internal::KernelTable*> SelectKernels(Isa isa) {
  if (isa == Isa::kAuto) {
    const std::vector<Isa> available = AvailableIsas();
    isa = available.back();
  }
  switch (isa) {
    case Isa::kGeneric:
      return &internal::generic::Kernels();
#if defined(__x86_64__)
    case Isa::kAvx2:
      if (CpuHasAvx2()) return &internal::avx2::Kernels();
      break;
    case Isa::kAvx512:
      if (CpuHasAvx512()) return &internal::avx512::Kernels();
      break;
#endif
    default:
      break;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("options.isa ", IsaName(isa), " is not supported by this CPU or build"));
}

// Maps local element indices of a validated layout to canonical runs: the local tensor is, for
// every outer index o (dims before partition_dim), the pieces in order, each contributing
// length * inner canonically contiguous elements.
class RunWalker {
 public:
  explicit RunWalker(const ShardLayout& layout) {
    const auto& shape = layout.canonical_shape;
    if (layout.partition_dim < 0) {
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      starts_.push_back(0);
      lengths_.push_back(numel);
      dim_span_ = numel;
      return;
    }
    const int p = layout.partition_dim;
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(p) + 1; d < shape.size(); ++d) inner *= shape[d];
    dim_span_ = shape[p] * inner;
    for (const Piece& piece : layout.pieces) {
      if (piece.length == 0) continue;
      starts_.push_back(piece.start * inner);
      lengths_.push_back(piece.length * inner);
    }
  }

  // Calls fn(canonical_begin, canonical_end, local_begin) for the local range [begin, end).
  template <typename Fn>
  void ForEachRun(int64_t begin, int64_t end, Fn&& fn) const {
    if (begin >= end) return;
    int64_t row = 0;
    for (int64_t len : lengths_) row += len;
    int64_t outer = begin / row;
    int64_t rem = begin % row;
    size_t j = 0;
    while (rem >= lengths_[j]) rem -= lengths_[j++];
    int64_t local = begin;
    while (local < end) {
      const int64_t n = std::min(end - local, lengths_[j] - rem);
      const int64_t canonical = outer * dim_span_ + starts_[j] + rem;
      fn(canonical, canonical + n, local);
      local += n;
      rem = 0;
      if (++j == lengths_.size()) {
        j = 0;
        ++outer;
      }
    }
  }

 private:
  std::vector<int64_t> starts_;   // canonical offset of each non-empty piece within one row
  std::vector<int64_t> lengths_;  // elements of each non-empty piece per row
  int64_t dim_span_ = 0;          // canonical elements per outer index
};

// Asks the kernel to map the whole pages inside [p, p + bytes) writable in one call
// (MADV_POPULATE_WRITE, Linux 5.14), which zeroes fresh pages without taking one page fault per
// 4 KiB: first touch costs about a third less CPU. Every byte of the range is written right after,
// so this changes no contents. Populating pages that are already mapped is not free (~300 ns a
// page), so a range whose first page is resident (mincore) is taken as touched and skipped.
// Failure (older kernel, memory that cannot be populated) is harmless: the writes then fault
// pages in one by one as usual.
void Prefault(char* p, size_t bytes) {
#if defined(__linux__)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (e <= b) return;
  unsigned char resident = 0;
  if (mincore(reinterpret_cast<void*>(b), page, &resident) == 0 && (resident & 1)) return;
  constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, absent from older headers
  (void)madvise(reinterpret_cast<void*>(b), e - b, kPopulateWrite);
#else
  (void)p;
  (void)bytes;
#endif
}

// Runs fn(begin, end) over [0, total) split across up to `threads` threads (the caller is one).
template <typename Fn>
void ParallelFor(int64_t total, int threads, const Fn& fn) {
  if (threads <= 1 || total <= kThreadAlign) {
    fn(int64_t{0}, total);
    return;
  }
  int64_t step = (total + threads - 1) / threads;
  step = (step + kThreadAlign - 1) / kThreadAlign * kThreadAlign;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads) - 1);
  for (int t = 1; t < threads; ++t) {
    const int64_t b = std::min(total, step * t);
    const int64_t e = std::min(total, step * (t + 1));
    if (b >= e) break;
    try {
      workers.emplace_back([&fn, b, e] { fn(b, e); });
    } catch (const std::system_error&) {
      fn(b, e);  // no thread to be had: do this share on the caller's thread
    }
  }
  fn(int64_t{0}, std::min(total, step));
  for (std::thread& w : workers) w.join();
}

void FillConstant(float value, DType dtype, void* out, int64_t begin, int64_t end) {
  if (dtype == DType::kFloat32) {
    float* dst = static_cast<float*>(out);
    if (FloatBits(value) == 0) {
      std::memset(dst + begin, 0, static_cast<size_t>(end - begin) * sizeof(float));
    } else {
      std::fill(dst + begin, dst + end, value);
    }
    return;
  }
  const uint16_t bits = dtype == DType::kBFloat16 ? Fp32ToBf16Bits(value) : Fp32ToFp16Bits(value);
  uint16_t* dst = static_cast<uint16_t*>(out);
  if (bits == 0) {
    std::memset(dst + begin, 0, static_cast<size_t>(end - begin) * sizeof(uint16_t));
  } else {
    std::fill(dst + begin, dst + end, bits);
  }
}

}  // namespace

InitSpec InitSpec::Normal(double std, double mean) {
  InitSpec s;
  s.dist = Distribution::kNormal;
  s.std = std;
  s.mean = mean;
  return s;
}

InitSpec InitSpec::Constant(double value) {
  InitSpec s;
  s.dist = Distribution::kConstant;
  s.value = value;
  return s;
}

InitSpec InitSpec::Uniform(double low, double high) {
  InitSpec s;
  s.dist = Distribution::kUniform;
  s.low = low;
  s.high = high;
  return s;
}

ShardLayout WholeLayout(std::vector<int64_t> canonical_shape) {
  ShardLayout layout;
  layout.canonical_shape = std::move(canonical_shape);
  layout.partition_dim = -1;
  return layout;
}

absl::StatusOr<ShardLayout> SplitLayout(std::vector<int64_t> canonical_shape, int dim, int rank,
                                        int world, int stride) {
  const int ndim = static_cast<int>(canonical_shape.size());
  if (dim < 0 || dim >= ndim) {
    return absl::InvalidArgumentError(
        absl::StrCat("dim must be in [0, ", ndim, ") for a ", ndim, "-D tensor, got ", dim));
  }
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank must be in [0, world) with world >= 1, got rank ", rank, ", world ", world));
  }
  if (stride < 1) {
    return absl::InvalidArgumentError(absl::StrCat("stride must be >= 1, got ", stride));
  }
  const int64_t size = canonical_shape[dim];
  const int64_t chunks = int64_t{world} * stride;
  if (size < 0 || size % chunks != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canonical_shape[", dim, "] = ", size, " is not divisible by world * stride = ", chunks));
  }
  ShardLayout layout;
  layout.canonical_shape = std::move(canonical_shape);
  layout.partition_dim = dim;
  const int64_t chunk = size / chunks;
  for (int j = 0; j < stride; ++j) {
    layout.pieces.push_back(Piece{(int64_t{j} * world + rank) * chunk, chunk});
  }
  return layout;
}

absl::Status ValidateLayout(const ShardLayout& layout) {
  const auto& shape = layout.canonical_shape;
  const int ndim = static_cast<int>(shape.size());
  int64_t numel = 1;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("layout.canonical_shape[", d,
                                                     "] must be >= 0, got ", shape[d], " (",
                                                     LayoutText(layout), ")"));
    }
    if (shape[d] > 0 && numel > kMaxNumel / shape[d]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layout.canonical_shape has more than 2^62 elements (", LayoutText(layout), ")"));
    }
    numel *= shape[d];
  }
  if (layout.partition_dim < -1 || layout.partition_dim >= ndim) {
    return absl::InvalidArgumentError(absl::StrCat("layout.partition_dim must be in [-1, ", ndim,
                                                   "), got ", layout.partition_dim, " (",
                                                   LayoutText(layout), ")"));
  }
  if (layout.partition_dim == -1) {
    if (!layout.pieces.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layout.pieces must be empty when partition_dim is -1 (the whole tensor) (",
                       LayoutText(layout), ")"));
    }
    return absl::OkStatus();
  }
  const int64_t size = shape[layout.partition_dim];
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i < layout.pieces.size(); ++i) {
    const Piece& p = layout.pieces[i];
    if (p.start < 0 || p.length < 0 || p.start > size || p.length > size - p.start) {
      return absl::InvalidArgumentError(
          absl::StrCat("layout.pieces[", i, "] = [", p.start, ", +", p.length,
                       ") must lie within [0, canonical_shape[", layout.partition_dim, "] = ", size,
                       ") (", LayoutText(layout), ")"));
    }
    if (p.length > 0) ranges.emplace_back(p.start, p.start + p.length);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layout.pieces overlap: [", ranges[i - 1].first, ", ", ranges[i - 1].second, ") and [",
          ranges[i].first, ", ", ranges[i].second, ") (", LayoutText(layout), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> LocalShape(const ShardLayout& layout) {
  if (absl::Status s = ValidateLayout(layout); !s.ok()) return s;
  std::vector<int64_t> shape = layout.canonical_shape;
  if (layout.partition_dim >= 0) {
    int64_t len = 0;
    for (const Piece& p : layout.pieces) len += p.length;
    shape[layout.partition_dim] = len;
  }
  return shape;
}

absl::StatusOr<int64_t> LocalNumel(const ShardLayout& layout) {
  absl::StatusOr<std::vector<int64_t>> shape = LocalShape(layout);
  if (!shape.ok()) return shape.status();
  int64_t numel = 1;
  for (int64_t d : *shape) numel *= d;
  return numel;
}

uint64_t NameKey(std::string_view canonical_name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (unsigned char c : canonical_name) {
    h ^= c;
    h *= 0x100000001b3ull;  // FNV-1a 64 prime
  }
  return Mix64(h);
}

absl::Status FillShard(uint64_t seed, std::string_view canonical_name, const InitSpec& spec,
                       const ShardLayout& layout, DType dtype, void* out, int64_t out_numel,
                       const FillOptions& options) {
  if (!IsParameterDType(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dtype ", DTypeName(dtype), " is not a parameter dtype (float32, bfloat16 or float16)"));
  }
  absl::StatusOr<int64_t> numel = LocalNumel(layout);
  if (!numel.ok()) return numel.status();
  if (out_numel != *numel) {
    return absl::InvalidArgumentError(
        absl::StrCat("out_numel must equal the shard's element count ", *numel, ", got ", out_numel,
                     " (", LayoutText(layout), ")"));
  }
  if (out == nullptr && out_numel > 0) {
    return absl::InvalidArgumentError("out must not be null for a non-empty shard");
  }
  if (absl::Status s = ValidateSpec(spec, dtype); !s.ok()) return s;
  absl::StatusOr<const internal::KernelTable*> kernels = SelectKernels(options.isa);
  if (!kernels.ok()) return kernels.status();
  if (out_numel == 0) return absl::OkStatus();

  int threads = options.num_threads > 0 ? options.num_threads
                                        : static_cast<int>(std::thread::hardware_concurrency());
  const int64_t grain = std::max<int64_t>(1, options.min_elements_per_thread);
  threads = static_cast<int>(std::clamp<int64_t>(out_numel / grain, 1, std::max(threads, 1)));

  const size_t esize = DTypeSize(dtype);
  const int64_t chunk = kChunkBytes / static_cast<int64_t>(esize);
  char* base = static_cast<char*>(out);
  if (spec.dist == Distribution::kConstant) {
    const float value = static_cast<float>(spec.value);
    ParallelFor(out_numel, threads, [&](int64_t b, int64_t e) {
      for (int64_t cb = b; cb < e; cb += chunk) {
        const int64_t ce = std::min(e, cb + chunk);
        if (options.prefault) Prefault(base + cb * esize, static_cast<size_t>(ce - cb) * esize);
        FillConstant(value, dtype, out, cb, ce);
      }
    });
    return absl::OkStatus();
  }

  internal::StreamParams params;
  const uint64_t key = Mix64(seed);
  const uint64_t name = NameKey(canonical_name);
  params.key0 = static_cast<uint32_t>(key);
  params.key1 = static_cast<uint32_t>(key >> 32);
  params.name0 = static_cast<uint32_t>(name);
  params.name1 = static_cast<uint32_t>(name >> 32);
  if (spec.dist == Distribution::kNormal) {
    params.kind = internal::kStreamNormal;
    params.scale = static_cast<float>(spec.std);
    params.shift = static_cast<float>(spec.mean);
  } else {
    params.kind = internal::kStreamUniform;
    params.scale = static_cast<float>(spec.high) - static_cast<float>(spec.low);
    params.shift = static_cast<float>(spec.low);
  }
  const int out_kind = static_cast<int>(dtype);
  const auto fill_range = (*kernels)->fill_range;
  const RunWalker walker(layout);
  ParallelFor(out_numel, threads, [&](int64_t b, int64_t e) {
    for (int64_t lb = b; lb < e; lb += chunk) {
      const int64_t le = std::min(e, lb + chunk);
      if (options.prefault) Prefault(base + lb * esize, static_cast<size_t>(le - lb) * esize);
      walker.ForEachRun(lb, le, [&](int64_t cb, int64_t ce, int64_t local) {
        fill_range(params, cb, ce, out_kind, base + static_cast<size_t>(local) * esize);
      });
    }
  });
  return absl::OkStatus();
}

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> isas = {Isa::kGeneric};
  if (CpuHasAvx2()) isas.push_back(Isa::kAvx2);
  if (CpuHasAvx512()) isas.push_back(Isa::kAvx512);
  return isas;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAuto:
      return "auto";
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

}  // namespace gptb::init
