#include "server/coordinator/model_preparation.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/checkpoint_reader.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/config/overrides.h"
#include "core/config/violations.h"

namespace gptb::coordinator {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<plan::ModelPlan> PlanFinalized(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, int world_size, const config::Limits& limits) {
  plan::PlanOptions options;
  options.world_size = world_size;
  options.ddp = ddp;
  options.build = build;
  options.max_plan_tensors = limits.max_plan_tensors;
  return plan::ModelPlan::Create(config, options);
}

absl::StatusOr<config::LoadedConfig> RequestedConfig(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, const gptbuilder::v1::ConfigText* text) {
  if (text == nullptr) {
    config::LoadedConfig loaded;
    loaded.model = config;
    loaded.ddp = ddp;
    loaded.build = build;
    return loaded;
  }
  config::Violations violations;
  for (const auto& [set, name] :
       {std::pair{config.ByteSizeLong() > 0, "config"}, std::pair{ddp.ByteSizeLong() > 0, "ddp"},
        std::pair{build.ByteSizeLong() > 0, "build"}}) {
    if (set) {
      violations.Add(name, "AMBIGUOUS_CONFIG",
                     absl::StrCat("set either config_text or the config, ddp and build messages, "
                                  "not both; ",
                                  name, " is set next to config_text"));
    }
  }
  if (static_cast<int64_t>(text->text().size()) > config::kMaxConfigTextBytes) {
    violations.Add(
        "config_text.text", "LIMIT_EXCEEDED",
        absl::StrCat("the config text is ", text->text().size(), " bytes; a config is at most ",
                     config::kMaxConfigTextBytes, " bytes"));
  }
  if (text->overrides_size() > config::kMaxConfigOverrides) {
    violations.Add("config_text.overrides", "LIMIT_EXCEEDED",
                   absl::StrCat(text->overrides_size(), " overrides; at most ",
                                config::kMaxConfigOverrides, " (write them into the text)"));
  }
  const std::optional<config::ConfigFormat> format = config::ConfigFormatByName(text->format());
  if (!format.has_value()) {
    violations.Add("config_text.format", "INVALID_VALUE",
                   absl::StrCat("'", config::Excerpt(text->format(), 40),
                                "' is not a config format; use yaml, json, textproto, or leave it "
                                "empty to detect the format from the text"));
  }
  if (!violations.empty()) return violations.ToStatus();
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigText(
      text->text(), *format, text->source_name().empty() ? "config_text" : text->source_name());
  if (!loaded.ok()) return loaded.status();
  const std::vector<std::string> overrides(text->overrides().begin(), text->overrides().end());
  if (absl::Status status = config::ApplyOverrides(overrides, &*loaded); !status.ok()) {
    return status;
  }
  return loaded;
}

absl::StatusOr<PreparedModel> PrepareModel(const gptbuilder::v1::GPTModelConfig& config,
                                           const gptbuilder::v1::DistributedDataParallelConfig& ddp,
                                           const gptbuilder::v1::BuildOptions& build,
                                           int world_size, const config::Limits& limits) {
  PreparedModel out;
  auto start = std::chrono::steady_clock::now();
  config::LoadedConfig loaded;
  loaded.model = config;
  loaded.ddp = ddp;
  loaded.build = build;
  config::FinalizeOptions options;
  options.limits = limits;
  if (world_size != 0) options.world_size = world_size;
  absl::StatusOr<config::LoadedConfig> finalized = config::FinalizeLoaded(loaded, options);
  if (!finalized.ok()) return finalized.status();
  out.finalized = *std::move(finalized);
  out.validate_seconds = SecondsSince(start);

  start = std::chrono::steady_clock::now();
  // Finalize kept the smallest world within limits.max_world_size, so it fits an int.
  out.world_size =
      world_size > 0
          ? world_size
          : static_cast<int>(config::MinimalWorldSize(out.finalized.model.transformer()));
  absl::StatusOr<plan::ModelPlan> plan = PlanFinalized(out.finalized.model, out.finalized.ddp,
                                                       out.finalized.build, out.world_size, limits);
  if (!plan.ok()) return plan.status();
  out.plan.emplace(*std::move(plan));
  out.plan_seconds = SecondsSince(start);
  return out;
}

std::vector<int64_t> RankBuildBytes(const plan::ModelPlan& plan, bool for_training) {
  std::vector<int64_t> bytes(plan.world_size());
  for (int r = 0; r < plan.world_size(); ++r) {
    const plan::RankMemory memory = plan.Rank(r).memory;
    // The plan keeps every sum of these within int64.
    bytes[r] = for_training ? memory.total_bytes() : memory.param_bytes + memory.grad_bytes;
  }
  return bytes;
}

std::vector<std::vector<int>> TensorParallelGroups(const plan::ModelPlan& plan) {
  return plan.topology().AllGroups(plan::GroupKind::kTp);
}

absl::Status ParsePlanPage(const gptbuilder::v1::PlanModelRequest& request, int* first_rank,
                           int* num_ranks) {
  config::Violations violations;
  if (request.page_size() < 0) {
    violations.Add("page_size", "NOT_POSITIVE",
                   absl::StrCat("page_size must be 0 (the default, ", kDefaultPlanPageSize,
                                " ranks) or positive, got ", request.page_size(), "."));
  }
  *num_ranks = request.page_size() == 0 ? kDefaultPlanPageSize
                                        : std::min(request.page_size(), kMaxPlanPageSize);
  *first_rank = 0;
  if (!request.page_token().empty()) {
    const std::string& token = request.page_token();
    const char* end = token.data() + token.size();
    auto [ptr, ec] = std::from_chars(token.data(), end, *first_rank);
    if (ec != std::errc() || ptr != end || *first_rank <= 0) {
      violations.Add("page_token", "INVALID_PAGE_TOKEN",
                     absl::StrCat("page_token '", config::Excerpt(token, 32),
                                  "' is not a next_page_token of PlanModel; send the one the "
                                  "previous response carried, or none for the first page."));
    }
  }
  return violations.ToStatus();
}

absl::Status CheckLoadFrom(const std::string& path, const PreparedModel& prepared,
                           const std::string& root) {
  auto fail = [&](const absl::Status& status) {
    if (status.code() != absl::StatusCode::kInvalidArgument) {
      return absl::Status(
          status.code(),
          absl::StrCat("load_from: ", status.message(),
                       status.code() == absl::StatusCode::kNotFound
                           ? " (the path must be visible to the coordinator and to every worker)"
                           : ""));
    }
    // The checkpoint's own field violations (config fields that differ) stay as they are,
    // after one naming load_from.
    const std::vector<config::FieldViolation> found = config::ViolationsFromStatus(status);
    config::Violations violations;
    violations.Add("load_from", "INVALID_CHECKPOINT",
                   found.empty() ? std::string(status.message())
                                 : absl::StrCat("the checkpoint at ", path,
                                                " does not fit the requested model"));
    for (const config::FieldViolation& v : found) violations.Add(v.field, v.reason, v.description);
    return violations.ToStatus();
  };
  checkpoint::CheckpointOpenOptions open;
  open.root = root;
  absl::StatusOr<std::unique_ptr<checkpoint::CheckpointReader>> reader =
      checkpoint::CheckpointReader::Open(path, open);
  if (!reader.ok()) return fail(reader.status());
  absl::StatusOr<std::vector<checkpoint::CanonicalTensor>> tensors =
      checkpoint::CanonicalTensors(*prepared.plan);
  if (!tensors.ok()) return fail(tensors.status());
  absl::Status bound = (*reader)->Bind(prepared.finalized.model, *tensors);
  if (!bound.ok()) return fail(bound);
  return absl::OkStatus();
}

}  // namespace gptb::coordinator
