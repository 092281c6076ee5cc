// Finalize applies Megatron's PipelineParallelLayerLayout rules to
// pipeline_model_parallel_layout and derives the virtual pipeline size from it.
#include <functional>
#include <string>
#include <vector>

#include "core/config/finalize.h"
#include "core/config/violations.h"
#include "core/plan/pipeline_layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::config {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

gptbuilder::v1::GPTModelConfig Config(const std::string& layout, int pp, int layers = 8) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(layers);
  t->set_hidden_size(64);
  t->set_num_attention_heads(4);
  t->set_pipeline_model_parallel_size(pp);
  t->set_pipeline_model_parallel_layout(layout);
  c.set_vocab_size(1024);
  return c;
}

TEST(FinalizePipelineLayout, DerivesVirtualPipelineSize) {
  gptbuilder::v1::GPTModelConfig c = Config("E|(tt|)*2,(t|)*4,mL", 4);
  c.mutable_transformer()->set_mtp_num_layers(1);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(c);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->transformer().virtual_pipeline_model_parallel_size(), 2);
  // A layout with one chunk per rank leaves VP unset.
  f = Finalize(Config("Ettttt|tttL", 2));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->transformer().has_virtual_pipeline_model_parallel_size());
}

TEST(FinalizePipelineLayout, ReportsEveryProblem) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(Config("tEtt|ttt", 2));
  ASSERT_FALSE(f.ok());
  std::vector<FieldViolation> v = ViolationsFromStatus(f.status());
  std::string all;
  for (const FieldViolation& x : v) {
    EXPECT_EQ(x.field, "transformer.pipeline_model_parallel_layout");
    all += x.description + "\n";
  }
  EXPECT_THAT(all, HasSubstr("first layer"));
  EXPECT_THAT(all, HasSubstr("loss 'L'"));
  EXPECT_THAT(all, HasSubstr("6 decoder layers"));
}

TEST(FinalizePipelineLayout, GrammarAndStageCount) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(Config("Ett|tq|L", 3));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("invalid layer character 'q'"));
  f = Finalize(Config("Etttt|ttttL|", 2));  // 3 stages over 2 ranks
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a multiple"));
}

TEST(FinalizePipelineLayout, VirtualSizeMustAgree) {
  gptbuilder::v1::GPTModelConfig c = Config("Ett|tt|tt|ttL", 2);
  c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(3);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(c);
  ASSERT_FALSE(f.ok());
  std::vector<FieldViolation> v = ViolationsFromStatus(f.status());
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].field, "transformer.virtual_pipeline_model_parallel_size");
  EXPECT_EQ(v[0].reason, "LAYOUT_VP_CONFLICT");
  c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(2);
  EXPECT_TRUE(Finalize(c).ok());
}

// Every problem core/plan's pipeline-split rules can find (CheckLayoutString,
// CheckPipelineSplit) reaches Finalize's answer as a violation on `transformer.<field>` with the
// module's reason and message unchanged.
struct SplitCase {
  const char* name;
  const char* reason;  // the problem this case must produce
  std::function<void(gptbuilder::v1::TransformerConfig*)> set;
};

TEST(FinalizePipelineLayout, EverySplitProblemIsAFieldViolation) {
  const std::vector<SplitCase> cases = {
      {"uneven", "PIPELINE_SPLIT_UNEVEN",
       [](auto* t) {
         t->set_num_layers(10);
         t->set_pipeline_model_parallel_size(4);
       }},
      {"first stage not positive", "NOT_POSITIVE",
       [](auto* t) {
         t->set_num_layers(10);
         t->set_pipeline_model_parallel_size(4);
         t->set_num_layers_in_first_pipeline_stage(0);
       }},
      {"first and last with pp 1", "PIPELINE_SPLIT_MISMATCH",
       [](auto* t) {
         t->set_num_layers(8);
         t->set_pipeline_model_parallel_size(1);
         t->set_num_layers_in_first_pipeline_stage(4);
         t->set_num_layers_in_last_pipeline_stage(4);
       }},
      {"no layers left for the middle", "PIPELINE_SPLIT_MISMATCH",
       [](auto* t) {
         t->set_num_layers(8);
         t->set_pipeline_model_parallel_size(3);
         t->set_num_layers_in_first_pipeline_stage(4);
         t->set_num_layers_in_last_pipeline_stage(4);
       }},
      {"middle not divisible", "PIPELINE_SPLIT_NOT_DIVISIBLE",
       [](auto* t) {
         t->set_num_layers(10);
         t->set_pipeline_model_parallel_size(4);
         t->set_num_layers_in_first_pipeline_stage(3);
       }},
      {"last stage not divisible by vp", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto* t) {
         t->set_num_layers(12);
         t->set_pipeline_model_parallel_size(4);
         t->set_virtual_pipeline_model_parallel_size(2);
         t->set_num_layers_in_first_pipeline_stage(4);
         t->set_num_layers_in_last_pipeline_stage(3);  // 3 % 2
       }},
      {"middle ranks not divisible by vp", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto* t) {
         t->set_num_layers(10);
         t->set_pipeline_model_parallel_size(4);
         t->set_virtual_pipeline_model_parallel_size(2);
         t->set_num_layers_in_first_pipeline_stage(2);
         t->set_num_layers_in_last_pipeline_stage(2);  // 6 middle layers: 3 per rank, 3 % 2
       }},
      {"embedding and loss slots not divisible", "PIPELINE_SPLIT_NOT_DIVISIBLE",
       [](auto* t) {
         t->set_num_layers(8);
         t->set_pipeline_model_parallel_size(4);
         t->set_account_for_embedding_in_pipeline_split(true);
       }},
      {"embedding and loss slots not divisible by vp", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto* t) {
         t->set_num_layers(10);
         t->set_pipeline_model_parallel_size(4);
         t->set_virtual_pipeline_model_parallel_size(2);
         t->set_account_for_embedding_in_pipeline_split(true);
         t->set_account_for_loss_in_pipeline_split(true);  // 12 slots: 3 per rank, 3 % 2
       }},
      {"vp chunks uneven", "VP_CHUNKS_UNEVEN",
       [](auto* t) {
         t->set_num_layers(12);
         t->set_pipeline_model_parallel_size(4);
         t->set_virtual_pipeline_model_parallel_size(2);
       }},
      {"layout does not parse", "INVALID_LAYOUT",
       [](auto* t) {
         t->set_num_layers(4);
         t->set_pipeline_model_parallel_size(2);
         t->set_pipeline_model_parallel_layout("Ett|txL");
       }},
      {"layout has the wrong layer count", "INVALID_LAYOUT",
       [](auto* t) {
         t->set_num_layers(4);
         t->set_pipeline_model_parallel_size(2);
         t->set_pipeline_model_parallel_layout("Ett|tL");
       }},
  };
  for (const SplitCase& split : cases) {
    SCOPED_TRACE(split.name);
    gptbuilder::v1::GPTModelConfig c = Config("", 1);
    c.mutable_transformer()->clear_pipeline_model_parallel_layout();
    split.set(c.mutable_transformer());
    std::vector<plan::PipelineSplitProblem> problems;
    (void)plan::CheckLayoutString(c.transformer(), &problems);
    for (plan::PipelineSplitProblem& p : plan::CheckPipelineSplit(c.transformer())) {
      problems.push_back(std::move(p));
    }
    std::vector<std::string> reasons;
    for (const plan::PipelineSplitProblem& p : problems) reasons.push_back(p.reason);
    EXPECT_THAT(reasons, Contains(split.reason));
    absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(c);
    ASSERT_FALSE(f.ok());
    const std::vector<FieldViolation> violations = ViolationsFromStatus(f.status());
    for (const plan::PipelineSplitProblem& p : problems) {
      EXPECT_THAT(violations,
                  Contains(AllOf(Field(&FieldViolation::field, "transformer." + p.field),
                                 Field(&FieldViolation::reason, p.reason),
                                 Field(&FieldViolation::description, p.message))))
          << p.field << " " << p.reason << ": " << p.message;
    }
  }
}

}  // namespace
}  // namespace gptb::config
