// Train steps on whole worlds (ranks as threads over Gloo): every parallel layout trains the same
// model as a single rank (first-step loss within 1e-5, ten steps within 1e-4), tied embedding
// copies stay identical, a tiny model learns a repeated corpus, and a lost rank fails the step.
#include <chrono>
#include <cmath>

#include "core/model/gpt_stage.h"
#include "gmock/gmock.h"
#include "tests/unit/train/train_harness.h"

namespace gptb::train {
namespace {

using testing::Layout;

std::string Name(const Layout& l, bool dist_opt = false) {
  return "tp" + std::to_string(l.tp) + " pp" + std::to_string(l.pp) + " vp" + std::to_string(l.vp) +
         " ep" + std::to_string(l.ep) + " dp" + std::to_string(l.dp) +
         (dist_opt ? " distributed optimizer" : "");
}

struct Case {
  Layout layout;
  bool dist_opt = false;
};

// Trains `config` at each layout for `steps` steps with the same global batch (8 samples in
// micro-batches of 2) and checks every rank against a single rank.
void ExpectLayoutsTrackSingleRank(const gptbuilder::v1::GPTModelConfig& config,
                                  const std::vector<Case>& cases, int steps) {
  constexpr int kGlobal = 8, kMicro = 2;
  auto reference_world = testing::BuildWorld(testing::WithLayout(config, {}), 1);
  ASSERT_TRUE(reference_world->ranks[0] != nullptr);
  const auto reference =
      testing::Train(*reference_world, testing::Request(kMicro, kGlobal / kMicro), steps)[0];
  ASSERT_EQ(static_cast<int>(reference.size()), steps);
  for (const TrainStepResult& r : reference) {
    ASSERT_TRUE(std::isfinite(r.loss));
    ASSERT_GT(r.grad_norm, 0.0);
  }
  // The parameters move: the losses of later steps differ from the first.
  EXPECT_NE(reference.back().loss, reference.front().loss);
  for (const Case& c : cases) {
    SCOPED_TRACE(Name(c.layout, c.dist_opt));
    testing::WorldOptions options;
    options.ddp.set_use_distributed_optimizer(c.dist_opt);
    auto world = testing::BuildWorld(testing::WithLayout(config, c.layout),
                                     testing::WorldSize(c.layout), options);
    for (const auto& rank : world->ranks) ASSERT_TRUE(rank != nullptr);
    const auto results =
        testing::Train(*world, testing::Request(kMicro, kGlobal / (kMicro * c.layout.dp)), steps);
    for (size_t rank = 0; rank < results.size(); ++rank) {
      ASSERT_EQ(static_cast<int>(results[rank].size()), steps) << "rank " << rank;
      EXPECT_NEAR(results[rank][0].loss, reference[0].loss, 1e-5) << "first step, rank " << rank;
      for (int s = 0; s < steps; ++s) {
        const TrainStepResult& got = results[rank][s];
        const TrainStepResult& want = reference[s];
        EXPECT_NEAR(got.loss, want.loss, 1e-4) << "step " << s << " rank " << rank;
        EXPECT_NEAR(got.aux_loss, want.aux_loss, 1e-4) << "step " << s << " rank " << rank;
        EXPECT_NEAR(got.mtp_loss, want.mtp_loss, 1e-4) << "step " << s << " rank " << rank;
        EXPECT_NEAR(got.grad_norm, want.grad_norm, 1e-4 * std::max(1.0, want.grad_norm))
            << "step " << s << " rank " << rank;
        EXPECT_DOUBLE_EQ(got.learning_rate, want.learning_rate);
        EXPECT_EQ(got.tokens, want.tokens);
        // Every rank reports the same figures.
        EXPECT_EQ(got.loss, results[0][s].loss);
        EXPECT_EQ(got.grad_norm, results[0][s].grad_norm);
      }
    }
  }
}

TEST(TrainStepTest, DenseLayoutsTrackSingleRank) {
  ExpectLayoutsTrackSingleRank(testing::TinyGpt(),
                               {{{2, 2, 0, 1, 1}},
                                {{2, 2, 2, 1, 1}},
                                {{1, 2, 0, 1, 2}},
                                {{2, 1, 0, 1, 2}},
                                {{1, 2, 2, 1, 2}, true},
                                {{1, 4, 0, 1, 1}}},
                               10);
}

TEST(TrainStepTest, UntiedRopeRmsNormSwiGluLayoutsTrackSingleRank) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  c.set_share_embeddings_and_output_weights(false);
  c.set_position_embedding_type("rope");
  c.mutable_transformer()->set_normalization("RMSNorm");
  c.mutable_transformer()->set_activation_func("silu");
  c.mutable_transformer()->set_gated_linear_unit(true);
  c.mutable_transformer()->set_add_bias_linear(false);
  c.mutable_transformer()->set_num_query_groups(2);
  ExpectLayoutsTrackSingleRank(c, {{{2, 2, 2, 1, 1}}, {{2, 1, 0, 1, 2}, true}}, 10);
}

TEST(TrainStepTest, MultiTokenPredictionTracksSingleRank) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  c.mutable_transformer()->set_mtp_num_layers(1);
  c.mutable_transformer()->set_mtp_loss_scaling_factor(0.3);
  ExpectLayoutsTrackSingleRank(c, {{{1, 2, 0, 1, 1}}, {{2, 2, 0, 1, 1}}}, 6);
}

TEST(TrainStepTest, MixtureOfExpertsWithAuxLossTracksSingleRank) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  auto* t = c.mutable_transformer();
  t->set_normalization("RMSNorm");
  t->set_add_bias_linear(false);
  t->set_num_moe_experts(4);
  t->set_moe_router_topk(2);
  t->set_moe_ffn_hidden_size(64);
  t->set_moe_aux_loss_coeff(0.01);
  ExpectLayoutsTrackSingleRank(c, {{{1, 1, 0, 2, 2}}, {{1, 2, 0, 1, 1}}, {{1, 2, 0, 2, 2}}}, 6);
}

// Sequence parallelism (Transformer Engine's spec: torch norms refuse it) over several steps: the
// replicated copies of q/k norms, norms, biases and the router take the same updates on every
// tensor-parallel rank, so the layouts keep tracking one rank.
TEST(TrainStepTest, SequenceParallelLayoutsTrackSingleRank) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  c.mutable_transformer_layer_spec()->set_name("transformer_engine");
  c.set_share_embeddings_and_output_weights(false);
  c.set_position_embedding_type("rope");
  auto* t = c.mutable_transformer();
  t->set_normalization("RMSNorm");
  t->set_add_bias_linear(false);
  t->set_qk_layernorm(true);
  t->set_num_query_groups(2);
  ExpectLayoutsTrackSingleRank(c, {{{2, 1, 0, 1, 2, 0, true}, true}}, 6);
  t->set_num_moe_experts(4);
  t->set_moe_router_topk(2);
  t->set_moe_ffn_hidden_size(64);
  t->set_moe_aux_loss_coeff(0.01);
  t->set_qk_layernorm(false);
  ExpectLayoutsTrackSingleRank(c, {{{2, 1, 0, 2, 2, 0, true}}}, 4);
}

// Megatron refuses to train MoE layers with tensor parallelism but no sequence parallelism (every
// tp rank would dispatch the same tokens).
TEST(TrainStepTest, MixtureOfExpertsWithTensorParallelismIsRefused) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  c.mutable_transformer()->set_add_bias_linear(false);
  c.mutable_transformer()->set_num_moe_experts(4);
  c.mutable_transformer()->set_moe_router_topk(2);
  auto world = testing::BuildWorld(testing::WithLayout(c, {2, 1, 0, 1, 1}), 2);
  ASSERT_TRUE(world->ranks[0] != nullptr);
  auto result = world->trainers[0]->Step(testing::Request(1, 1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("sequence_parallel"));
}

// Dropout under tensor parallelism follows Megatron's random streams: without sequence
// parallelism hidden and embedding dropout draw from the default stream, the same on both TP
// ranks, so their copies of the residual stream -- and of every replicated parameter -- stay
// identical through training; attention dropout draws from the tensor-parallel stream, a
// different mask per rank's heads. With sequence parallelism every dropout uses the
// tensor-parallel stream (each rank holds its own tokens) and the replicated parameters'
// gradients are summed over TP. Dropout must also change the step: the same weights and tokens
// without dropout give another loss.
TEST(TrainStepTest, DropoutUnderTensorParallelismKeepsReplicasIdentical) {
  for (const bool sequence_parallel : {false, true}) {
    SCOPED_TRACE(sequence_parallel ? "sequence parallel" : "no sequence parallelism");
    gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
    c.mutable_transformer()->set_sequence_parallel(sequence_parallel);
    // Megatron runs sequence parallelism only with Transformer Engine's norms.
    if (sequence_parallel) c.mutable_transformer_layer_spec()->set_name("transformer_engine");
    Layout layout{2, 1, 0, 1, 1};
    layout.sequence_parallel = sequence_parallel;
    auto losses = [&](double dropout) {
      c.mutable_transformer()->set_hidden_dropout(dropout);
      c.mutable_transformer()->set_attention_dropout(dropout);
      auto world = testing::BuildWorld(testing::WithLayout(c, layout), 2);
      std::vector<double> out;
      if (world->ranks[0] == nullptr || world->ranks[1] == nullptr) return out;
      const auto results = testing::Train(*world, testing::Request(2, 2, 1e-2), 3);
      if (results[0].size() != 3u) return out;
      for (const auto& r : results[0]) out.push_back(r.loss);
      // Every parameter both TP ranks hold whole (norms, position embeddings, row-parallel
      // biases) must be bit-identical after three updates.
      int replicated = 0;
      torch::NoGradGuard no_grad;
      const auto& stage0 = world->ranks[0]->stages()[0];
      const auto& stage1 = world->ranks[1]->stages()[0];
      const auto p0 = stage0->named_parameters();
      const auto p1 = stage1->named_parameters();
      const std::vector<plan::ParamInfo>& infos = stage0->plan().params;
      for (size_t i = 0; i < infos.size(); ++i) {
        if (infos[i].partition_dim >= 0) continue;
        ++replicated;
        EXPECT_TRUE(torch::equal(p0[infos[i].name], p1[infos[i].name]))
            << infos[i].name << " differs between the tensor-parallel ranks (dropout " << dropout
            << ")";
      }
      EXPECT_GT(replicated, 4);
      return out;
    };
    const std::vector<double> with = losses(0.2);
    const std::vector<double> without = losses(0.0);
    ASSERT_EQ(with.size(), 3u);
    ASSERT_EQ(without.size(), 3u);
    EXPECT_TRUE(std::isfinite(with.back()));
    EXPECT_NE(with.front(), without.front()) << "dropout did not change the step";
  }
}

// With a pipeline, the first stage's word embeddings and the last stage's output layer are two
// copies of one tensor: they must stay bit-identical through training.
TEST(TrainStepTest, TiedEmbeddingCopiesStayIdentical) {
  for (const bool mtp : {false, true}) {
    SCOPED_TRACE(mtp ? "with MTP" : "without MTP");
    gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
    if (mtp) c.mutable_transformer()->set_mtp_num_layers(1);
    const Layout layout{2, 2, 0, 1, 1};
    auto world = testing::BuildWorld(testing::WithLayout(c, layout), 4);
    ASSERT_FALSE(HasFailure());
    auto find = [&](int rank, const std::string& name) {
      for (const auto& stage : world->ranks[rank]->stages()) {
        for (const auto& item : stage->named_parameters()) {
          if (item.key() == name) return item.value().detach().clone();
        }
      }
      ADD_FAILURE() << name << " not on rank " << rank;
      return torch::Tensor();
    };
    // Ranks 0, 1: pp 0 (tp 0, 1); ranks 2, 3: pp 1.
    const torch::Tensor before = find(0, "embedding.word_embeddings.weight");
    testing::Train(*world, testing::Request(2, 4, 1e-2), 5);
    for (int tp = 0; tp < 2; ++tp) {
      const torch::Tensor original = find(tp, "embedding.word_embeddings.weight");
      EXPECT_TRUE(torch::equal(original, find(2 + tp, "output_layer.weight"))) << "tp " << tp;
      if (mtp) {
        EXPECT_TRUE(torch::equal(original, find(2 + tp, "embedding.word_embeddings.weight")))
            << "tp " << tp;
        EXPECT_TRUE(torch::equal(find(tp, "embedding.position_embeddings.weight"),
                                 find(2 + tp, "embedding.position_embeddings.weight")))
            << "tp " << tp;
      }
    }
    EXPECT_FALSE(torch::equal(before, find(0, "embedding.word_embeddings.weight")))
        << "training did not change the embeddings";
  }
}

// A small repeated corpus (8 fixed samples of a periodic pattern) is learned: the loss falls
// from about ln(1000) to below 0.5 within 60 steps.
TEST(TrainStepTest, LearnsARepeatedCorpus) {
  constexpr int kSamples = 8, kSeq = 32;
  TrainRequest request = testing::Request(4, 2, 3e-3);
  request.options.set_seq_length(kSeq);
  for (int i = 0; i < kSamples; ++i) {
    for (int j = 0; j <= kSeq; ++j)
      request.batch.mutable_tokens()->add_ids((7 * i + 3 * j) % 50 + 100);
  }
  auto world = testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), {1, 2, 0, 1, 1}), 2);
  ASSERT_FALSE(HasFailure());
  const auto results = testing::Train(*world, request, 60);
  ASSERT_EQ(results[0].size(), 60u);
  const double first = results[0].front().loss, last = results[0].back().loss;
  EXPECT_GT(first, 6.0);
  EXPECT_LT(last, 0.5) << "first " << first;
  EXPECT_GT(results[0].back().tokens_per_second, 0.0);
}

// A rank that stops taking part (or disappears) makes every other rank's step fail with an
// error within the process-group timeout, and the trainers refuse further steps.
TEST(TrainStepTest, LostRankFailsTheStepWithinTheTimeout) {
  for (const bool destroy : {false, true}) {
    SCOPED_TRACE(destroy ? "rank destroyed" : "rank silent");
    testing::WorldOptions options;
    options.timeout = std::chrono::milliseconds(3000);
    const Layout layout{1, 2, 0, 1, 2};
    auto world = testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), layout), 4, options);
    ASSERT_FALSE(HasFailure());
    const TrainRequest request = testing::Request(2, 2);
    testing::Train(*world, request, 1);  // everyone healthy first
    ASSERT_FALSE(HasFailure());
    constexpr int kLost = 3;  // pp 1, dp 1
    if (destroy) {
      world->trainers[kLost].reset();
      world->ranks[kLost].reset();
    }
    std::vector<absl::Status> status(4);
    std::vector<double> seconds(4, 0.0);
    testing::OnEveryRank(4, [&](int rank) {
      if (rank == kLost) return;
      const auto start = std::chrono::steady_clock::now();
      status[rank] = world->trainers[rank]->Step(request).status();
      seconds[rank] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
    for (int rank = 0; rank < 4; ++rank) {
      if (rank == kLost) continue;
      EXPECT_FALSE(status[rank].ok()) << "rank " << rank;
      EXPECT_THAT(status[rank].code(), ::testing::AnyOf(absl::StatusCode::kDeadlineExceeded,
                                                        absl::StatusCode::kUnavailable))
          << "rank " << rank << ": " << status[rank];
      EXPECT_LT(seconds[rank], 3 * 3.0) << "rank " << rank;
      auto again = world->trainers[rank]->Step(request);
      EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
    }
  }
}

TEST(TrainStepTest, RejectsBadRequestsBeforeAnyCommunication) {
  auto world = testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), {1, 2, 2, 1, 1}), 2);
  ASSERT_FALSE(HasFailure());
  struct Bad {
    std::function<void(TrainRequest&)> mutate;
    absl::StatusCode code;
    const char* text;
  };
  std::vector<Bad> cases = {
      {[](TrainRequest& r) { r.options.set_micro_batch_size(0); },
       absl::StatusCode::kInvalidArgument, "options.micro_batch_size"},
      {[](TrainRequest& r) { r.options.set_num_micro_batches(1); },
       absl::StatusCode::kInvalidArgument, "num_micro_batches"},  // interleaving needs M >= pp
      {[](TrainRequest& r) { r.options.set_seq_length(33); }, absl::StatusCode::kInvalidArgument,
       "options.seq_length"},
      {[](TrainRequest& r) { r.batch.Clear(); }, absl::StatusCode::kInvalidArgument, "batch"},
      {[](TrainRequest& r) { r.batch.mutable_tokens()->add_ids(1); },
       absl::StatusCode::kInvalidArgument, "batch.tokens.ids"},
      {[](TrainRequest& r) { r.options.mutable_optimizer()->clear_lr(); },
       absl::StatusCode::kInvalidArgument, "optimizer.lr"},
      {[](TrainRequest& r) { r.options.mutable_optimizer()->set_optimizer("lamb"); },
       absl::StatusCode::kInvalidArgument, "optimizer.optimizer"},
  };
  for (const Bad& bad : cases) {
    TrainRequest request = testing::Request(1, 2);
    bad.mutate(request);
    // Only rank 0 is asked: validation must fail before any collective would wait for rank 1.
    auto result = world->trainers[0]->Step(request);
    ASSERT_FALSE(result.ok()) << bad.text;
    EXPECT_EQ(result.status().code(), bad.code) << result.status();
    EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr(bad.text));
    EXPECT_TRUE(world->trainers[0]->broken().ok());
  }
  // The optimizer is fixed by the first step.
  testing::Train(*world, testing::Request(1, 2), 1);
  ASSERT_FALSE(HasFailure());
  TrainRequest changed = testing::Request(1, 2, 5e-4);
  EXPECT_EQ(world->trainers[0]->Step(changed).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gptb::train
