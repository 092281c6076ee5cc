#include "core/plan/pipeline_layout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

gptbuilder::v1::TransformerConfig Layers(int L, int p, std::optional<int> v = std::nullopt) {
  gptbuilder::v1::TransformerConfig t;
  t.set_num_layers(L);
  t.set_pipeline_model_parallel_size(p);
  if (v.has_value()) t.set_virtual_pipeline_model_parallel_size(*v);
  return t;
}

std::vector<std::pair<int, int>> CountsAndOffsets(const PipelineLayout& layout) {
  std::vector<std::pair<int, int>> out;
  for (const ChunkLayout& c : layout.chunks()) out.emplace_back(c.num_layers, c.layer_offset);
  return out;
}

TEST(PipelineLayout, EvenSplit) {
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(Layers(8, 4));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(CountsAndOffsets(*layout),
              ElementsAre(std::pair(2, 0), std::pair(2, 2), std::pair(2, 4), std::pair(2, 6)));
  EXPECT_TRUE(layout->Chunk(0, 0).pre_process);
  EXPECT_FALSE(layout->Chunk(0, 0).post_process);
  EXPECT_TRUE(layout->Chunk(3, 0).post_process);
  EXPECT_TRUE(layout->Chunk(3, 0).has_final_layernorm);
  EXPECT_FALSE(layout->Chunk(0, 0).vp_stage.has_value());
}

// Spec §4: L=8, p=2, v=2 -> pp0 holds [0,1] and [4,5], pp1 holds [2,3] and [6,7].
TEST(PipelineLayout, VirtualPipeline) {
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(Layers(8, 2, 2));
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->num_chunks(), 2);
  EXPECT_THAT(layout->Chunk(0, 0).LayerIds(), ElementsAre(0, 1));
  EXPECT_THAT(layout->Chunk(0, 1).LayerIds(), ElementsAre(4, 5));
  EXPECT_THAT(layout->Chunk(1, 0).LayerIds(), ElementsAre(2, 3));
  EXPECT_THAT(layout->Chunk(1, 1).LayerIds(), ElementsAre(6, 7));
  EXPECT_EQ(layout->Chunk(0, 1).vp_stage, 1);
  // pre/post: first vp chunk of pp0, last vp chunk of the last pp rank.
  EXPECT_TRUE(layout->Chunk(0, 0).pre_process);
  EXPECT_FALSE(layout->Chunk(0, 1).pre_process);
  EXPECT_FALSE(layout->Chunk(1, 0).post_process);
  EXPECT_TRUE(layout->Chunk(1, 1).post_process);
}

TEST(PipelineLayout, VirtualPipelineIgnoredWithoutPipeline) {
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(Layers(4, 1, 2));
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->num_chunks(), 1);
  EXPECT_FALSE(layout->Chunk(0, 0).vp_stage.has_value());
  EXPECT_EQ(layout->Chunk(0, 0).num_layers, 4);
}

// Spec §4: L=30, p=4, first=last=6 builds 6/9/9/6 at offsets 0/6/15/24.
TEST(PipelineLayout, UnevenFirstAndLast) {
  gptbuilder::v1::TransformerConfig t = Layers(30, 4);
  t.set_num_layers_in_first_pipeline_stage(6);
  t.set_num_layers_in_last_pipeline_stage(6);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(CountsAndOffsets(*layout),
              ElementsAre(std::pair(6, 0), std::pair(9, 6), std::pair(9, 15), std::pair(6, 24)));
}

TEST(PipelineLayout, UnevenFirstOnly) {
  // Golden config E: 5 layers, first stage 2 -> 2 and 3.
  gptbuilder::v1::TransformerConfig t = Layers(5, 2);
  t.set_num_layers_in_first_pipeline_stage(2);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(CountsAndOffsets(*layout), ElementsAre(std::pair(2, 0), std::pair(3, 2)));
}

TEST(PipelineLayout, UnevenWithVirtualPipeline) {
  // L=12, p=3, v=2, first=2, last=2: middle 8 on one rank; per chunk 1/4/1.
  gptbuilder::v1::TransformerConfig t = Layers(12, 3, 2);
  t.set_num_layers_in_first_pipeline_stage(2);
  t.set_num_layers_in_last_pipeline_stage(2);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  // pp-major: (pp0,v0) (pp0,v1) (pp1,v0) (pp1,v1) (pp2,v0) (pp2,v1)
  EXPECT_THAT(CountsAndOffsets(*layout),
              ElementsAre(std::pair(1, 0), std::pair(1, 6), std::pair(4, 1), std::pair(4, 7),
                          std::pair(1, 5), std::pair(1, 11)));
}

// Spec §4: L=30, p=4, both account flags: 7/8/8/7 at 0/7/15/23.
TEST(PipelineLayout, AccountForEmbeddingAndLoss) {
  gptbuilder::v1::TransformerConfig t = Layers(30, 4);
  t.set_account_for_embedding_in_pipeline_split(true);
  t.set_account_for_loss_in_pipeline_split(true);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(CountsAndOffsets(*layout),
              ElementsAre(std::pair(7, 0), std::pair(8, 7), std::pair(8, 15), std::pair(7, 23)));
}

TEST(PipelineLayout, AccountForEmbeddingWithVirtualPipeline) {
  // L=7 + 1 embedding slot = 8 over p=2, v=2: chunks of 2; pp0 v0 builds 1.
  gptbuilder::v1::TransformerConfig t = Layers(7, 2, 2);
  t.set_account_for_embedding_in_pipeline_split(true);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(CountsAndOffsets(*layout),
              ElementsAre(std::pair(1, 0), std::pair(2, 3), std::pair(2, 1), std::pair(2, 5)));
}

// Spec §4: "E|(tt|)*2,(t|)*4,mL" expands to [E][t,t][t,t][t][t][t][t][m,L]; with p=4, v=2.
TEST(PipelineLayout, LayoutString) {
  gptbuilder::v1::TransformerConfig t = Layers(8, 4);
  t.set_mtp_num_layers(1);
  t.set_pipeline_model_parallel_layout("E|(tt|)*2,(t|)*4,mL");
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->num_chunks(), 2);
  EXPECT_TRUE(layout->virtual_pipeline());
  EXPECT_EQ(layout->Chunk(0, 0).num_layers, 0);
  EXPECT_THAT(layout->Chunk(1, 0).LayerIds(), ElementsAre(0, 1));
  EXPECT_THAT(layout->Chunk(2, 0).LayerIds(), ElementsAre(2, 3));
  EXPECT_THAT(layout->Chunk(3, 0).LayerIds(), ElementsAre(4));
  EXPECT_THAT(layout->Chunk(0, 1).LayerIds(), ElementsAre(5));
  EXPECT_THAT(layout->Chunk(1, 1).LayerIds(), ElementsAre(6));
  EXPECT_THAT(layout->Chunk(2, 1).LayerIds(), ElementsAre(7));
  EXPECT_EQ(layout->Chunk(3, 1).num_layers, 0);
  EXPECT_EQ(layout->Chunk(3, 1).num_mtp_layers, 1);
  // With MTP the final norm sits with the last decoder layer, not on the post_process chunk.
  EXPECT_TRUE(layout->Chunk(2, 1).has_final_layernorm);
  EXPECT_FALSE(layout->Chunk(3, 1).has_final_layernorm);
  EXPECT_TRUE(layout->Chunk(3, 1).post_process);
}

TEST(PipelineLayout, MtpOnLastStageWithoutLayout) {
  gptbuilder::v1::TransformerConfig t = Layers(4, 2);
  t.set_mtp_num_layers(2);
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->Chunk(0, 0).num_mtp_layers, 0);
  EXPECT_EQ(layout->Chunk(1, 0).num_mtp_layers, 2);
  EXPECT_TRUE(layout->Chunk(1, 0).has_final_layernorm);
}

TEST(PipelineLayout, BadLayoutStringsAreErrors) {
  gptbuilder::v1::TransformerConfig t = Layers(4, 2);
  t.set_pipeline_model_parallel_layout("Ett|txL");
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()), HasSubstr("invalid layer character 'x'"));

  t.set_pipeline_model_parallel_layout("Ett|tL|t");  // 3 stages over p=2
  layout = PipelineLayout::Create(t);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()), HasSubstr("not a multiple"));

  t.set_pipeline_model_parallel_layout("Ett|tL");  // 3 decoders for num_layers 4
  layout = PipelineLayout::Create(t);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()), HasSubstr("3 decoder layers"));

  t.set_pipeline_model_parallel_layout("tEt|ttL");  // embedding not first
  layout = PipelineLayout::Create(t);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()), HasSubstr("first layer"));
}

TEST(PipelineLayout, UnevenRemainderIsAnError) {
  gptbuilder::v1::TransformerConfig t = Layers(10, 4);
  t.set_num_layers_in_first_pipeline_stage(3);  // 7 left over 3 stages
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(t);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()),
              HasSubstr("transformer.num_layers: number of layers at middle stage: 7"));
}

std::vector<std::string> Reasons(const std::vector<PipelineSplitProblem>& problems) {
  std::vector<std::string> out;
  for (const PipelineSplitProblem& p : problems) out.push_back(p.field + " " + p.reason);
  return out;
}

// Each way of splitting, one problem it can have (Finalize reports these as field violations;
// config_finalize_rules_test checks their texts).
TEST(PipelineSplitRules, NameTheFieldAndTheReason) {
  EXPECT_THAT(Reasons(CheckPipelineSplit(Layers(8, 4))), ElementsAre());
  EXPECT_THAT(Reasons(CheckPipelineSplit(Layers(10, 4))),
              ElementsAre("num_layers PIPELINE_SPLIT_UNEVEN"));

  gptbuilder::v1::TransformerConfig uneven = Layers(10, 4);
  uneven.set_num_layers_in_first_pipeline_stage(0);
  EXPECT_THAT(Reasons(CheckPipelineSplit(uneven)),
              ElementsAre("num_layers_in_first_pipeline_stage NOT_POSITIVE"));
  uneven.set_num_layers_in_first_pipeline_stage(4);
  uneven.set_num_layers_in_last_pipeline_stage(2);  // 4 middle layers over 2 stages
  EXPECT_THAT(Reasons(CheckPipelineSplit(uneven)), ElementsAre());
  uneven.set_virtual_pipeline_model_parallel_size(2);  // 2 per middle rank / 2 chunks: fine
  EXPECT_THAT(Reasons(CheckPipelineSplit(uneven)), ElementsAre());
  uneven.set_num_layers_in_last_pipeline_stage(3);  // 3 % 2, and 3 middle layers over 2 stages
  EXPECT_THAT(Reasons(CheckPipelineSplit(uneven)),
              ElementsAre("num_layers_in_last_pipeline_stage PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
                          "num_layers PIPELINE_SPLIT_NOT_DIVISIBLE"));

  gptbuilder::v1::TransformerConfig account = Layers(8, 4);
  account.set_account_for_embedding_in_pipeline_split(true);  // 9 slots over 4
  EXPECT_THAT(Reasons(CheckPipelineSplit(account)),
              ElementsAre("num_layers PIPELINE_SPLIT_NOT_DIVISIBLE"));
  account.set_account_for_loss_in_pipeline_split(true);  // 10 slots over 4
  EXPECT_THAT(Reasons(CheckPipelineSplit(account)),
              ElementsAre("num_layers PIPELINE_SPLIT_NOT_DIVISIBLE"));
  account.set_num_layers(6);  // 8 slots: 2 per rank
  EXPECT_THAT(Reasons(CheckPipelineSplit(account)), ElementsAre());

  EXPECT_THAT(Reasons(CheckPipelineSplit(Layers(12, 4, 2))),
              ElementsAre("virtual_pipeline_model_parallel_size VP_CHUNKS_UNEVEN"));
}

TEST(PipelineSplitRules, LayoutStringProblemsAreInvalidLayout) {
  gptbuilder::v1::TransformerConfig t = Layers(4, 2);
  std::vector<PipelineSplitProblem> problems;
  EXPECT_FALSE(CheckLayoutString(t, &problems).has_value());  // no layout
  EXPECT_TRUE(problems.empty());
  t.set_pipeline_model_parallel_layout("Ett|tL");  // parses; 3 decoders for num_layers 4
  std::optional<PipelineLayoutString> layout = CheckLayoutString(t, &problems);
  ASSERT_TRUE(layout.has_value());
  EXPECT_THAT(Reasons(problems), ElementsAre("pipeline_model_parallel_layout INVALID_LAYOUT"));
  EXPECT_THAT(problems[0].message, HasSubstr("3 decoder layers"));
  problems.clear();
  t.set_pipeline_model_parallel_layout("Ett|txL");  // does not parse
  EXPECT_FALSE(CheckLayoutString(t, &problems).has_value());
  EXPECT_THAT(Reasons(problems), ElementsAre("pipeline_model_parallel_layout INVALID_LAYOUT"));
  // A layout decides the split on its own: CheckPipelineSplit has nothing to add.
  t.set_num_layers(5);
  EXPECT_THAT(Reasons(CheckPipelineSplit(t)), ElementsAre());
}

// Create's own refusals (Finalize reports these first, as field violations).
TEST(PipelineLayout, CreateRefusesWhatFinalizeRefuses) {
  absl::StatusOr<PipelineLayout> layout = PipelineLayout::Create(Layers(8, 0));
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()),
              HasSubstr("transformer.pipeline_model_parallel_size must be >= 1, got 0"));
  gptbuilder::v1::TransformerConfig blank = Layers(8, 2);
  blank.set_pipeline_model_parallel_layout("  ");
  layout = PipelineLayout::Create(blank);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()),
              HasSubstr("transformer.pipeline_model_parallel_layout: must not be empty"));
  gptbuilder::v1::TransformerConfig both = Layers(8, 1);
  both.set_num_layers_in_first_pipeline_stage(4);
  both.set_num_layers_in_last_pipeline_stage(4);
  layout = PipelineLayout::Create(both);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()),
              HasSubstr("transformer.num_layers_in_first_pipeline_stage: "));
}

}  // namespace
}  // namespace gptb::plan
