#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "clients/cli/service_commands.h"
#include "core/config/config_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<gptbuilder::v1::BuildModelRequest> Request(const std::vector<std::string>& args) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, BuildCommand().flags);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return parsed.status();
  return BuildRequestFromArgs(*parsed);
}

class BuildCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

// The file travels as its bytes with the overrides in order: the coordinator's loader sees what
// `gptb validate` sees, and nothing was parsed or finalized here.
TEST_F(BuildCommandTest, TheConfigFileTravelsAsTextWithItsOverrides) {
  const std::string yaml =
      "# a comment the coordinator's line numbers count\nvocab_size: 1000\ntransformer:\n"
      "  num_layers: 2\n  hidden_size: 64\n  num_attention_heads: 4\n";
  const std::string path = Write("My Model.yaml", yaml);
  absl::StatusOr<gptbuilder::v1::BuildModelRequest> r =
      Request({path, "--set", "transformer.num_layers=4", "--set", "build.seed=7", "--world-size",
               "2", "--request-id", "r1", "--validate-only", "--for-training"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name(), "my-model");
  EXPECT_FALSE(r->has_config());
  EXPECT_FALSE(r->has_ddp());
  EXPECT_FALSE(r->has_build());
  EXPECT_EQ(r->config_text().text(), yaml);
  EXPECT_EQ(r->config_text().format(), "yaml");
  EXPECT_EQ(r->config_text().source_name(), path);
  EXPECT_THAT(r->config_text().overrides(),
              ElementsAre("transformer.num_layers=4", "build.seed=7"));
  EXPECT_EQ(r->world_size(), 2);
  EXPECT_EQ(r->request_id(), "r1");
  EXPECT_TRUE(r->validate_only());
  EXPECT_TRUE(r->for_training());
}

TEST_F(BuildCommandTest, FormatComesFromTheExtensionElseTheCoordinatorDetectsIt) {
  for (const auto& [name, format] : std::vector<std::pair<std::string, std::string>>{
           {"a.json", "json"}, {"a.yml", "yaml"}, {"a.txtpb", "textproto"}, {"a.conf", ""}}) {
    absl::StatusOr<gptbuilder::v1::BuildModelRequest> r = Request({Write(name, "{}")});
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ(r->config_text().format(), format) << name;
    // Whatever name the request carries, the coordinator's loader reads the same format.
    EXPECT_TRUE(config::ConfigFormatByName(r->config_text().format()).has_value()) << name;
  }
}

// An invalid config is the coordinator's to refuse (with its own limits): the request is made.
TEST_F(BuildCommandTest, AnInvalidConfigIsNotJudgedHere) {
  absl::StatusOr<gptbuilder::v1::BuildModelRequest> r =
      Request({Write("bad.yaml", "transformer:\n  hidden_size: 66\n"), "--set", "nonsense=1"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->config_text().overrides(), ElementsAre("nonsense=1"));
}

TEST_F(BuildCommandTest, HuggingFaceDirectoryGivesItsConfigJsonAndWeights) {
  const std::string hf = (dir_ / "Llama-3.1-8B").string();
  std::filesystem::create_directories(hf);
  std::ofstream(hf + "/config.json") << "{\"model_type\": \"llama\"}";
  absl::StatusOr<gptbuilder::v1::BuildModelRequest> r = Request({"--from-hf", hf + "/"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name(), "llama-3.1-8b");
  EXPECT_EQ(r->config_text().text(), "{\"model_type\": \"llama\"}");
  EXPECT_EQ(r->config_text().format(), "json");
  EXPECT_EQ(r->load_from(), hf + "/");  // absolute, as given (the daemons resolve it)
}

TEST_F(BuildCommandTest, UsageProblemsAreRefusedBeforeAnyRequest) {
  const std::string ok = Write("ok.yaml", "vocab_size: 10\n");
  EXPECT_EQ(Request({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Request({ok, ok}).status().message()), HasSubstr("extra arguments"));
  EXPECT_EQ(Request({(dir_ / "missing.yaml").string()}).status().code(),
            absl::StatusCode::kNotFound);
  for (const char* world : {"0", "-1", "two", "3000000000"}) {
    absl::StatusOr<gptbuilder::v1::BuildModelRequest> r = Request({ok, "--world-size", world});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << world;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("--world-size")) << world;
  }
  EXPECT_EQ(Request({ok, "--from-hf", dir_.string()}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The request limits are the coordinator's on this path: gptb build has no --max-* flags.
  EXPECT_FALSE(ParseArgs({ok, "--max-world-size", "8"}, BuildCommand().flags).ok());
}

}  // namespace
}  // namespace gptb::cli
