#include "server/coordinator/model_preparation.h"

#include <chrono>
#include <algorithm>
#include <charconv>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/checkpoint_reader.h"
#include "core/config/finalize.h"
#include "core/config/violations.h"
#include "core/plan/plan_format.h"

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
  out.world_size = world_size > 0
                       ? world_size
                       : static_cast<int>(config::MinimalWorldSize(out.finalized.model.transformer()));
  absl::StatusOr<plan::ModelPlan> plan = PlanFinalized(
      out.finalized.model, out.finalized.ddp, out.finalized.build, out.world_size, limits);
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

gptbuilder::v1::StageDescription StageToProto(const plan::StagePlan& stage) {
  gptbuilder::v1::StageDescription out;
  out.set_tp_rank(stage.tp_rank);
  out.set_pp_rank(stage.pp_rank);
  out.set_ep_rank(stage.ep_rank);
  out.set_etp_rank(stage.etp_rank);
  if (stage.vp_stage.has_value()) out.set_vp_stage(*stage.vp_stage);
  out.set_pre_process(stage.pre_process);
  out.set_post_process(stage.post_process);
  for (int layer : stage.layers) out.add_layers(layer);
  for (const plan::ParamInfo& p : stage.params) {
    gptbuilder::v1::ParameterDescription* param = out.add_params();
    param->set_name(p.name);
    for (int64_t d : p.shape) param->add_shape(d);
    param->set_dtype(plan::DTypeName(p.dtype));
  }
  out.set_num_params(stage.num_params);
  return out;
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

gptbuilder::v1::PlanModelResponse PlanToProto(const plan::ModelPlan& plan, int first_rank,
                                              int num_ranks) {
  gptbuilder::v1::PlanModelResponse out;
  out.set_world_size(plan.world_size());
  out.set_padded_vocab_size(plan.padded_vocab_size());
  out.set_total_params(plan.TotalParameters());
  for (const plan::StagePlan& stage : plan.stages()) *out.add_stages() = StageToProto(stage);
  const int first = std::clamp(first_rank, 0, plan.world_size());
  const int end = num_ranks < 0 ? plan.world_size()
                                : first + std::min(num_ranks, plan.world_size() - first);
  for (int r = first; r < end; ++r) {
    const plan::RankPlan rank = plan.Rank(r);
    gptbuilder::v1::RankBytes* rb = out.add_ranks();
    rb->set_rank(r);
    rb->set_tp_rank(rank.coords.tp);
    rb->set_pp_rank(rank.coords.pp);
    rb->set_dp_rank(rank.coords.dp);
    rb->set_cp_rank(rank.coords.cp);
    rb->set_ep_rank(rank.coords.ep);
    rb->set_etp_rank(rank.coords.etp);
    for (int s : rank.stages) rb->add_stages(s);
    rb->set_num_params(rank.memory.num_params);
    rb->set_param_bytes(rank.memory.param_bytes);
    rb->set_grad_bytes(rank.memory.grad_bytes);
    rb->set_optimizer_bytes(rank.memory.optimizer_bytes);
  }
  plan::PlanJsonOptions json;
  json.first_rank = first;
  json.num_ranks = end - first;
  json.process_groups = false;
  out.set_plan_json(plan::PlanToJson(plan, json).dump());
  if (end < plan.world_size()) out.set_next_page_token(absl::StrCat(end));
  return out;
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
