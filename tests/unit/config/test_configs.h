#ifndef GPTB_TESTS_UNIT_CONFIG_TEST_CONFIGS_H_
#define GPTB_TESTS_UNIT_CONFIG_TEST_CONFIGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/config/violations.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config::testing {

// Golden config B (a tiny Llama): valid as it is.
inline gptbuilder::v1::GPTModelConfig TinyLlama() {
  gptbuilder::v1::GPTModelConfig c;
  gptbuilder::v1::TransformerConfig* t = c.mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(64);
  t->set_num_attention_heads(8);
  t->set_num_query_groups(2);
  t->set_ffn_hidden_size(176);
  t->set_normalization("RMSNorm");
  t->set_activation_func("silu");
  t->set_gated_linear_unit(true);
  t->set_add_bias_linear(false);
  c.set_vocab_size(1000);
  c.set_should_pad_vocab(true);
  c.set_seq_length(128);
  c.set_position_embedding_type("rope");
  c.mutable_transformer_layer_spec()->set_name("local");
  return c;
}

// Golden config D: TinyLlama with 4 experts, top-2.
inline gptbuilder::v1::GPTModelConfig TinyMoe() {
  gptbuilder::v1::GPTModelConfig c = TinyLlama();
  c.mutable_transformer()->set_num_moe_experts(4);
  c.mutable_transformer()->set_moe_router_topk(2);
  return c;
}

// (field, reason) of every violation a status carries.
inline std::vector<std::pair<std::string, std::string>> FieldsAndReasons(
    const absl::Status& status) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const FieldViolation& v : ViolationsFromStatus(status)) out.push_back({v.field, v.reason});
  return out;
}

}  // namespace gptb::config::testing

#endif  // GPTB_TESTS_UNIT_CONFIG_TEST_CONFIGS_H_
