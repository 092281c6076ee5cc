#include "clients/cli/train_command.h"

#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::cli {
namespace {

using ::testing::UnorderedElementsAre;

absl::StatusOr<gptbuilder::v1::TrainStepRequest> Request(const std::vector<std::string>& args) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, TrainCommand().flags);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return parsed.status();
  return TrainRequestFromArgs(*parsed);
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const config::FieldViolation& v : config::ViolationsFromStatus(status)) {
    fields.push_back(v.field);
  }
  return fields;
}

TEST(TrainCommand, FlagsBecomeTheRequest) {
  absl::StatusOr<gptbuilder::v1::TrainStepRequest> r = Request(
      {"m",    "--steps",           "7",    "--data",           "/d/corpus", "--micro-batch-size",
       "2",    "--micro-batches",   "4",    "--seq-length",     "64",        "--lr",
       "3e-4", "--min-lr",          "1e-5", "--lr-decay-style", "cosine",    "--lr-decay-iters",
       "100",  "--lr-warmup-iters", "10",   "--clip-grad",      "0",         "--optimizer",
       "adamw"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model(), "m");
  EXPECT_EQ(r->steps(), 7);
  EXPECT_EQ(r->batch().data_path(), "/d/corpus");
  EXPECT_EQ(r->options().micro_batch_size(), 2);
  EXPECT_EQ(r->options().num_micro_batches(), 4);
  EXPECT_EQ(r->options().seq_length(), 64);
  EXPECT_DOUBLE_EQ(r->options().optimizer().lr(), 3e-4);
  EXPECT_DOUBLE_EQ(r->options().optimizer().min_lr(), 1e-5);
  EXPECT_TRUE(r->options().optimizer().has_clip_grad());
  EXPECT_DOUBLE_EQ(r->options().optimizer().clip_grad(), 0.0);
  EXPECT_EQ(r->options().optimizer().optimizer(), "adamw");
  EXPECT_EQ(r->options().scheduler().lr_decay_style(), "cosine");
  EXPECT_EQ(r->options().scheduler().lr_decay_iters(), 100);
  EXPECT_EQ(r->options().scheduler().lr_warmup_iters(), 10);
}

TEST(TrainCommand, DefaultsKeepTheModelsOptimizer) {
  absl::StatusOr<gptbuilder::v1::TrainStepRequest> r = Request({"m"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps(), 1);
  EXPECT_EQ(r->batch().synthetic_seed(), 1234u);
  // No optimizer flag: the request leaves the optimizer unset, so a later call keeps the first
  // call's settings.
  EXPECT_FALSE(r->options().has_optimizer());
  EXPECT_FALSE(r->options().has_scheduler());
  EXPECT_FALSE(r->options().has_seq_length());
  EXPECT_EQ(Request({"m", "--synthetic", "9"})->batch().synthetic_seed(), 9u);
}

TEST(TrainCommand, EveryBadFlagAtOnce) {
  absl::StatusOr<gptbuilder::v1::TrainStepRequest> r =
      Request({"m", "extra", "--steps", "0", "--data", "x", "--synthetic", "1", "--lr", "fast",
               "--micro-batches", "-2", "--optimizer", "lamb"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(r.status()), UnorderedElementsAre("MODEL", "--steps", "--data", "--lr",
                                                       "--micro-batches", "--optimizer"));
  // Optimizer flags without a learning rate: Megatron has no default lr.
  EXPECT_THAT(Fields(Request({"m", "--weight-decay", "0.1"}).status()),
              UnorderedElementsAre("--lr"));
}

}  // namespace
}  // namespace gptb::cli
