// libFuzzer target for everything a client's config goes through before any worker is involved
// (built with clang, -fsanitize=fuzzer,address,undefined): the loaders (YAML, JSON, text proto,
// Hugging Face config.json), `--set` overrides, pipeline layout strings, then Finalize and the
// plan of whatever they accept, as the coordinator runs them on every ValidateConfig, PlanModel
// and BuildModel. Beyond "no crash, no sanitizer report", every input must stay within the
// request limits (core/config/limits.h) in time and memory (libFuzzer's -timeout and
// -rss_limit_mb catch the rest), and it checks properties that must hold for every input:
//   - Finalize is idempotent: finalizing a resolved config returns it unchanged;
//   - a resolved config emitted as YAML and as JSON loads back to the same config;
//   - a plan's rank memory adds up (no negative or overflowing byte count), and its JSON and
//     table render.
// The first input byte picks the entry point; the rest is its text.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "core/config/config_emitter.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/config/hf_import.h"
#include "core/config/limits.h"
#include "core/config/overrides.h"
#include "core/plan/model_plan.h"
#include "core/plan/pipeline_layout_string.h"
#include "core/plan/plan_description.h"
#include "core/plan/plan_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace gptb::config {
namespace {

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

// Small enough that one input stays well under a second; the real limits scale the same code.
Limits FuzzLimits() {
  Limits limits;
  limits.max_world_size = 512;
  limits.max_num_layers = 64;
  limits.max_plan_tensors = 20000;
  return limits;
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

// A base every override input starts from: small and valid.
constexpr char kBase[] = R"(
vocab_size: 128
seq_length: 16
transformer:
  num_layers: 2
  hidden_size: 16
  num_attention_heads: 2
)";

void PlanAndCheck(const LoadedConfig& resolved, int64_t world) {
  plan::PlanOptions options;
  options.world_size = static_cast<int>(world);
  options.build = resolved.build;
  options.ddp = resolved.ddp;
  options.max_plan_tensors = FuzzLimits().max_plan_tensors;
  absl::StatusOr<plan::ModelPlan> plan = plan::ModelPlan::Create(resolved.model, options);
  if (!plan.ok()) return;
  for (int r = 0; r < plan->world_size(); ++r) {
    const plan::RankPlan rank = plan->Rank(r);
    Require(rank.memory.num_params >= 0 && rank.memory.param_bytes >= 0 &&
                rank.memory.grad_bytes >= 0 && rank.memory.optimizer_bytes >= 0 &&
                rank.memory.total_bytes() >= rank.memory.param_bytes,
            "a rank's memory is negative or overflows");
  }
  Require(plan->TotalParameters() >= 0, "total parameters negative");
  plan::DescribeOptions page;
  page.num_ranks = 8;
  (void)plan::PlanToJson(plan::DescribePlan(*plan, page)).dump();
  (void)plan::PlanToTable(*plan);
}

void FinalizeAndCheck(const LoadedConfig& loaded) {
  const Limits limits = FuzzLimits();
  FinalizeOptions options;
  options.limits = limits;
  absl::StatusOr<LoadedConfig> resolved = FinalizeLoaded(loaded, options);
  if (!resolved.ok()) {
    Require(resolved.status().code() == absl::StatusCode::kInvalidArgument,
            "Finalize failed with a code other than INVALID_ARGUMENT");
    return;
  }
  absl::StatusOr<LoadedConfig> again = FinalizeLoaded(*resolved, options);
  Require(again.ok(), "finalizing a resolved config failed");
  Require(Same(again->model, resolved->model) && Same(again->ddp, resolved->ddp) &&
              Same(again->build, resolved->build),
          "Finalize is not idempotent");
  for (ConfigFormat format : {ConfigFormat::kYaml, ConfigFormat::kJson}) {
    const std::string text =
        format == ConfigFormat::kYaml ? EmitYaml(*resolved) : EmitJson(*resolved);
    absl::StatusOr<LoadedConfig> reloaded = LoadConfigText(text, format, "emitted");
    Require(reloaded.ok(), "an emitted config does not load");
    absl::StatusOr<LoadedConfig> refinalized = FinalizeLoaded(*reloaded, options);
    Require(refinalized.ok(), "an emitted config does not finalize");
    Require(Same(refinalized->model, resolved->model),
            "an emitted config loads back to a different model");
  }
  PlanAndCheck(*resolved, MinimalWorldSize(resolved->model.transformer()));
}

void Run(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t mode = data[0] % 8;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
    case 1:
    case 2:
    case 3: {
      static constexpr ConfigFormat kFormats[] = {ConfigFormat::kAuto, ConfigFormat::kYaml,
                                                  ConfigFormat::kJson, ConfigFormat::kTextProto};
      absl::StatusOr<LoadedConfig> loaded = LoadConfigText(text, kFormats[mode], "fuzz");
      if (loaded.ok()) FinalizeAndCheck(*loaded);
      return;
    }
    case 4: {
      absl::StatusOr<gptbuilder::v1::GPTModelConfig> imported = ImportHfConfigText(text);
      if (!imported.ok()) return;
      LoadedConfig loaded;
      loaded.model = *std::move(imported);
      FinalizeAndCheck(loaded);
      return;
    }
    case 5:
    case 6: {
      // One `--set` per line over the base.
      absl::StatusOr<LoadedConfig> loaded = LoadConfigText(kBase, ConfigFormat::kYaml, "base");
      Require(loaded.ok(), "the base config does not load");
      std::vector<std::string> sets =
          absl::StrSplit(absl::string_view(text.data(), text.size()), '\n', absl::SkipEmpty());
      if (sets.size() > 64) sets.resize(64);
      (void)ApplyOverrides(sets, &*loaded);
      FinalizeAndCheck(*loaded);
      return;
    }
    case 7: {
      // A layout string for pp = 1 + (next byte % 8), checked against a model of its own layers.
      if (text.empty()) return;
      const int pp = 1 + static_cast<uint8_t>(text[0]) % 8;
      const std::string_view layout = text.substr(1);
      absl::StatusOr<plan::PipelineLayoutString> parsed = plan::ParsePipelineLayout(layout, pp);
      if (!parsed.ok()) return;
      int layers = 0, mtp = 0;
      for (const auto& rank : parsed->stages) {
        for (const std::string& stage : rank) {
          for (char c : stage) {
            layers += c == 't';
            mtp += c == 'm';
          }
        }
      }
      (void)plan::ValidatePipelineLayout(*parsed, layers,
                                         mtp > 0 ? std::optional<int>(mtp) : std::nullopt);
      absl::StatusOr<LoadedConfig> loaded = LoadConfigText(kBase, ConfigFormat::kYaml, "base");
      Require(loaded.ok(), "the base config does not load");
      auto* t = loaded->model.mutable_transformer();
      t->set_num_layers(layers);
      if (mtp > 0) t->set_mtp_num_layers(mtp);
      t->set_pipeline_model_parallel_size(pp);
      t->set_pipeline_model_parallel_layout(std::string(layout));
      FinalizeAndCheck(*loaded);
      return;
    }
  }
}

}  // namespace
}  // namespace gptb::config

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gptb::config::Run(data, size);
  return 0;
}
