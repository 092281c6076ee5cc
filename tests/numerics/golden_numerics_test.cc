// gptbuilder against the stored goldens of real Megatron Core (tests/golden/numerics): every case
// at one rank and in every layout its model allows (tp2, pp2, pp2 x vp2, dp2, ep2 for MoE) gives
// Megatron's loss and logits within 1e-5 relative and every parameter's gradient within 1e-4;
// each layout also gives one rank's loss, logits and per-parameter gradients (1e-5). Each (case,
// layout) prints a NUMERICS line.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "tests/numerics/numerics_harness.h"
#include "tests/unit/checkpoint/checkpoint_harness.h"

namespace gptb::testing {
namespace {

void PrintRow(const std::string& c, const std::string& layout, const NumericsResult& got,
              const NumericsResult& megatron, double seconds) {
  // One line per (case, layout) for the numerics table: max relative errors against Megatron.
  const NumericsErrors e = CompareNumerics(got, megatron);
  std::printf(
      "NUMERICS %-34s %-10s loss %.8f (Megatron %.8f) errors: loss %.1e logits %.1e "
      "grads %.1e (%s) %.1fs\n",
      c.c_str(), layout.c_str(), got.loss, megatron.loss, e.loss, e.logits, e.grads,
      e.worst_grad.c_str(), seconds);
}

class GoldenNumericsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenNumericsTest, EveryLayoutMatchesMegatron) {
  const NumericsCase c = LoadNumericsCase(GoldenNumericsDir(GetParam()));
  const NumericsResult megatron = LoadMegatronResult(c.dir);
  ASSERT_FALSE(HasFailure());
  const std::string checkpoint = TempDir("numerics_" + c.name);
  WriteCanonicalCheckpoint(c, checkpoint);
  ASSERT_FALSE(HasFailure());

  auto start = std::chrono::steady_clock::now();
  const NumericsResult one = RunNumericsLayout(c, {}, checkpoint);
  auto seconds = [&] {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    start = std::chrono::steady_clock::now();
    return s;
  };
  PrintRow(c.name, "one rank", one, megatron, seconds());
  ExpectMatchesMegatron(one, megatron, c.name + " at one rank");
  const std::vector<NumericsLayout> layouts = NumericsLayoutsFor(c.config);
  // tp2 (tp2 with sequence parallelism for MoE), pp2 and dp2 fit every case; a case whose loss
  // depends on the micro-batch's statistics has no dp2.
  EXPECT_GE(layouts.size(), HasBatchStatistics(c.config) ? 2u : 3u);
  for (const NumericsLayout& layout : layouts) {
    const std::string what = c.name + " at " + layout.Name();
    const NumericsResult got = RunNumericsLayout(c, layout, checkpoint);
    PrintRow(c.name, layout.Name(), got, megatron, seconds());
    ExpectMatchesMegatron(got, megatron, what);
    const NumericsErrors own = CompareNumerics(got, one);
    EXPECT_LE(own.loss, 1e-5) << what << ": loss against one rank";
    EXPECT_LE(own.logits, 1e-5) << what << ": logits against one rank";
    EXPECT_LE(own.grads, 1e-5) << what << ": gradient of " << own.worst_grad << " against one rank";
  }
  std::filesystem::remove_all(checkpoint);
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenNumericsTest, ::testing::ValuesIn(GoldenNumericsCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// The case list is the folder's: a case that fails to load must not vanish from the run.
TEST(GoldenNumerics, EveryStoredCaseIsComplete) {
  const std::vector<std::string> cases = GoldenNumericsCases();
  EXPECT_GE(cases.size(), 26u);
  for (const std::string& name : cases) {
    for (const char* file : {"config.json", "tokens.json", "weights.safetensors",
                             "grads.safetensors", "logits.safetensors", "result.json"}) {
      EXPECT_TRUE(std::filesystem::exists(GoldenNumericsDir(name) + "/" + file))
          << name << "/" << file;
    }
  }
}

}  // namespace
}  // namespace gptb::testing
