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

nlohmann::json StageToJson(const StagePlan& stage) {
  nlohmann::json s;
  s["tp_rank"] = stage.tp_rank;
  s["pp_rank"] = stage.pp_rank;
  s["ep_rank"] = stage.ep_rank;
  s["etp_rank"] = stage.etp_rank;
  s["vp_stage"] = stage.vp_stage.has_value() ? nlohmann::json(*stage.vp_stage) : nlohmann::json();
  s["pre_process"] = stage.pre_process;
  s["post_process"] = stage.post_process;
  s["layers"] = stage.layers;
  s["mtp_layers"] = stage.mtp_layers;
  s["layer_spec"] = stage.layer_spec;
  nlohmann::json params = nlohmann::json::array();
  for (const ParamInfo& p : stage.params) {
    params.push_back({{"name", p.name}, {"shape", p.shape}, {"dtype", DTypeName(p.dtype)}});
  }
  s["params"] = std::move(params);
  s["num_params"] = stage.num_params;
  s["param_bytes"] = stage.param_bytes;
  return s;
}

nlohmann::json PlanToJson(const ModelPlan& plan, const PlanJsonOptions& options) {
  nlohmann::json out;
  const RankTopology& topo = plan.topology();
  out["padded_vocab_size"] = plan.padded_vocab_size();
  out["world_size"] = plan.world_size();
  out["parallel"] = {{"tp", topo.tp()},
                     {"pp", topo.pp()},
                     {"vp", plan.layout().virtual_pipeline() ? nlohmann::json(plan.layout().num_chunks())
                                                             : nlohmann::json()},
                     {"cp", topo.cp()},
                     {"ep", topo.ep()},
                     {"etp", topo.etp()},
                     {"dp", topo.dp()},
                     {"expert_dp", topo.edp()},
                     {"order", topo.order()}};
  out["total_params"] = plan.TotalParameters();
  nlohmann::json stages = nlohmann::json::array();
  for (const StagePlan& stage : plan.stages()) stages.push_back(StageToJson(stage));
  out["stages"] = std::move(stages);
  // group_of[kind][rank]: the index of the rank's group of that kind, -1 for none.
  std::vector<std::vector<int>> group_of;
  if (options.process_groups) {
    nlohmann::json groups = nlohmann::json::object();
    for (GroupKind kind : kAllGroupKinds) {
      std::vector<int> index(plan.world_size(), -1);
      const std::vector<std::vector<int>> all = topo.AllGroups(kind);
      for (size_t g = 0; g < all.size(); ++g) {
        for (int member : all[g]) index[member] = static_cast<int>(g);
      }
      groups[GroupName(kind)] = all;
      group_of.push_back(std::move(index));
    }
    out["process_groups"] = std::move(groups);
  }
  const int first = std::clamp(options.first_rank, 0, plan.world_size());
  const int end = options.num_ranks < 0
                      ? plan.world_size()
                      : first + std::min(options.num_ranks, plan.world_size() - first);
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = first; r < end; ++r) {
    const RankPlan rank = plan.Rank(r);
    nlohmann::json j;
    j["rank"] = r;
    j["tp_rank"] = rank.coords.tp;
    j["pp_rank"] = rank.coords.pp;
    j["dp_rank"] = rank.coords.dp;
    j["cp_rank"] = rank.coords.cp;
    j["ep_rank"] = rank.coords.ep;
    j["etp_rank"] = rank.coords.etp;
    j["expert_dp_rank"] = rank.coords.edp;
    j["stages"] = rank.stages;
    j["num_params"] = rank.memory.num_params;
    j["bytes"] = {{"params", rank.memory.param_bytes},
                  {"grads", rank.memory.grad_bytes},
                  {"optimizer", rank.memory.optimizer_bytes},
                  {"total", rank.memory.total_bytes()}};
    if (options.process_groups) {
      nlohmann::json groups = nlohmann::json::object();
      for (size_t k = 0; k < kAllGroupKinds.size(); ++k) {
        const int g = group_of[k][r];
        groups[GroupName(kAllGroupKinds[k])] = g < 0 ? nlohmann::json() : nlohmann::json(g);
      }
      j["groups"] = std::move(groups);
    }
    ranks.push_back(std::move(j));
  }
  out["ranks"] = std::move(ranks);
  return out;
}

std::string PlanToTable(const ModelPlan& plan) {
  const RankTopology& topo = plan.topology();
  std::string out;
  absl::StrAppend(&out, "world ", plan.world_size(), ": tp ", topo.tp(), " x pp ", topo.pp(),
                  plan.layout().virtual_pipeline() ? absl::StrCat(" (vp ", plan.layout().num_chunks(), ")") : "",
                  " x cp ", topo.cp(), " x dp ", topo.dp(), "; experts: etp ", topo.etp(), " x ep ",
                  topo.ep(), " x edp ", topo.edp(), "; order ", topo.order(), "\n");
  absl::StrAppend(&out, "vocab ", plan.padded_vocab_size(), " (padded), dtype ", DTypeName(plan.dtype()),
                  ", layer spec ", plan.stages().empty() ? "-" : plan.stages().front().layer_spec, "\n\n");
  absl::StrAppend(&out, absl::StrFormat("%-4s %-4s %-4s %-4s %-5s %-12s %-9s %16s %12s\n", "pp", "vp",
                                        "tp", "ep", "etp", "layers", "pre/post", "parameters",
                                        "bytes"));
  for (const StagePlan& s : plan.stages()) {
    std::string flags = absl::StrCat(s.pre_process ? "pre" : "", s.pre_process && s.post_process ? "+" : "",
                                     s.post_process ? "post" : "");
    if (!s.mtp_layers.empty()) absl::StrAppend(&flags, flags.empty() ? "" : "+", "mtp");
    absl::StrAppend(&out, absl::StrFormat("%-4d %-4s %-4d %-4d %-5d %-12s %-9s %16s %12s\n", s.pp_rank,
                                          s.vp_stage.has_value() ? absl::StrCat(*s.vp_stage) : "-",
                                          s.tp_rank, s.ep_rank, s.etp_rank, LayerRange(s.layers),
                                          flags.empty() ? "-" : flags, Count(s.num_params),
                                          HumanBytes(s.param_bytes)));
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
  absl::StrAppend(&out, "largest rank ", max_rank, ": params ", HumanBytes(worst.memory.param_bytes),
                  " + grads ", HumanBytes(worst.memory.grad_bytes), " + optimizer ",
                  HumanBytes(worst.memory.optimizer_bytes), " = ", HumanBytes(max_total), "\n");
  return out;
}

}  // namespace gptb::plan
