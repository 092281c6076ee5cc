#ifndef GPTB_TESTS_NUMERICS_NUMERICS_HARNESS_H_
#define GPTB_TESTS_NUMERICS_NUMERICS_HARNESS_H_

// Numerics against real Megatron Core. A case (tests/golden/numerics/<name>/, written by
// tests/numerics/megatron_oracle.py) holds a gptbuilder config, a token batch, weights under
// Megatron's local-spec names at tp 1 (global layer and expert indices), and what Megatron
// computed from them: the mean loss, the logits and every parameter's gradient. The harness
// stores the weights as a canonical checkpoint (through a one-rank build: the canonical names
// are Megatron's, with Transformer Engine's names for the norms), builds the model from it in any
// layout (ranks as threads over Gloo), runs the training path's forward and backward
// (train::ForwardBackward over the pipeline schedule, then train::FinalizeGrads) and gathers every
// gradient to its canonical tensor.

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::testing {

// A case's inputs.
struct NumericsCase {
  std::string name;
  std::string dir;
  gptbuilder::v1::GPTModelConfig config;  // as written (not finalized)
  torch::Tensor tokens;                   // [b, s + 1] int64: inputs [:, :s], labels [:, 1:]
  std::map<std::string, torch::Tensor> weights;
};

// What a model computed for a case: Megatron's stored or live result, or a gptbuilder layout's.
// Gradients are keyed by Megatron's local-spec names (canonical names are Transformer Engine's:
// linear_qkv.layer_norm_weight is the local input_layernorm.weight, linear_fc1.layer_norm_* the
// pre_mlp_layernorm's).
struct NumericsResult {
  double loss = 0.0;                           // mean over every token
  torch::Tensor logits;                        // [b, s, padded vocab]
  std::map<std::string, torch::Tensor> grads;  // d(mean loss)/d(canonical tensor)
  // Persistent buffers (the routers' expert_bias) by canonical name after each step's
  // finalize_model_grads: kExpertBiasSteps steps on the same batch without an optimizer for a
  // model with expert bias (Megatron's buffers_step<N>.safetensors), none for other models.
  std::vector<std::map<std::string, torch::Tensor>> buffer_steps;
};

// tests/numerics/megatron_oracle.py's EXPERT_BIAS_STEPS.
inline constexpr int kExpertBiasSteps = 3;

// Loads config.json, tokens.json and weights.safetensors of `dir`; fails the test on errors.
NumericsCase LoadNumericsCase(const std::string& dir);
// Loads result.json (loss), logits.safetensors and grads.safetensors of `dir`.
NumericsResult LoadMegatronResult(const std::string& dir);

// tests/golden/numerics/<name>.
std::string GoldenNumericsDir(const std::string& name);
// Every case folder under tests/golden/numerics, by name.
std::vector<std::string> GoldenNumericsCases();

// Whether the case's loss depends on each micro-batch's token statistics (the MoE
// load-balancing loss): such a case is compared only in layouts that see Megatron's whole batch
// as one micro-batch (no data parallelism; one micro-batch through a pipeline that is not
// interleaved).
bool HasBatchStatistics(const gptbuilder::v1::GPTModelConfig& config);

struct NumericsLayout {
  int tp = 1, pp = 1, vp = 0, ep = 1, dp = 1;
  bool sequence_parallel = false;
  // A named layer spec instead of the case's (empty: the case's). The canonical names are
  // Transformer Engine's, so a checkpoint of a local-spec case loads into "transformer_engine"
  // (which sequence parallelism needs: Megatron refuses torch norms with it).
  std::string layer_spec{};
  int world_size() const { return tp * pp * dp; }
  std::string Name() const;  // "tp2", "pp2_vp2", "ep2_dp2", "tp2_sp_transformer_engine", ...
};

// The layouts a case is checked at besides one rank, each where the model allows it: tp2, pp2,
// pp2 x vp2 (layers divisible by 4), dp2, ep2 (MoE), and the entries of kExtraNumericsLayouts.
std::vector<NumericsLayout> NumericsLayoutsFor(const gptbuilder::v1::GPTModelConfig& config);

// Layouts added to every case whose model allows them (NumericsLayoutsFor checks tp against
// the heads and query groups, pp x vp against the layers, ep against the experts): tp2 with
// sequence parallelism on the Transformer Engine spec (Megatron refuses torch norms with it).
extern const std::vector<NumericsLayout> kExtraNumericsLayouts;

// Writes the case's weights as a gptbuilder canonical checkpoint at `dir` (a one-rank build of
// the case's model whose parameters are set by canonical name, then saved). Fails the test when
// the weights' names or shapes are not exactly the model's canonical tensors.
void WriteCanonicalCheckpoint(const NumericsCase& c, const std::string& dir);

// Builds the case's model at `layout` from the canonical checkpoint at `checkpoint`, runs one
// forward/backward of the case's batch as a train step does (each data-parallel replica its
// share of the samples; with pp > 1 and one replica, one sample per micro-batch so the schedule
// interleaves), then the logits of the whole batch. Gradients are each canonical tensor's,
// assembled from the ranks' main_grad after FinalizeGrads; replicas that disagree by more than
// 1e-6 relative fail the test (a gradient that is partial per rank, not reduced).
NumericsResult RunNumericsLayout(const NumericsCase& c, const NumericsLayout& layout,
                                 const std::string& checkpoint);

// Relative errors of `got` against `want`: |dloss| / |loss|; max |dlogits| / max |logits|
// (over the padded vocabulary both have); per gradient max |dg| / max |g| (max |dg| when g is
// all zero), the worst one named.
struct NumericsErrors {
  double loss = 0.0;
  double logits = 0.0;
  double grads = 0.0;
  std::string worst_grad;
};
NumericsErrors CompareNumerics(const NumericsResult& got, const NumericsResult& want);

// Megatron parity: loss and logits within 1e-5 relative, every gradient within 1e-4; the same
// set of gradients. `what` names the comparison in failures.
void ExpectMatchesMegatron(const NumericsResult& got, const NumericsResult& want,
                           const std::string& what);

}  // namespace gptb::testing

#endif  // GPTB_TESTS_NUMERICS_NUMERICS_HARNESS_H_
