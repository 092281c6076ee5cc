#include "clients/cli/plan_command.h"

#include <algorithm>
#include <numeric>

#include "clients/cli/config_args.h"
#include "core/plan/model_plan.h"
#include "core/plan/plan_format.h"

namespace gptb::cli {
namespace {

// Without --world-size: the smallest world the parallel sizes allow (one data-parallel replica
// of the dense grid, enough ranks for the expert grid).
int SmallestWorld(const gptbuilder::v1::TransformerConfig& t) {
  const int64_t dense = int64_t{t.tensor_model_parallel_size()} * t.pipeline_model_parallel_size() *
                        t.context_parallel_size();
  const int64_t expert = int64_t{t.expert_tensor_parallel_size()} * t.expert_model_parallel_size() *
                         t.pipeline_model_parallel_size();
  const int64_t lcm = std::lcm(dense, expert);
  return static_cast<int>(lcm);
}

int RunPlan(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<config::LoadedConfig> resolved = LoadResolvedConfig(args);
  if (!resolved.ok()) return ReportStatus(resolved.status(), err);
  plan::PlanOptions options;
  options.build = resolved->build;
  options.ddp = resolved->ddp;
  options.world_size = args.Get("world-size").has_value()
                           ? std::stoi(*args.Get("world-size"))
                           : SmallestWorld(resolved->model.transformer());
  absl::StatusOr<plan::ModelPlan> plan = plan::ModelPlan::Create(resolved->model, options);
  if (!plan.ok()) return ReportStatus(plan.status(), err);
  if (*format == "json") {
    out << plan::PlanToJson(*plan).dump(2) << "\n";
  } else {
    out << plan::PlanToTable(*plan);
  }
  return kExitOk;
}

std::vector<FlagSpec> PlanFlags() {
  std::vector<FlagSpec> flags = ConfigFlags();
  flags.push_back(FormatFlag("table"));
  return flags;
}

}  // namespace

const Command& PlanCommand() {
  static const auto* command = new Command{
      "plan",
      "print the per-rank build plan: topology, pipeline layout, parameters, memory",
      "CONFIG [--set K=V]... [--world-size N] [--format table|json]",
      "Validates CONFIG like `gptb validate`, then plans the model for N ranks (default: the\n"
      "smallest world its parallel sizes allow): the rank grids and process groups, the layers of\n"
      "every pipeline stage, every parameter's Megatron state-dict name, shape and dtype on every\n"
      "distinct stage, and each rank's parameter, gradient and optimizer-state bytes. Needs no\n"
      "server. `--format json` prints the DESIGN.md contract (padded_vocab_size, world_size,\n"
      "stages, ranks).",
      PlanFlags(),
      &RunPlan,
  };
  return *command;
}

}  // namespace gptb::cli
