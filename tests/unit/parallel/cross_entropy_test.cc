#include "core/parallel/cross_entropy.h"

#include <gtest/gtest.h>

#include "core/parallel/local_process_group.h"
#include "tests/unit/parallel/rank_threads.h"

namespace gptb::parallel {
namespace {

using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

constexpr int64_t kVocab = 16;

struct Reference {
  torch::Tensor logits, target, grad_output, loss, grad;
};

// torch's cross entropy on the full logits [3, 2, V].
Reference MakeReference(torch::Dtype dtype) {
  torch::Generator gen = at::detail::createCPUGenerator(42);
  Reference r;
  r.logits = (torch::randn({3, 2, kVocab}, gen, torch::kFloat64) * 3).to(dtype);
  r.target = torch::randint(0, kVocab, {3, 2}, gen, torch::kLong);
  r.grad_output = torch::rand({3, 2}, gen, torch::kFloat64).to(torch::kFloat32);
  torch::Tensor x = r.logits.to(torch::kFloat32).clone().requires_grad_();
  r.loss = torch::nn::functional::cross_entropy(
               x.view({-1, kVocab}), r.target.view({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
               .view({3, 2});
  (r.loss * r.grad_output).sum().backward();
  r.loss = r.loss.detach();
  r.grad = x.grad();
  return r;
}

void CheckVocabParallel(int tp, torch::Dtype dtype, double tolerance) {
  const Reference ref = MakeReference(dtype);
  const plan::RankTopology topology = Topology(tp, tp, 1);
  RunRanks(tp, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const int64_t part = kVocab / tp;
    torch::Tensor local = ref.logits.narrow(-1, rank * part, part).clone().requires_grad_();
    torch::Tensor loss =
        VocabParallelCrossEntropy(local, ref.target, groups.group(plan::GroupKind::kTp));
    EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(loss, ref.loss, tolerance, tolerance))
        << "tp " << tp << " rank " << rank << "\n"
        << loss << "\n"
        << ref.loss;
    (loss * ref.grad_output).sum().backward();
    ASSERT_EQ(local.grad().scalar_type(), dtype);
    torch::Tensor expected = ref.grad.narrow(-1, rank * part, part);
    EXPECT_TRUE(torch::allclose(local.grad().to(torch::kFloat32), expected, tolerance, tolerance))
        << "tp " << tp << " rank " << rank << "\n"
        << local.grad() << "\n"
        << expected;
  });
}

TEST(VocabParallelCrossEntropyTest, Tp1MatchesTorch) {
  CheckVocabParallel(1, torch::kFloat32, 1e-5);
}
TEST(VocabParallelCrossEntropyTest, Tp2MatchesTorch) {
  CheckVocabParallel(2, torch::kFloat32, 1e-5);
}
TEST(VocabParallelCrossEntropyTest, Tp4MatchesTorch) {
  CheckVocabParallel(4, torch::kFloat32, 1e-5);
}
// bf16 logits: computed in fp32 (as Megatron upcasts), gradient returned in bf16.
TEST(VocabParallelCrossEntropyTest, Tp2Bf16LogitsMatchTorchOnTheSameValues) {
  CheckVocabParallel(2, torch::kBFloat16, 1e-2);
}

TEST(VocabParallelCrossEntropyTest, RejectsMismatchedTarget) {
  ProcessGroupPtr one = c10::make_intrusive<LocalProcessGroup>();
  EXPECT_THROW(
      VocabParallelCrossEntropy(torch::zeros({3, 2, 4}), torch::zeros({3}, torch::kLong), one),
      c10::Error);
}

}  // namespace
}  // namespace gptb::parallel
