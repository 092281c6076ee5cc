// Black-box tests of `gptb validate`: the real binary, its exit codes, stdout and stderr.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace gptb::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A per-process, per-test path: ctest runs the tests of this binary in parallel processes.
std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + std::to_string(getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + name;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  std::ofstream(path) << text;
  return path;
}

Result RunGptb(const std::string& args) {
  const std::string out = TempPath("stdout.txt");
  const std::string err = TempPath("stderr.txt");
  const std::string command =
      std::string(GPTB_BINARY_DIR) + "/bin/gptb " + args + " >" + out + " 2>" + err;
  const int status = std::system(command.c_str());
  Result result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const std::string kExamples = std::string(GPTB_SOURCE_DIR) + "/examples/";

TEST(GptbValidate, GoodConfigPrintsTheResolvedConfig) {
  const Result r = RunGptb("validate " + kExamples + "default.yaml --world-size 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("\n  kv_channels: 32\n"));  // derived
  EXPECT_THAT(r.out, HasSubstr("\n  pipeline_dtype: float32\n"));
  EXPECT_THAT(r.out, HasSubstr("\nddp:\n"));
  EXPECT_THAT(r.out, HasSubstr("\nbuild:\n"));
  // What it prints is a config that loads back to the same resolved config.
  const std::string printed = WriteFile("printed.yaml", r.out);
  absl::StatusOr<config::LoadedConfig> reloaded = config::LoadConfigFile(printed);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().message();
  absl::StatusOr<config::LoadedConfig> direct =
      config::FinalizeLoaded(*config::LoadConfigFile(kExamples + "default.yaml"));
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(reloaded->model, direct->model));
}

TEST(GptbValidate, JsonFormatAndOverrides) {
  const Result r = RunGptb("validate " + kExamples +
                           "tiny-llama.yaml --format json --set "
                           "hidden_size=128 --set build.seed=7 --server localhost:1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("{"));
  EXPECT_THAT(r.out, HasSubstr("\"hidden_size\": 128"));
  EXPECT_THAT(r.out, HasSubstr("\"kv_channels\": 16"));
  EXPECT_THAT(r.out, HasSubstr("\"seed\": 7"));
}

TEST(GptbValidate, InvalidConfigWritesOneLinePerViolationAndExits2) {
  const std::string bad = WriteFile("bad.yaml", R"(
transformer:
  num_layers: 6
  hidden_size: 64
  num_attention_heads: 6
  pipeline_model_parallel_size: 2
  virtual_pipeline_model_parallel_size: 2
  cuda_graph_impl: local
vocab_size: 1000
)");
  const Result r = RunGptb("validate " + bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  const std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 3u) << r.err;
  EXPECT_THAT(lines[0], StartsWith("transformer.hidden_size: hidden_size (64) must be divisible"));
  EXPECT_THAT(lines[1], StartsWith("transformer.use_te_rng_tracker: Transformer engine's RNG "
                                   "tracker is required for cudagraphs"));
  EXPECT_THAT(lines[2], StartsWith("transformer.virtual_pipeline_model_parallel_size: Make sure "
                                   "the number of model chunks"));
}

TEST(GptbValidate, BadOverrideAndWorldSizeExit2) {
  Result r = RunGptb("validate " + kExamples + "tiny-llama.yaml --set hiden_size=3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("hiden_size: Neither GPTModelConfig nor TransformerConfig "
                               "declares a field named 'hiden_size'."));
  r = RunGptb("validate " + kExamples + "default.yaml --world-size 6");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("world_size: world size 6 is not a multiple"));
}

TEST(GptbValidate, UnreadableFileExits1AndUsageErrorsExit2) {
  Result r = RunGptb("validate /nonexistent/model.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot read config file '/nonexistent/model.yaml'"));
  r = RunGptb("validate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing CONFIG"));
  r = RunGptb("validate " + kExamples + "default.yaml --format xml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--format must be one of yaml, json"));
  r = RunGptb("validate --bogus");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown flag --bogus"));
  r = RunGptb("valdate x.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("Did you mean 'validate'?"));
}

TEST(GptbValidate, HelpExits0) {
  Result r = RunGptb("validate --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: gptb validate CONFIG"));
  EXPECT_THAT(r.out, HasSubstr("--world-size N"));
  r = RunGptb("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("validate"));
}

}  // namespace
}  // namespace gptb::cli
