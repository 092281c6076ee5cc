#ifndef GPTB_CORE_CONFIG_FINALIZE_H_
#define GPTB_CORE_CONFIG_FINALIZE_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "core/config/limits.h"
#include "core/config/loaded_config.h"
#include "google/protobuf/message.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

struct FinalizeOptions {
  FinalizeOptions() = default;
  // Implicit, so that `Finalize(config, {world})` reads as "for `world` ranks".
  FinalizeOptions(std::optional<int64_t> world) : world_size(world) {}  // NOLINT
  // `Finalize(config, {world, false})`: Megatron's and Bridge's rules only (see below).
  FinalizeOptions(std::optional<int64_t> world, bool refuse)
      : world_size(world), refuse_unsupported(refuse) {}

  // The number of ranks the model will be built on. When given, it must be a multiple of
  // tp * pp * cp (the dense grid) and of etp * ep * pp (the expert grid).
  std::optional<int64_t> world_size;
  // Checked first, on the config as given: a config over a limit is refused before anything is
  // derived (core/config/limits.h).
  Limits limits;
  // Refuse the values this build does not compute as Megatron does (core/config/field_support).
  // false checks Megatron's and Bridge's own rules only: what Megatron would accept. Tests of
  // those rules use it; every request the service or the CLI validates uses true.
  bool refuse_unsupported = true;
};

// Megatron-Bridge's GPTModelConfig.finalize() plus Megatron Core's TransformerConfig /
// ModelParallelConfig __post_init__, as a pure function: returns the RESOLVED config, in which
// every field with a schema default is set explicitly, Megatron's derived values are filled in
// (ffn_hidden_size = 4h, kv_channels = h/n, num_query_groups = n, ...), dtype and activation
// spellings are canonical, and fields whose Python default is None and that Megatron does not
// derive stay unset. Finalizing a resolved config returns it unchanged.
//
// Every rule is checked and every violation is returned at once: INVALID_ARGUMENT made by
// Violations::ToStatus, one field violation per problem with a field path
// (`transformer.num_attention_heads`, `vocab_size`, `world_size`), an UPPER_SNAKE reason and a
// sentence saying what would be valid. The rules are documented next to their code in
// finalize.cc; the pipeline split's (layout string grammar and contents, layer counts per stage)
// are core/plan's CheckLayoutString and CheckPipelineSplit, reported here as field violations.
// Last, every value that core/config/field_support.cc classifies as refused gets an UNSUPPORTED
// violation saying what is not implemented and what would be valid.
absl::StatusOr<gptbuilder::v1::GPTModelConfig> Finalize(
    const gptbuilder::v1::GPTModelConfig& config, const FinalizeOptions& options = {});

// Megatron Core's DistributedDataParallelConfig.__post_init__: defaults made explicit, checks.
absl::StatusOr<gptbuilder::v1::DistributedDataParallelConfig> FinalizeDdp(
    const gptbuilder::v1::DistributedDataParallelConfig& ddp);

// build_distributed_models' argument checks (the two FSDP flavours are exclusive).
absl::StatusOr<gptbuilder::v1::BuildOptions> FinalizeBuild(
    const gptbuilder::v1::BuildOptions& build);

// All three at once; violations of the `ddp:` and `build:` sections carry `ddp.` / `build.`
// prefixes. source_format is kept.
absl::StatusOr<LoadedConfig> FinalizeLoaded(const LoadedConfig& config,
                                            const FinalizeOptions& options = {});

// Sets every unset singular field that has a schema default to that default, recursing into the
// message fields that are present (repeated and map message values included).
void SetExplicitDefaults(google::protobuf::Message* message);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_FINALIZE_H_
