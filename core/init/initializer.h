#ifndef GPTB_CORE_INIT_INITIALIZER_H_
#define GPTB_CORE_INIT_INITIALIZER_H_

// Parallelism-invariant weight initialisation (DESIGN.md decision 5).
//
// Every element of every parameter is a pure function of (seed, canonical parameter name, element
// index in the unsharded canonical tensor, row-major). A rank fills only its own shard, straight
// into the tensor's memory, and the gathered model is bit-identical for every TP/PP/VP/EP layout,
// thread count and instruction set.
//
// The stream (a contract: changing any of it changes every model built from a seed):
//  * key   = Mix64(seed) as two 32-bit words (low, high), Mix64 = the SplitMix64 finaliser, a
//            bijection, so distinct seeds give distinct keys;
//  * counter c = (c mod 2^32, c / 2^32, NameKey(name) low word, NameKey(name) high word), so for a
//            fixed seed distinct (name key, counter) pairs are distinct Philox inputs;
//  * Philox4x32-10 (core/init/philox.h) of counter c gives words x0..x3 for elements 4c..4c+3;
//  * normal: Box-Muller, elements 4c, 4c+1 from (x0, x1) and 4c+2, 4c+3 from (x2, x3), in fp32
//            as mean + (r std) cos t and mean + (r std) sin t (z within 1e-6 of exact math,
//            |z| <= 5.77; see fill_kernel_impl.inc);
//  * uniform: low + (high - low) * (xj >> 8) 2^-24, in fp32 (values in [low, high]);
//  * bf16 / fp16 outputs are the fp32 values rounded to nearest even, so a bf16 model is exactly
//    the rounded fp32 model.
// Constant fills (zeros, ones) need no generator.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype/dtype.h"

namespace gptb::init {

enum class Distribution { kNormal, kConstant, kUniform };

// Which compiled kernel variant runs the fill. All variants produce identical bits; kAuto picks
// the widest one the CPU supports. Forcing one the CPU lacks is FAILED_PRECONDITION.
enum class Isa { kAuto, kGeneric, kAvx2, kAvx512 };

struct InitSpec {
  Distribution dist = Distribution::kNormal;
  double mean = 0.0;   // kNormal
  double std = 0.0;    // kNormal, >= 0
  double value = 0.0;  // kConstant
  double low = 0.0;    // kUniform: values in [low, high]
  double high = 1.0;

  static InitSpec Normal(double std, double mean = 0.0);
  static InitSpec Constant(double value);
  static InitSpec Zeros() { return Constant(0.0); }
  static InitSpec Ones() { return Constant(1.0); }
  static InitSpec Uniform(double low, double high);
};

// [start, start + length) along the partition dimension, in canonical coordinates.
struct Piece {
  int64_t start = 0;
  int64_t length = 0;
};

// Which part of a canonical tensor a rank holds. partition_dim == -1: the whole tensor (pieces
// must be empty). Otherwise the local tensor is the concatenation, along partition_dim, of the
// canonical slices named by `pieces`, in order (pieces must not overlap). Examples for a weight
// [out, in] on TP rank r of t: column-parallel = dim 0, one piece [r out/t, out/t); row-parallel =
// dim 1, one piece; gated fc1 [2f, h] = dim 0, pieces [r f/t, f/t) and [f + r f/t, f/t).
struct ShardLayout {
  std::vector<int64_t> canonical_shape;
  int partition_dim = -1;
  std::vector<Piece> pieces;
};

// The whole tensor.
ShardLayout WholeLayout(std::vector<int64_t> canonical_shape);

// Megatron's split of `dim` over `world` ranks with `stride` (1 = a contiguous slice; 2 = gated
// fc1's [gate_r; up_r]): the dimension is cut into world * stride equal chunks and rank r holds
// chunks r, r + world, ..., in that order. INVALID_ARGUMENT unless dim is a valid dimension,
// 0 <= rank < world, stride >= 1 and world * stride divides the dimension.
absl::StatusOr<ShardLayout> SplitLayout(std::vector<int64_t> canonical_shape, int dim, int rank,
                                        int world, int stride = 1);

// OK iff the layout is well formed: dims >= 0, element count < 2^62, partition_dim in
// [-1, rank), pieces inside the dimension and disjoint (none when partition_dim is -1).
absl::Status ValidateLayout(const ShardLayout& layout);

// The local tensor's shape and element count (validating the layout first).
absl::StatusOr<std::vector<int64_t>> LocalShape(const ShardLayout& layout);
absl::StatusOr<int64_t> LocalNumel(const ShardLayout& layout);

struct FillOptions {
  // Worker threads including the caller; 0 = std::thread::hardware_concurrency(). A worker
  // running several ranks per process should divide its cores among them.
  int num_threads = 0;
  // A fill smaller than this many elements per thread uses fewer threads (thread start-up costs
  // about as much as generating tens of thousands of values).
  int64_t min_elements_per_thread = int64_t{1} << 16;
  Isa isa = Isa::kAuto;
  // Map the output's pages with one madvise(MADV_POPULATE_WRITE) per 256 KiB chunk before
  // writing it, instead of one page fault per 4 KiB page (a third less CPU on fresh memory;
  // ignored where unsupported). Contents are the same either way.
  bool prefault = true;
};

// 64-bit key of a canonical parameter name: the SplitMix64 finaliser of the 64-bit FNV-1a hash
// of its bytes. Names carry global layer / expert indices, e.g.
// "decoder.layers.11.mlp.linear_fc1.weight".
uint64_t NameKey(std::string_view canonical_name);

// Fills `out` (out_numel elements of `dtype`) with this rank's shard of parameter
// `canonical_name`: local element k (row-major in the local shape) receives canonical element
// i(k) of the stream for (seed, name). Never materialises the full tensor; extra memory is a few
// hundred bytes per thread. INVALID_ARGUMENT for a malformed layout, out_numel different from the
// shard's element count, a null `out` with out_numel > 0, non-finite or negative parameters, or
// values that would overflow `dtype` (e.g. a constant 1e5 in fp16); FAILED_PRECONDITION when a
// forced Isa is not available.
absl::Status FillShard(uint64_t seed, std::string_view canonical_name, const InitSpec& spec,
                       const ShardLayout& layout, DType dtype, void* out, int64_t out_numel,
                       const FillOptions& options = {});

// The instruction sets the running CPU supports, kGeneric first, and the name of each.
std::vector<Isa> AvailableIsas();
const char* IsaName(Isa isa);

}  // namespace gptb::init

#endif  // GPTB_CORE_INIT_INITIALIZER_H_
