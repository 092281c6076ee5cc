// What a checkpoint holds, from the plan alone: canonical tensors, slice ownership, metadata and
// config compatibility.
#include "core/checkpoint/checkpoint_manifest.h"

#include <map>

#include "core/config/finalize.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::checkpoint {
namespace {

using gptbuilder::v1::GPTModelConfig;
using ::testing::HasSubstr;

struct Layout {
  int tp = 1, pp = 1, vp = 0, ep = 1, dp = 1;
};

GPTModelConfig Config(const std::string& golden, const Layout& l) {
  GPTModelConfig c = testing::GoldenUserConfig(testing::LoadGolden(golden));
  auto* t = c.mutable_transformer();
  t->set_tensor_model_parallel_size(l.tp);
  t->set_pipeline_model_parallel_size(l.pp);
  if (l.vp > 0) {
    t->set_virtual_pipeline_model_parallel_size(l.vp);
  } else {
    t->clear_virtual_pipeline_model_parallel_size();
  }
  t->set_expert_model_parallel_size(l.ep);
  t->clear_num_layers_in_first_pipeline_stage();
  return c;
}

int World(const Layout& l) { return l.tp * l.pp * std::max(l.dp, l.ep); }

plan::ModelPlan Plan(const std::string& golden, const Layout& l) {
  absl::StatusOr<GPTModelConfig> c = config::Finalize(Config(golden, l), {World(l)});
  EXPECT_TRUE(c.ok()) << c.status();
  plan::PlanOptions options;
  options.world_size = World(l);
  absl::StatusOr<plan::ModelPlan> p = plan::ModelPlan::Create(*c, options);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

std::vector<std::string> Names(const std::vector<CanonicalTensor>& tensors) {
  std::vector<std::string> names;
  for (const auto& t : tensors) names.push_back(t.name);
  return names;
}

TEST(CanonicalTensors, SameListInEveryLayout) {
  for (const char* golden : {"A_tp1_pp1", "B_tp1_pp1", "D_tp1_pp1_ep1"}) {
    absl::StatusOr<std::vector<CanonicalTensor>> reference =
        CanonicalTensors(Plan(golden, {1, 1, 0, 1}));
    ASSERT_TRUE(reference.ok()) << reference.status();
    for (const Layout& l :
         std::vector<Layout>{{2, 2, 0, 1}, {2, 2, 2, 1}, {1, 2, 0, 2}, {2, 1, 0, 1, 2}}) {
      if (l.ep > 1 && std::string(golden) != "D_tp1_pp1_ep1") continue;
      absl::StatusOr<std::vector<CanonicalTensor>> other = CanonicalTensors(Plan(golden, l));
      ASSERT_TRUE(other.ok()) << other.status();
      ASSERT_EQ(Names(*other), Names(*reference)) << golden;
      for (size_t i = 0; i < other->size(); ++i) {
        EXPECT_EQ((*other)[i].shape, (*reference)[i].shape) << (*other)[i].name;
      }
    }
  }
}

TEST(CanonicalTensors, OrderedBySectionAndGlobalIndex) {
  GPTModelConfig c = Config("B_tp1_pp1", {1, 2, 0, 1});
  c.mutable_transformer()->set_num_layers(12);
  absl::StatusOr<GPTModelConfig> f = config::Finalize(c, {2});
  ASSERT_TRUE(f.ok()) << f.status();
  plan::PlanOptions options;
  options.world_size = 2;
  absl::StatusOr<plan::ModelPlan> p = plan::ModelPlan::Create(*f, options);
  ASSERT_TRUE(p.ok());
  absl::StatusOr<std::vector<CanonicalTensor>> tensors = CanonicalTensors(*p);
  ASSERT_TRUE(tensors.ok());
  const std::vector<std::string> names = Names(*tensors);
  EXPECT_EQ(names.front(), "embedding.word_embeddings.weight");
  EXPECT_EQ(names.back(), "output_layer.weight");
  auto position = [&](const std::string& name) {
    return std::find(names.begin(), names.end(), name) - names.begin();
  };
  EXPECT_LT(position("decoder.layers.9.mlp.linear_fc2.weight"),
            position("decoder.layers.10.mlp.linear_fc1.weight"));
  EXPECT_LT(position("decoder.layers.11.self_attention.linear_qkv.weight"),
            position("decoder.final_layernorm.weight"));
  for (const auto& t : *tensors) {
    EXPECT_EQ(t.vocab_rows,
              t.name == "embedding.word_embeddings.weight" || t.name == "output_layer.weight");
  }
}

TEST(CanonicalTensors, TiedOutputLayerIsTheEmbedding) {
  absl::StatusOr<std::vector<CanonicalTensor>> tensors =
      CanonicalTensors(Plan("A_tp1_pp1", {1, 2, 0, 1}));
  ASSERT_TRUE(tensors.ok());
  const std::vector<std::string> names = Names(*tensors);
  EXPECT_EQ(std::count(names.begin(), names.end(), "output_layer.weight"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "embedding.word_embeddings.weight"), 1);
}

// Marks every element each rank writes; every canonical element must be written exactly once.
void ExpectExactCover(const plan::ModelPlan& p) {
  absl::StatusOr<std::vector<CanonicalTensor>> tensors = CanonicalTensors(p);
  ASSERT_TRUE(tensors.ok());
  std::map<std::string, std::vector<int>> counts;
  for (const auto& t : *tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    counts[t.name].assign(n, 0);
  }
  for (int r = 0; r < p.world_size(); ++r) {
    absl::StatusOr<std::vector<std::vector<bool>>> owned = OwnedParameters(p, r);
    ASSERT_TRUE(owned.ok()) << owned.status();
    const plan::RankPlan rank = p.Rank(r);
    ASSERT_EQ(owned->size(), rank.stages.size());
    for (size_t c = 0; c < rank.stages.size(); ++c) {
      const auto& params = p.stages()[rank.stages[c]].params;
      ASSERT_EQ((*owned)[c].size(), params.size());
      for (size_t i = 0; i < params.size(); ++i) {
        if (!(*owned)[c][i]) continue;
        const plan::ParamInfo& info = params[i];
        EXPECT_FALSE(info.shared_embedding) << "rank " << r << " writes the copy " << info.name;
        std::vector<int>& count = counts[info.canonical_name];
        const auto& shape = info.canonical_shape;
        const int64_t cols = shape.size() > 1 ? shape[1] : 1;
        for (int64_t e = 0; e < static_cast<int64_t>(count.size()); ++e) {
          const int64_t row = e / cols, col = e % cols;
          bool mine = info.partition_dim < 0;
          for (const plan::Piece& piece : info.pieces) {
            const int64_t at = info.partition_dim == 0 ? row : col;
            mine = mine || (at >= piece.start && at < piece.start + piece.length);
          }
          if (mine) ++count[e];
        }
      }
    }
  }
  for (const auto& [name, count] : counts) {
    for (size_t e = 0; e < count.size(); ++e) {
      ASSERT_EQ(count[e], 1) << name << " element " << e;
    }
  }
}

TEST(OwnedParameters, EveryElementHasExactlyOneWriter) {
  ExpectExactCover(Plan("A_tp1_pp1", {2, 2, 0, 1}));
  ExpectExactCover(Plan("A_tp1_pp1", {2, 2, 2, 1, 2}));
  ExpectExactCover(Plan("B_tp1_pp1", {2, 2, 2, 1}));
  ExpectExactCover(Plan("B_tp1_pp1", {2, 1, 0, 1, 4}));
  ExpectExactCover(Plan("D_tp1_pp1_ep1", {2, 2, 0, 2}));
  ExpectExactCover(Plan("D_tp1_pp1_ep1", {1, 2, 2, 2, 4}));
}

TEST(OwnedParameters, ReplicasShareTheWritingAndCopiesWriteNothing) {
  const plan::ModelPlan p = Plan("A_tp1_pp1", {1, 2, 0, 1, 2});  // world 4: dp 2, pp 2
  std::vector<int64_t> bytes(4, 0);
  int64_t largest = 0;
  for (int r = 0; r < 4; ++r) {
    absl::StatusOr<std::vector<std::vector<bool>>> owned = OwnedParameters(p, r);
    ASSERT_TRUE(owned.ok());
    const auto& params = p.stages()[p.Rank(r).stages[0]].params;
    for (size_t i = 0; i < params.size(); ++i) {
      largest = std::max(largest, params[i].bytes());
      if (!(*owned)[0][i]) continue;
      bytes[r] += params[i].bytes();
      // The last stage's tied output layer is the first stage's embedding: never written.
      EXPECT_NE(params[i].name, "output_layer.weight") << "rank " << r;
    }
  }
  // Ranks 0/1 (first stage) and 2/3 (last stage) are data-parallel replicas: each pair splits
  // its stage's bytes within one tensor of each other.
  for (int pair : {0, 2}) {
    EXPECT_GT(bytes[pair], 0);
    EXPECT_GT(bytes[pair + 1], 0);
    EXPECT_LE(std::abs(bytes[pair] - bytes[pair + 1]), largest) << "ranks " << pair;
  }
  EXPECT_EQ(OwnedParameters(p, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Metadata, RoundTripsTheConfig) {
  const plan::ModelPlan p = Plan("D_tp1_pp1_ep1", {2, 2, 0, 2});
  absl::StatusOr<std::map<std::string, std::string>> metadata =
      CheckpointMetadata(p, {{"source", "test"}});
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->at("format"), "pt");
  EXPECT_EQ(metadata->at(kPaddedVocabKey), "1024");
  EXPECT_EQ(metadata->at(kSourceLayoutKey), "world=8 tp=2 pp=2 vp=1 cp=1 ep=2 etp=2");
  EXPECT_EQ(metadata->at("source"), "test");
  absl::StatusOr<GPTModelConfig> stored = StoredConfig(*metadata, "ckpt");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->SerializeAsString(), p.config().SerializeAsString());
}

TEST(Metadata, RejectsReservedKeysForeignFilesAndNewerVersions) {
  const plan::ModelPlan p = Plan("B_tp1_pp1", {1, 1, 0, 1});
  EXPECT_EQ(CheckpointMetadata(p, {{"gptb_config", "x"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckpointMetadata(p, {{"format", "tf"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::map<std::string, std::string> metadata = *CheckpointMetadata(p);
  EXPECT_EQ(StoredConfig({{"format", "pt"}}, "f").status().code(),
            absl::StatusCode::kInvalidArgument);
  metadata[kFormatVersionKey] = "2";
  absl::Status newer = StoredConfig(metadata, "f").status();
  EXPECT_EQ(newer.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(newer.message()), HasSubstr("version 2"));
  metadata[kFormatVersionKey] = "1";
  metadata[kConfigKey] = "{not json";
  EXPECT_EQ(StoredConfig(metadata, "f").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigCompatible, LayoutDtypeAndPaddingMayDiffer) {
  const GPTModelConfig a = Plan("B_tp1_pp1", {1, 1, 0, 1}).config();
  GPTModelConfig b = Plan("B_tp1_pp1", {2, 2, 2, 1}).config();
  b.mutable_transformer()->set_bf16(true);
  b.mutable_transformer()->set_params_dtype("bfloat16");
  b.mutable_transformer()->set_hidden_dropout(0.3);
  b.set_make_vocab_size_divisible_by(576);
  EXPECT_TRUE(CheckConfigCompatible(a, b, true, "ckpt").ok());
}

TEST(ConfigCompatible, ListsEveryArchitectureDifference) {
  const GPTModelConfig a = Plan("D_tp1_pp1_ep1", {1, 1, 0, 1}).config();
  GPTModelConfig b = a;
  b.mutable_transformer()->set_num_layers(2);
  b.mutable_transformer()->set_num_query_groups(4);
  b.mutable_transformer()->set_moe_router_topk(1);
  b.set_vocab_size(999);
  absl::Status s = CheckConfigCompatible(a, b, true, "/ckpt");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const auto& v : config::ViolationsFromStatus(s)) fields.push_back(v.field);
  EXPECT_THAT(fields, ::testing::UnorderedElementsAre("transformer.num_layers",
                                                      "transformer.num_query_groups",
                                                      "transformer.moe_router_topk", "vocab_size"));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the checkpoint at /ckpt has 4, the model has 2"));
  // Not strict: only what changes tensor shapes.
  fields.clear();
  for (const auto& v : config::ViolationsFromStatus(CheckConfigCompatible(a, b, false, "/ckpt"))) {
    fields.push_back(v.field);
  }
  EXPECT_THAT(fields, ::testing::UnorderedElementsAre(
                          "transformer.num_layers", "transformer.num_query_groups", "vocab_size"));
}

TEST(ConfigCompatible, NumericFieldsOnlyWhenStrict) {
  const GPTModelConfig a = Plan("B_tp1_pp1", {1, 1, 0, 1}).config();
  GPTModelConfig b = a;
  b.mutable_transformer()->set_layernorm_epsilon(1e-3);
  b.set_rotary_base(500000);
  EXPECT_EQ(CheckConfigCompatible(a, b, true, "c").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config::ViolationsFromStatus(CheckConfigCompatible(a, b, true, "c")).size(), 2u);
  EXPECT_TRUE(CheckConfigCompatible(a, b, false, "c").ok());
}

TEST(CheckpointFormat, Names) {
  EXPECT_EQ(ParseCheckpointFormat("hf"), CheckpointFormat::kHuggingFace);
  EXPECT_EQ(ParseCheckpointFormat("huggingface"), CheckpointFormat::kHuggingFace);
  EXPECT_EQ(ParseCheckpointFormat("canonical"), CheckpointFormat::kCanonical);
  EXPECT_EQ(ParseCheckpointFormat(""), CheckpointFormat::kAuto);
  EXPECT_FALSE(ParseCheckpointFormat("torch_dist").has_value());
  for (CheckpointFormat f :
       {CheckpointFormat::kAuto, CheckpointFormat::kCanonical, CheckpointFormat::kHuggingFace}) {
    EXPECT_EQ(ParseCheckpointFormat(CheckpointFormatName(f)), f);
  }
}

}  // namespace
}  // namespace gptb::checkpoint
