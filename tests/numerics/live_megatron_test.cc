// Parity on every run, not only from stored data: the project environment's pinned megatron-core
// (GPTB_PYTHON; scripts/python-requirements.txt) runs now, on the CPU, on the weights and tokens
// of a few stored cases (tests/numerics/megatron_oracle.py), and gptbuilder at one rank and two
// parallel layouts gives its loss and logits within 1e-5 relative and every parameter's gradient
// within 1e-4.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "nlohmann/json.hpp"
#include "tests/numerics/numerics_harness.h"
#include "tests/unit/checkpoint/checkpoint_harness.h"

namespace gptb::testing {
namespace {

// The megatron-core version scripts/python-requirements.txt pins.
std::string PinnedMegatronCore() {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/scripts/python-requirements.txt");
  std::string line;
  const std::regex pin("^megatron-core==([^\\s#]+)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, pin)) return m[1];
  }
  return "";
}

TEST(LiveMegatronTest, PinnedMegatronCoreAgreesInSeveralLayouts) {
  // A dense GQA model, interleaved sliding windows with the off-by-one softmax, GPT-2 with its
  // tanh GELU and tied embeddings, MoE with shared experts and a dense layer.
  const std::vector<std::pair<std::string, std::vector<NumericsLayout>>> cases = {
      {"llama", {{.tp = 2}, {.pp = 2}}},
      {"window_skip_freq_list_off_by_one", {{.tp = 2}, {.pp = 2, .vp = 2}}},
      {"gpt2_fast_gelu", {{.pp = 2}, {.dp = 2}}},
      {"moe_shared_experts", {{.ep = 2, .dp = 2}, {.pp = 2}}},
  };
  const std::string out = TempDir("live_megatron");
  // Appended piece by piece: GCC 12 -O3 warns (-Wrestrict, a false positive) on
  // const char* + std::string.
  std::string command = "env -u MEGATRON_PATH ";
  command += GPTB_PYTHON;
  command += " ";
  command += GPTB_SOURCE_DIR;
  command += "/tests/numerics/megatron_oracle.py --logits --out ";
  command += out;
  for (const auto& [name, layouts] : cases) {
    command += " ";
    command += GoldenNumericsDir(name);
  }
  command += " > ";
  command += out;
  command += ".log 2>&1";
  const auto start = std::chrono::steady_clock::now();
  const int rc = std::system(command.c_str());
  std::ifstream log(out + ".log");
  ASSERT_EQ(rc, 0) << command << "\n" << std::string(std::istreambuf_iterator<char>(log), {});
  std::printf("megatron-core ran %zu cases in %.1f s\n", cases.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  for (const auto& [name, layouts] : cases) {
    SCOPED_TRACE(name);
    const std::string live = out + "/" + name;
    std::ifstream result_file(live + "/result.json");
    const nlohmann::json result = nlohmann::json::parse(result_file, nullptr, false);
    ASSERT_TRUE(result.is_object()) << live << "/result.json";
    // What ran is the pinned package, not a source tree. megatron-core's package_info appends a
    // PEP 440 local label ("+<sha>") when imported from inside a git checkout (a fresh clone of
    // this project is one); the release is what is pinned.
    std::string ran = result.value("megatron_version", "");
    ran = ran.substr(0, ran.find('+'));
    EXPECT_EQ(ran, PinnedMegatronCore());
    const NumericsResult megatron = LoadMegatronResult(live);
    const NumericsCase c = LoadNumericsCase(GoldenNumericsDir(name));
    ASSERT_FALSE(HasFailure());
    const std::string checkpoint = TempDir("live_" + name);
    WriteCanonicalCheckpoint(c, checkpoint);
    ASSERT_FALSE(HasFailure());
    ExpectMatchesMegatron(RunNumericsLayout(c, {}, checkpoint), megatron, name + " at one rank");
    for (const NumericsLayout& layout : layouts) {
      const NumericsResult got = RunNumericsLayout(c, layout, checkpoint);
      const NumericsErrors e = CompareNumerics(got, megatron);
      std::printf("LIVE %-34s %-10s loss %.1e logits %.1e grads %.1e\n", name.c_str(),
                  layout.Name().c_str(), e.loss, e.logits, e.grads);
      ExpectMatchesMegatron(got, megatron, name + " at " + layout.Name());
    }
    std::filesystem::remove_all(checkpoint);
  }
  std::filesystem::remove_all(out);
  std::filesystem::remove(out + ".log");
}

}  // namespace
}  // namespace gptb::testing
