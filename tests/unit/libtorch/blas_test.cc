// The LibTorch this project links must multiply matrices with an optimised BLAS, not a reference
// one: every train step, forward and reference test spends most of its time in sgemm. Debian's
// LibTorch picked up whatever libblas.so.3 the system selected (the reference BLAS unless one
// was installed: ~80x slower here); the torch wheel carries MKL.
//
// The proof is relative, in one process and on one thread: sgemm through torch::mm against the
// plain triple loop below on the same operands. The reference BLAS is that loop (Fortran, -O2,
// scalar): measured here at 384 x 384, reference sgemm 1.5 GFLOP/s, this loop 1.3, OpenBLAS 123,
// MKL 115. Best of several tries each, so a busy machine slows both alike; no absolute time is
// asserted.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "gtest/gtest.h"

namespace {

using Clock = std::chrono::steady_clock;

// c = a * b for n x n row-major matrices, in the i-k-j order of the reference sgemm, kept
// scalar as it is (a vectorised loop would run 3-20x faster, depending on the compiler's mood).
#if defined(__clang__)
[[clang::optnone]]
#else
__attribute__((noinline, optimize("no-tree-vectorize")))
#endif
void NaiveMatmul(const float* a, const float* b, float* c, int64_t n) {
  std::fill(c, c + n * n, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < n; ++k) {
      const float aik = a[i * n + k];
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += aik * b[k * n + j];
    }
  }
}

double BestSeconds(int tries, const std::function<void()>& run) {
  double best = 1e30;
  for (int t = 0; t < tries; ++t) {
    const Clock::time_point start = Clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

TEST(Blas, SgemmIsFarFasterThanANaiveLoop) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  constexpr int64_t n = 384;
  torch::manual_seed(3);
  const torch::Tensor a = torch::randn({n, n});
  const torch::Tensor b = torch::randn({n, n});
  torch::Tensor c = torch::empty({n, n});
  std::vector<float> naive(n * n);

  const double blas = BestSeconds(9, [&] { torch::mm_out(c, a, b); });
  const double loop = BestSeconds(
      3, [&] { NaiveMatmul(a.data_ptr<float>(), b.data_ptr<float>(), naive.data(), n); });
  at::set_num_threads(threads);

  // Both compute the same product (so neither was optimised away).
  const torch::Tensor reference = torch::from_blob(naive.data(), {n, n});
  EXPECT_TRUE(torch::allclose(c, reference, /*rtol=*/1e-4, /*atol=*/1e-3))
      << "max difference " << (c - reference).abs().max().item<float>();

  const double flops = 2.0 * n * n * n;
  const double speedup = loop / blas;
  ::testing::Test::RecordProperty("sgemm_gflops", std::to_string(flops / blas / 1e9));
  ::testing::Test::RecordProperty("naive_gflops", std::to_string(flops / loop / 1e9));
  std::printf(
      "one thread, %lldx%lld fp32: torch::mm %.1f GFLOP/s, naive loop %.1f GFLOP/s (%.1fx)\n",
      static_cast<long long>(n), static_cast<long long>(n), flops / blas / 1e9, flops / loop / 1e9,
      speedup);
  // Reference BLAS runs at ~1x this loop; MKL and OpenBLAS at ~80x (AVX-512), ~30x with AVX2.
  EXPECT_GT(speedup, 10.0) << "LibTorch's sgemm is only " << speedup
                           << "x a naive loop: a reference BLAS?\n"
                           << at::show_config();
}

}  // namespace
