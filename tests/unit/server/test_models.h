#ifndef GPTB_TESTS_UNIT_SERVER_TEST_MODELS_H_
#define GPTB_TESTS_UNIT_SERVER_TEST_MODELS_H_

#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::testing {

// examples/tiny-gpt.yaml (golden config A) at the given parallel sizes, as a user writes it.
inline gptbuilder::v1::GPTModelConfig TinyGpt(int tp, int pp) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(64);
  t->set_num_attention_heads(4);
  t->set_ffn_hidden_size(256);
  t->set_normalization("LayerNorm");
  t->set_activation_func("gelu");
  t->set_tensor_model_parallel_size(tp);
  t->set_pipeline_model_parallel_size(pp);
  c.set_vocab_size(1000);
  c.set_should_pad_vocab(true);
  c.set_seq_length(128);
  c.set_share_embeddings_and_output_weights(true);
  c.mutable_transformer_layer_spec()->set_name("local");
  return c;
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_SERVER_TEST_MODELS_H_
