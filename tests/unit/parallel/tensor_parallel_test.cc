#include "core/parallel/tensor_parallel.h"

#include <gtest/gtest.h>

#include "core/parallel/collectives.h"
#include "core/parallel/local_process_group.h"
#include "tests/unit/parallel/rank_threads.h"

namespace gptb::parallel {
namespace {

using plan::GroupKind;
using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

const auto kDouble = torch::TensorOptions().dtype(torch::kFloat64);

// The same pseudo-random tensor on every rank.
torch::Tensor Seeded(std::vector<int64_t> shape, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, kDouble);
}

void ExpectClose(const torch::Tensor& actual, const torch::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-10, 1e-12)) << what << "\nactual\n"
                                                               << actual << "\nexpected\n"
                                                               << expected;
}

TEST(TensorParallelTest, ColumnThenRowParallelMatmulEqualsUnshardedWithGradients) {
  constexpr int kTp = 2;
  const plan::RankTopology topology = Topology(kTp, kTp, 1);
  const torch::Tensor x = Seeded({4, 6}, 1), w1 = Seeded({8, 6}, 2), w2 = Seeded({6, 8}, 3),
                      g = Seeded({4, 6}, 4);
  // Single-rank reference.
  torch::Tensor rx = x.clone().requires_grad_(), rw1 = w1.clone().requires_grad_(),
                rw2 = w2.clone().requires_grad_();
  torch::Tensor ry = torch::matmul(torch::matmul(rx, rw1.t()), rw2.t());
  (ry * g).sum().backward();

  RunRanks(kTp, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& tp = groups.group(GroupKind::kTp);
    const int64_t part = 8 / kTp;
    torch::Tensor lx = x.clone().requires_grad_();
    torch::Tensor lw1 = w1.narrow(0, rank * part, part).clone().requires_grad_();  // column
    torch::Tensor lw2 = w2.narrow(1, rank * part, part).clone().requires_grad_();  // row
    torch::Tensor h = torch::matmul(CopyToTensorParallelRegion(lx, tp), lw1.t());
    torch::Tensor y = ReduceFromTensorParallelRegion(torch::matmul(h, lw2.t()), tp);
    (y * g).sum().backward();
    ExpectClose(y, ry.detach(), "output");
    ExpectClose(lx.grad(), rx.grad(), "input grad");
    ExpectClose(lw1.grad(), rw1.grad().narrow(0, rank * part, part), "column weight grad");
    ExpectClose(lw2.grad(), rw2.grad().narrow(1, rank * part, part), "row weight grad");
  });
}

TEST(TensorParallelTest, ScatterAndGatherAlongLastDim) {
  constexpr int kTp = 4;
  const plan::RankTopology topology = Topology(kTp, kTp, 1);
  const torch::Tensor full = Seeded({2, 3, 8}, 5);
  RunRanks(kTp, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& tp = groups.group(GroupKind::kTp);
    // Scatter: forward keeps our slice; backward gathers every rank's (different) gradient.
    torch::Tensor x = full.clone().requires_grad_();
    torch::Tensor mine = ScatterToTensorParallelRegion(x, tp);
    ExpectClose(mine, full.narrow(2, rank * 2, 2), "scatter forward");
    (mine * (rank + 1)).sum().backward();
    std::vector<torch::Tensor> expected_grad;
    for (int r = 0; r < kTp; ++r) expected_grad.push_back(torch::full({2, 3, 2}, r + 1.0, kDouble));
    ExpectClose(x.grad(), torch::cat(expected_grad, 2), "scatter backward");

    // Gather: forward concatenates; backward keeps our slice of the gradient.
    torch::Tensor local = full.narrow(2, rank * 2, 2).clone().requires_grad_();
    torch::Tensor gathered = GatherFromTensorParallelRegion(local, tp);
    ExpectClose(gathered, full, "gather forward");
    const torch::Tensor g = Seeded({2, 3, 8}, 6);
    (gathered * g).sum().backward();
    ExpectClose(local.grad(), g.narrow(2, rank * 2, 2), "gather backward");
  });
}

TEST(TensorParallelTest, SequenceParallelPairs) {
  constexpr int kTp = 2;
  const plan::RankTopology topology = Topology(kTp, kTp, 1);
  RunRanks(kTp, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& tp = groups.group(GroupKind::kTp);
    const torch::Tensor full = Seeded({4, 2, 3}, 7);
    std::vector<torch::Tensor> g = {Seeded({4, 2, 3}, 10), Seeded({4, 2, 3}, 11)};

    // Scatter along the sequence; backward all-gathers.
    torch::Tensor x = full.clone().requires_grad_();
    torch::Tensor rows = ScatterToSequenceParallelRegion(x, tp);
    ExpectClose(rows, full.narrow(0, rank * 2, 2), "sp scatter forward");
    (rows * g[rank].narrow(0, 0, 2)).sum().backward();
    ExpectClose(x.grad(), torch::cat({g[0].narrow(0, 0, 2), g[1].narrow(0, 0, 2)}, 0),
                "sp scatter backward");

    // All-gather; backward reduce-scatters the partial gradients (or splits when not TP output).
    for (bool tp_output_grad : {true, false}) {
      torch::Tensor local = full.narrow(0, rank * 2, 2).clone().requires_grad_();
      torch::Tensor gathered = GatherFromSequenceParallelRegion(local, tp, tp_output_grad);
      ExpectClose(gathered, full, "sp gather forward");
      (gathered * g[rank]).sum().backward();
      torch::Tensor expected =
          tp_output_grad ? (g[0] + g[1]).narrow(0, rank * 2, 2) : g[rank].narrow(0, rank * 2, 2);
      ExpectClose(local.grad(), expected, "sp gather backward");
    }

    // Reduce-scatter; backward all-gathers.
    torch::Tensor partial = (full * (rank + 1)).requires_grad_();
    torch::Tensor reduced = ReduceScatterToSequenceParallelRegion(partial, tp);
    ExpectClose(reduced, (full * 3).narrow(0, rank * 2, 2), "sp reduce-scatter forward");
    (reduced * g[rank].narrow(0, 0, 2)).sum().backward();
    ExpectClose(partial.grad(), torch::cat({g[0].narrow(0, 0, 2), g[1].narrow(0, 0, 2)}, 0),
                "sp reduce-scatter backward");
  });
}

TEST(TensorParallelTest, IdentityOnGroupOfOne) {
  ProcessGroupPtr one = c10::make_intrusive<LocalProcessGroup>();
  torch::Tensor x = Seeded({2, 4}, 8).requires_grad_();
  EXPECT_TRUE(CopyToTensorParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(ReduceFromTensorParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(ScatterToTensorParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(GatherFromTensorParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(ScatterToSequenceParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(GatherFromSequenceParallelRegion(x, one).is_same(x));
  EXPECT_TRUE(ReduceScatterToSequenceParallelRegion(x, one).is_same(x));
}

TEST(CollectivesTest, EmulatedOpsDtypesAndLayouts) {
  constexpr int kWorld = 2;
  const plan::RankTopology topology = Topology(kWorld, kWorld, 1);
  RunRanks(kWorld, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& g = groups.group(GroupKind::kTp);
    torch::Tensor avg = torch::full({3}, rank == 0 ? 1.0f : 4.0f);
    AllReduceInPlace(avg, g, c10d::ReduceOp::AVG);
    EXPECT_TRUE(torch::equal(avg, torch::full({3}, 2.5f))) << avg;

    torch::Tensor mx = torch::tensor({rank == 0 ? 1.0f : -1.0f, rank == 0 ? -5.0f : 3.0f});
    AllReduceInPlace(mx, g, c10d::ReduceOp::MAX);
    EXPECT_TRUE(torch::equal(mx, torch::tensor({1.0f, 3.0f}))) << mx;

    torch::Tensor bf = torch::full({5}, 1.5, torch::kBFloat16);
    AllReduceInPlace(bf, g);
    EXPECT_TRUE(torch::equal(bf, torch::full({5}, 3.0, torch::kBFloat16))) << bf;
    // bf16 data movement (Gloo has no bf16): bits are carried verbatim.
    torch::Tensor bf_root = torch::full({3}, rank == 0 ? -0.3 : 9.0, torch::kBFloat16);
    BroadcastInPlace(bf_root, g, 0);
    EXPECT_TRUE(torch::equal(bf_root, torch::full({3}, -0.3, torch::kBFloat16))) << bf_root;
    torch::Tensor bf_all = AllGather(torch::full({2}, rank + 0.1, torch::kBFloat16), g, 0);
    EXPECT_TRUE(torch::equal(bf_all, torch::tensor({0.1, 0.1, 1.1, 1.1}).to(torch::kBFloat16)))
        << bf_all;

    // A non-contiguous view is reduced in place through a contiguous copy.
    torch::Tensor base = torch::arange(6, torch::kFloat32).view({2, 3}) * (rank + 1);
    torch::Tensor column = base.t();
    AllReduceInPlace(column, g);
    EXPECT_TRUE(torch::equal(base, torch::arange(6, torch::kFloat32).view({2, 3}) * 3)) << base;

    torch::Tensor root = torch::full({2, 2}, static_cast<float>(rank));
    BroadcastInPlace(root, g, /*root=*/1);
    EXPECT_TRUE(torch::equal(root, torch::ones({2, 2})));

    torch::Tensor rows = torch::full({1, 2}, static_cast<float>(rank));
    EXPECT_TRUE(torch::equal(AllGather(rows, g, 1), torch::tensor({{0.0f, 0.0f, 1.0f, 1.0f}})));

    // Reduce-scatter along dim 1 leaves the input untouched.
    torch::Tensor input = torch::arange(8, torch::kFloat32).view({2, 4});
    torch::Tensor out = ReduceScatter(input, g, 1);
    EXPECT_TRUE(torch::equal(
        out, (torch::arange(8, torch::kFloat32).view({2, 4}) * 2).narrow(1, rank * 2, 2)))
        << out;
    EXPECT_TRUE(torch::equal(input, torch::arange(8, torch::kFloat32).view({2, 4})));
    EXPECT_THROW(ReduceScatter(torch::ones({3}), g, 0), c10::Error);
  });
}

}  // namespace
}  // namespace gptb::parallel
