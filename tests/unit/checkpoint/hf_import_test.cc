// Hugging Face import and export (ranks as threads) against real transformers (the project
// environment's pinned version; tests/unit/checkpoint/hf_transformers.py): models built from
// small random transformers checkpoints of each family give transformers' logits in every
// parallel layout; exporting back gives the checkpoint's tensors byte for byte, transformers
// loads the export as the same model (identical weights and logits), and importing the export
// gives the same weights.
#include "core/config/hf_import.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/checkpoint/hf_mapping.h"
#include "core/checkpoint/sharded_safetensors.h"
#include "gmock/gmock.h"
#include "tests/unit/checkpoint/checkpoint_harness.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;
using testing::BuildWith;
using testing::BuiltWorld;
using testing::Layout;
using testing::LayoutName;

struct Family {
  std::string type;
  std::vector<Layout> layouts;
  bool sharded = false;  // the HF weights as two shards with an index
  Layout export_from;
};

std::ostream& operator<<(std::ostream& os, const Family& f) { return os << f.type; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes the family's HF directory and transformers' logits.
std::string ReferenceDir(const Family& family) {
  const std::string dir = testing::TempDir("hf_" + family.type);
  const std::string command = std::string(GPTB_PYTHON) + " " + std::string(GPTB_SOURCE_DIR) +
                              "/tests/unit/checkpoint/hf_transformers.py write " + family.type +
                              " " + dir + (family.sharded ? " --sharded" : "") + " > " + dir +
                              ".log 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << command << "\n" << ReadFile(dir + ".log");
  return dir;
}

// The model config imported from the directory's config.json, in `layout`, with the vocabulary
// padded for TP (so that padding rows exist when tp > 1).
gptbuilder::v1::GPTModelConfig ImportedConfig(const std::string& dir, const Layout& layout) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> c =
      config::ImportHfConfigText(ReadFile(dir + "/config.json"));
  EXPECT_TRUE(c.ok()) << c.status();
  testing::SetLayout(*c, layout);
  // Experts with biases (GPT-OSS) are split only by expert parallelism (Megatron: ETP 1).
  if (c->transformer().has_num_moe_experts() && c->transformer().add_bias_linear()) {
    c->mutable_transformer()->set_expert_tensor_parallel_size(1);
  }
  c->set_should_pad_vocab(true);
  return testing::Finalized(*c, testing::WorldSize(*c));
}

torch::Tensor ReadReference(const std::string& dir, const std::string& name,
                            torch::ScalarType type) {
  auto reader = SafetensorsReader::Open(dir + "/reference.safetensors");
  EXPECT_TRUE(reader.ok()) << reader.status();
  const TensorInfo* info = *(*reader)->Find(name);
  torch::Tensor t = torch::empty(info->shape, torch::dtype(type));
  EXPECT_TRUE((*reader)->ReadTensor(name, t.data_ptr()).ok());
  return t;
}

BuiltWorld BuildFrom(const std::string& dir, const Layout& layout) {
  const gptbuilder::v1::GPTModelConfig c = ImportedConfig(dir, layout);
  return BuildWith(c, testing::WorldSize(c), [&](model::RankBuildOptions& o) {
    o.build.set_seed(77);
    o.load_from = dir;
  });
}

class HfImportTest : public ::testing::TestWithParam<Family> {};

TEST_P(HfImportTest, LogitsEqualTheReferenceModelInEveryLayout) {
  const Family& family = GetParam();
  const std::string dir = ReferenceDir(family);
  const torch::Tensor ids = ReadReference(dir, "input_ids", torch::kInt64);
  const torch::Tensor expected = ReadReference(dir, "logits", torch::kFloat32);
  const int64_t vocab = expected.size(-1);
  for (const Layout& layout : family.layouts) {
    BuiltWorld built = BuildFrom(dir, layout);
    for (size_t r = 0; r < built.statuses.size(); ++r) {
      ASSERT_TRUE(built.statuses[r].ok())
          << LayoutName(layout) << " rank " << r << ": " << built.statuses[r];
    }
    torch::Tensor logits = testing::PipelineForward(built.world, ids);
    ASSERT_TRUE(logits.defined());
    ASSERT_GE(logits.size(-1), vocab);
    const double diff = (logits.narrow(-1, 0, vocab) - expected).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << family.type << " at " << LayoutName(layout);
    std::printf("%s %s: max |logits - transformers'| = %.3g\n", family.type.c_str(),
                LayoutName(layout).c_str(), diff);
    if (family.type == "gpt_oss" || family.type.rfind("gemma", 0) == 0 ||
        family.type.rfind("deepseek", 0) == 0) {
      // The second, plain-PyTorch reference (hf_transformers.py's gpt_oss_plain_logits,
      // deepseek_reference.py).
      const torch::Tensor plain = ReadReference(dir, "plain_logits", torch::kFloat32);
      const double plain_diff = (logits.narrow(-1, 0, vocab) - plain).abs().max().item<double>();
      EXPECT_LT(plain_diff, 1e-4) << "plain reference at " << LayoutName(layout);
      std::printf("%s %s: max |logits - plain reference| = %.3g\n", family.type.c_str(),
                  LayoutName(layout).c_str(), plain_diff);
    }
    // The logits are not trivially small: a wrong mapping would show.
    EXPECT_GT(expected.abs().max().item<double>(), 1.0);
  }
  fs::remove_all(dir);
  fs::remove(dir + ".log");
}

// Tensor bytes by name, with the base-model prefix of bare checkpoints restored.
std::map<std::string, std::vector<unsigned char>> StoredBytes(const std::string& dir,
                                                              const std::string& prefix) {
  std::map<std::string, std::vector<unsigned char>> out;
  auto reader = ShardedSafetensorsReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return out;
  for (const auto& shard : (*reader)->shards()) {
    for (const TensorInfo& t : shard->tensors()) {
      if (IsIgnorableHfTensor(t.name, false)) continue;
      std::vector<unsigned char> bytes(t.nbytes());
      EXPECT_TRUE(shard->ReadTensor(t.name, bytes.data()).ok());
      const bool bare = t.name.rfind(prefix, 0) != 0 && t.name != "lm_head.weight";
      out[bare ? prefix + t.name : t.name] = std::move(bytes);
    }
  }
  return out;
}

TEST_P(HfImportTest, ExportReproducesTheHfTensorsAndReimportsIdentically) {
  const Family& family = GetParam();
  const std::string dir = ReferenceDir(family);
  BuiltWorld built = BuildFrom(dir, family.export_from);
  ASSERT_TRUE(built.ok());
  const std::string out = testing::TempDir("hf_export_" + family.type);
  SaveOptions options;
  options.format = CheckpointFormat::kHuggingFace;
  options.max_shard_bytes = 100'000;  // several files and an index
  for (const auto& r : testing::SaveWorld(built.world, out, options)) {
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
  const std::string prefix = family.type == "gpt2" ? "transformer." : "model.";
  EXPECT_EQ(StoredBytes(out, prefix), StoredBytes(dir, prefix));
  // The exported config.json describes the same model.
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> exported =
      config::ImportHfConfigText(ReadFile(out + "/config.json"));
  ASSERT_TRUE(exported.ok()) << exported.status();
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> original =
      config::ImportHfConfigText(ReadFile(dir + "/config.json"));
  ASSERT_TRUE(original.ok());
  EXPECT_TRUE(
      CheckConfigCompatible(*config::Finalize(*original), *config::Finalize(*exported), true, out)
          .ok());
  // transformers loads the export as the same model: identical weights and logits.
  const std::string check = std::string(GPTB_PYTHON) + " " + GPTB_SOURCE_DIR +
                            "/tests/unit/checkpoint/hf_transformers.py check-export " + dir + " " +
                            out + " > " + out + ".log 2>&1";
  EXPECT_EQ(std::system(check.c_str()), 0) << check << "\n" << ReadFile(out + ".log");
  // Importing the export, in another layout, gives the same weights.
  BuiltWorld again = BuildFrom(out, {1, 1, 0, 1});
  ASSERT_TRUE(again.ok()) << again.statuses[0];
  // (The two layouts pad the vocabulary differently: compare the real rows.)
  auto unpadded = [&](const testing::World& world) {
    std::map<std::string, torch::Tensor> out = testing::Canonical(world);
    for (auto& [name, tensor] : out) {
      if (IsVocabTensor(name)) tensor = tensor.narrow(0, 0, original->vocab_size());
    }
    return out;
  };
  testing::ExpectSameCanonical(unpadded(built.world), unpadded(again.world), "export -> import");
  fs::remove_all(out);
  fs::remove(out + ".log");
  fs::remove_all(dir);
  fs::remove(dir + ".log");
}

INSTANTIATE_TEST_SUITE_P(
    Families, HfImportTest,
    ::testing::Values(
        Family{"gpt2", {{1, 1, 0, 1}, {2, 2, 0, 1}}, false, {2, 2, 0, 1}},
        Family{"llama", {{1, 1, 0, 1}, {2, 2, 0, 1}}, true, {2, 1, 0, 1}},
        Family{"mistral", {{1, 1, 0, 1}, {2, 1, 0, 1}}, false, {1, 2, 0, 1}},
        Family{"qwen2", {{1, 1, 0, 1}, {2, 2, 0, 1}}, false, {2, 2, 0, 1}},
        Family{"qwen3", {{1, 1, 0, 1}, {2, 1, 0, 1}}, false, {2, 1, 0, 1}},
        Family{"mixtral", {{1, 1, 0, 1}, {1, 1, 0, 2}, {2, 1, 0, 2}}, false, {2, 1, 0, 2}},
        Family{"qwen3_moe", {{1, 1, 0, 1}, {2, 2, 0, 2}}, false, {2, 2, 0, 2}},
        Family{"gpt_oss", {{1, 1, 0, 1}, {2, 2, 0, 2}}, false, {2, 2, 0, 2}},
        Family{"deepseek_v3", {{1, 1, 0, 1}, {2, 2, 0, 2}}, false, {2, 2, 0, 2}},
        Family{"deepseek_v2", {{1, 1, 0, 1}, {2, 1, 0, 2}}, true, {1, 2, 0, 1}},
        Family{"gemma2", {{1, 1, 0, 1}, {2, 2, 0, 1}}, false, {2, 2, 0, 1}},
        Family{"gemma3_text", {{1, 1, 0, 1}, {2, 2, 0, 1}}, false, {2, 2, 0, 1}}),
    [](const ::testing::TestParamInfo<Family>& info) { return info.param.type; });

TEST(HfImport, MismatchesAreReportedUpFront) {
  const std::string dir = ReferenceDir({"qwen3", {}, false, {}});
  // A config.json that says Qwen2 over Qwen3 weights: the q/k/v biases a Qwen2 has are missing,
  // the q/k norms are left over. Both are named.
  std::string config = ReadFile(dir + "/config.json");
  const size_t at = config.find("\"qwen3\"");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 7, "\"qwen2\"");
  std::ofstream(dir + "/config.json") << config;
  BuiltWorld built = BuildFrom(dir, {1, 1, 0, 1});
  ASSERT_FALSE(built.statuses[0].ok());
  EXPECT_EQ(built.statuses[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(built.statuses[0].message()),
              ::testing::HasSubstr("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_THAT(std::string(built.statuses[0].message()),
              ::testing::HasSubstr("model.layers.0.self_attn.q_norm.weight"));
  fs::remove_all(dir);
  fs::remove(dir + ".log");

  // A model that is not the HF config's: the differing fields are named.
  const std::string llama = ReferenceDir({"llama", {}, false, {}});
  const gptbuilder::v1::GPTModelConfig good = ImportedConfig(llama, {1, 1, 0, 1});
  gptbuilder::v1::GPTModelConfig c = good;
  c.mutable_transformer()->set_num_layers(3);
  BuiltWorld wrong = BuildWith(c, 1, [&](model::RankBuildOptions& o) { o.load_from = llama; });
  EXPECT_EQ(wrong.statuses[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.statuses[0].message()),
              ::testing::HasSubstr("transformer.num_layers"));

  // Without config.json the directory is neither format.
  fs::remove(llama + "/config.json");
  BuiltWorld bare = BuildWith(good, 1, [&](model::RankBuildOptions& o) { o.load_from = llama; });
  EXPECT_EQ(bare.statuses[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bare.statuses[0].message()), ::testing::HasSubstr("neither"));
  fs::remove_all(llama);
  fs::remove(llama + ".log");
}

}  // namespace
}  // namespace gptb::checkpoint
