#include "core/plan/plan_format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gptb::plan {
namespace {

std::string LayerRange(const std::vector<int>& layers) {
  if (layers.empty()) return "-";
  if (layers.size() == 1) return absl::StrCat(layers.front());
  return absl::StrCat(layers.front(), "-", layers.back());
}

std::string Count(int64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.2f %s", value, units[unit]);
}

nlohmann::json StageToJson(const gptbuilder::v1::StageDescription& stage) {
  nlohmann::json s;
  s["tp_rank"] = stage.tp_rank();
  s["pp_rank"] = stage.pp_rank();
  s["ep_rank"] = stage.ep_rank();
  s["etp_rank"] = stage.etp_rank();
  s["vp_stage"] = stage.has_vp_stage() ? nlohmann::json(stage.vp_stage()) : nlohmann::json();
  s["pre_process"] = stage.pre_process();
  s["post_process"] = stage.post_process();
  s["layers"] = std::vector<int>(stage.layers().begin(), stage.layers().end());
  s["mtp_layers"] = std::vector<int>(stage.mtp_layers().begin(), stage.mtp_layers().end());
  s["layer_spec"] = stage.layer_spec();
  nlohmann::json params = nlohmann::json::array();
  for (const gptbuilder::v1::ParameterDescription& p : stage.params()) {
    nlohmann::json param = {{"name", p.name()},
                            {"shape", std::vector<int64_t>(p.shape().begin(), p.shape().end())},
                            {"dtype", p.dtype()}};
    if (p.has_checksum()) param["checksum"] = absl::StrFormat("%016x", p.checksum());
    params.push_back(std::move(param));
  }
  s["params"] = std::move(params);
  s["num_params"] = stage.num_params();
  s["param_bytes"] = stage.param_bytes();
  return s;
}

nlohmann::json PlanToJson(const gptbuilder::v1::PlanDescription& plan) {
  nlohmann::json out;
  const gptbuilder::v1::ParallelLayout& parallel = plan.parallel();
  out["padded_vocab_size"] = plan.padded_vocab_size();
  out["world_size"] = plan.world_size();
  out["parallel"] = {{"tp", parallel.tp()},
                     {"pp", parallel.pp()},
                     {"vp", parallel.has_vp() ? nlohmann::json(parallel.vp()) : nlohmann::json()},
                     {"cp", parallel.cp()},
                     {"ep", parallel.ep()},
                     {"etp", parallel.etp()},
                     {"dp", parallel.dp()},
                     {"expert_dp", parallel.expert_dp()},
                     {"order", parallel.order()}};
  out["total_params"] = plan.total_params();
  nlohmann::json stages = nlohmann::json::array();
  for (const gptbuilder::v1::StageDescription& stage : plan.stages()) {
    stages.push_back(StageToJson(stage));
  }
  out["stages"] = std::move(stages);
  if (!plan.process_groups().empty()) {
    nlohmann::json groups = nlohmann::json::object();
    for (GroupKind kind : kAllGroupKinds) {
      auto it = plan.process_groups().find(GroupName(kind));
      nlohmann::json list = nlohmann::json::array();
      if (it != plan.process_groups().end()) {
        for (const gptbuilder::v1::ProcessGroupMembers& g : it->second.groups()) {
          list.push_back(std::vector<int>(g.ranks().begin(), g.ranks().end()));
        }
      }
      groups[GroupName(kind)] = std::move(list);
    }
    out["process_groups"] = std::move(groups);
  }
  nlohmann::json ranks = nlohmann::json::array();
  for (const gptbuilder::v1::RankPlanDescription& rank : plan.ranks()) {
    nlohmann::json j;
    j["rank"] = rank.rank();
    j["tp_rank"] = rank.tp_rank();
    j["pp_rank"] = rank.pp_rank();
    j["dp_rank"] = rank.dp_rank();
    j["cp_rank"] = rank.cp_rank();
    j["ep_rank"] = rank.ep_rank();
    j["etp_rank"] = rank.etp_rank();
    j["expert_dp_rank"] = rank.expert_dp_rank();
    j["stages"] = std::vector<int>(rank.stages().begin(), rank.stages().end());
    j["num_params"] = rank.num_params();
    j["bytes"] = {{"params", rank.param_bytes()},
                  {"grads", rank.grad_bytes()},
                  {"optimizer", rank.optimizer_bytes()},
                  {"total", rank.param_bytes() + rank.grad_bytes() + rank.optimizer_bytes()}};
    nlohmann::json groups = nlohmann::json::object();
    for (GroupKind kind : kAllGroupKinds) {
      auto it = rank.groups().find(GroupName(kind));
      groups[GroupName(kind)] =
          it == rank.groups().end() ? nlohmann::json() : nlohmann::json(it->second);
    }
    j["groups"] = std::move(groups);
    ranks.push_back(std::move(j));
  }
  out["ranks"] = std::move(ranks);
  return out;
}

std::string PlanToTable(const ModelPlan& plan) {
  const RankTopology& topo = plan.topology();
  std::string out;
  absl::StrAppend(&out, "world ", plan.world_size(), ": tp ", topo.tp(), " x pp ", topo.pp(),
                  plan.layout().virtual_pipeline()
                      ? absl::StrCat(" (vp ", plan.layout().num_chunks(), ")")
                      : "",
                  " x cp ", topo.cp(), " x dp ", topo.dp(), "; experts: etp ", topo.etp(), " x ep ",
                  topo.ep(), " x edp ", topo.edp(), "; order ", topo.order(), "\n");
  absl::StrAppend(&out, "vocab ", plan.padded_vocab_size(), " (padded), dtype ",
                  DTypeName(plan.dtype()), ", layer spec ",
                  plan.stages().empty() ? "-" : plan.stages().front().layer_spec, "\n\n");
  absl::StrAppend(
      &out, absl::StrFormat("%-4s %-4s %-4s %-4s %-5s %-12s %-9s %16s %12s\n", "pp", "vp", "tp",
                            "ep", "etp", "layers", "pre/post", "parameters", "bytes"));
  for (const StagePlan& s : plan.stages()) {
    std::string flags =
        absl::StrCat(s.pre_process ? "pre" : "", s.pre_process && s.post_process ? "+" : "",
                     s.post_process ? "post" : "");
    if (!s.mtp_layers.empty()) absl::StrAppend(&flags, flags.empty() ? "" : "+", "mtp");
    absl::StrAppend(
        &out,
        absl::StrFormat("%-4d %-4s %-4d %-4d %-5d %-12s %-9s %16s %12s\n", s.pp_rank,
                        s.vp_stage.has_value() ? absl::StrCat(*s.vp_stage) : "-", s.tp_rank,
                        s.ep_rank, s.etp_rank, LayerRange(s.layers), flags.empty() ? "-" : flags,
                        Count(s.num_params), HumanBytes(s.param_bytes)));
  }
  int64_t max_total = 0;
  int max_rank = 0;
  int64_t params_sum = 0;
  for (int r = 0; r < plan.world_size(); ++r) {
    const RankPlan rank = plan.Rank(r);
    params_sum += rank.memory.num_params;
    if (rank.memory.total_bytes() > max_total) {
      max_total = rank.memory.total_bytes();
      max_rank = r;
    }
  }
  const RankPlan worst = plan.Rank(max_rank);
  absl::StrAppend(&out, "\nmodel parameters: ", Count(plan.TotalParameters()),
                  "; held over all ranks: ", Count(params_sum), "\n");
  absl::StrAppend(&out, "largest rank ", max_rank, ": params ",
                  HumanBytes(worst.memory.param_bytes), " + grads ",
                  HumanBytes(worst.memory.grad_bytes), " + optimizer ",
                  HumanBytes(worst.memory.optimizer_bytes), " = ", HumanBytes(max_total), "\n");
  return out;
}

}  // namespace gptb::plan
