#include "clients/cli/model_format.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/plan/plan_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace gptb::cli {

using gptbuilder::v1::Model;
using plan::HumanBytes;

std::string StateName(Model::State state) { return Model::State_Name(state); }

namespace {

std::string Count(int64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string LayerRange(const google::protobuf::RepeatedField<int32_t>& layers) {
  if (layers.empty()) return "-";
  if (layers.size() == 1) return absl::StrCat(layers[0]);
  return absl::StrCat(layers[0], "-", layers[layers.size() - 1]);
}

std::string Hex(uint64_t value) { return absl::StrFormat("%016x", value); }

// A stage's parameters folded into one short fingerprint for the table.
uint64_t StageFingerprint(const gptbuilder::v1::StageDescription& stage) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& p : stage.params()) {
    h ^= p.checksum();
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

nlohmann::json DescribeToJson(const gptbuilder::v1::DescribeModelResponse& d) {
  nlohmann::json out;
  out["model"] = d.model().name();
  out["state"] = StateName(d.model().state());
  out["padded_vocab_size"] = d.padded_vocab_size();
  out["world_size"] = d.world_size();
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : d.stages()) stages.push_back(plan::StageToJson(s));
  out["stages"] = std::move(stages);
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& r : d.ranks()) {
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& [phase, seconds] : r.phase_seconds()) phases[phase] = seconds;
    ranks.push_back({{"rank", r.rank()},
                     {"worker", r.worker()},
                     {"slot", r.slot()},
                     {"device", r.device()},
                     {"stages", std::vector<int>(r.stages().begin(), r.stages().end())},
                     {"parameter_bytes", r.parameter_bytes()},
                     {"gradient_bytes", r.gradient_bytes()},
                     {"phase_seconds", phases}});
  }
  out["ranks"] = std::move(ranks);
  out["inconsistent_stages"] =
      std::vector<int>(d.inconsistent_stages().begin(), d.inconsistent_stages().end());
  return out;
}

std::string DescribeToTable(const gptbuilder::v1::DescribeModelResponse& d) {
  std::string out;
  absl::StrAppend(&out, "model ", d.model().name(), " (", StateName(d.model().state()), "): world ",
                  d.world_size(), ", vocab ", d.padded_vocab_size(), " (padded), ",
                  Count(d.model().total_params()), " parameters\n\n");
  std::map<int, std::vector<int>> holders;
  for (const auto& r : d.ranks()) {
    for (int s : r.stages()) holders[s].push_back(r.rank());
  }
  absl::StrAppend(&out, absl::StrFormat("%-5s %-4s %-4s %-4s %-4s %-10s %-9s %6s %14s %-16s %s\n",
                                        "stage", "pp", "vp", "tp", "ep", "layers", "pre/post",
                                        "params", "elements", "fingerprint", "ranks"));
  for (int i = 0; i < d.stages_size(); ++i) {
    const auto& s = d.stages(i);
    std::string flags =
        absl::StrCat(s.pre_process() ? "pre" : "", s.pre_process() && s.post_process() ? "+" : "",
                     s.post_process() ? "post" : "");
    absl::StrAppend(
        &out, absl::StrFormat("%-5d %-4d %-4s %-4d %-4d %-10s %-9s %6d %14s %-16s %s\n", i,
                              s.pp_rank(), s.has_vp_stage() ? absl::StrCat(s.vp_stage()) : "-",
                              s.tp_rank(), s.ep_rank(), LayerRange(s.layers()),
                              flags.empty() ? "-" : flags, s.params_size(), Count(s.num_params()),
                              Hex(StageFingerprint(s)), absl::StrJoin(holders[i], ",")));
  }
  absl::StrAppend(&out, "\n",
                  absl::StrFormat("%-5s %-28s %-5s %-8s %12s %12s %s\n", "rank", "worker", "slot",
                                  "device", "params", "grads", "stages"));
  for (const auto& r : d.ranks()) {
    absl::StrAppend(
        &out, absl::StrFormat("%-5d %-28s %-5d %-8s %12s %12s %s\n", r.rank(), r.worker(), r.slot(),
                              r.device(), HumanBytes(r.parameter_bytes()),
                              HumanBytes(r.gradient_bytes()), absl::StrJoin(r.stages(), ",")));
  }
  if (!d.inconsistent_stages().empty()) {
    absl::StrAppend(&out, "\nWARNING: data-parallel replicas of stages ",
                    absl::StrJoin(d.inconsistent_stages(), ","), " hold different weights\n");
  }
  return out;
}

std::string ModelsToTable(const gptbuilder::v1::ListModelsResponse& models) {
  if (models.models().empty()) return "no models\n";
  std::string out = absl::StrFormat("%-24s %-10s %6s %16s %12s  %s\n", "NAME", "STATE", "RANKS",
                                    "PARAMETERS", "HELD", "REASON");
  for (const Model& m : models.models()) {
    absl::StrAppend(
        &out, absl::StrFormat("%-24s %-10s %6d %16s %12s  %s\n", m.name(), StateName(m.state()),
                              m.world_size(), Count(m.total_params()), HumanBytes(m.held_bytes()),
                              m.reason()));
  }
  return out;
}

std::string WorkersToTable(const gptbuilder::v1::ListWorkersResponse& workers) {
  if (workers.workers().empty()) return "no workers registered\n";
  std::string out = absl::StrFormat("%-28s %-24s %-6s %-10s %-8s %s\n", "NAME", "ADDRESS", "STATE",
                                    "SLOTS", "THREADS", "HOLDING");
  for (const auto& w : workers.workers()) {
    int used = 0;
    std::set<std::string> models;
    for (const auto& s : w.slots()) {
      if (!s.model().empty()) {
        ++used;
        models.insert(s.model());
      }
    }
    // Intra-op threads per rank ("-" from a worker that does not report them).
    const int threads = w.slots().empty() ? 0 : w.slots(0).threads();
    absl::StrAppend(&out, absl::StrFormat("%-28s %-24s %-6s %-10s %-8s %s\n", w.name(), w.address(),
                                          gptbuilder::v1::WorkerInfo::State_Name(w.state()),
                                          absl::StrCat(used, "/", w.slots_size(), " used"),
                                          threads > 0 ? absl::StrCat(threads, "/rank") : "-",
                                          models.empty() ? "-" : absl::StrJoin(models, ",")));
  }
  return out;
}

std::string ModelToText(const Model& m) {
  std::string out = absl::StrCat("model ", m.name(), ": ", StateName(m.state()));
  if (!m.reason().empty()) absl::StrAppend(&out, " (", m.reason(), ")");
  absl::StrAppend(&out, "\n  world ", m.world_size(), ", ", Count(m.total_params()),
                  " parameters, ", HumanBytes(m.held_bytes()), " held, operation ", m.operation(),
                  "\n");
  std::map<std::string, std::vector<int>> by_worker;
  for (const auto& p : m.placement()) by_worker[p.worker()].push_back(p.rank());
  for (const auto& [worker, ranks] : by_worker) {
    absl::StrAppend(&out, "  ranks ", absl::StrJoin(ranks, ","), " on ", worker, "\n");
  }
  if (!m.progress().phase_seconds().empty()) {
    std::vector<std::string> phases;
    for (const char* phase :
         {"validate", "plan", "rendezvous", "process_groups", "construct", "init", "wrap"}) {
      auto it = m.progress().phase_seconds().find(phase);
      if (it != m.progress().phase_seconds().end()) {
        phases.push_back(absl::StrFormat("%s %.3fs", phase, it->second));
      }
    }
    absl::StrAppend(&out, "  phases: ", absl::StrJoin(phases, ", "), "\n");
  }
  return out;
}

std::string MessageToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = multiline;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

}  // namespace gptb::cli
