#include "clients/cli/plan_command.h"

#include "clients/cli/config_args.h"
#include "core/plan/model_plan.h"
#include "core/plan/plan_description.h"
#include "core/plan/plan_format.h"

namespace gptb::cli {
namespace {

int RunPlan(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<config::LoadedConfig> resolved = LoadResolvedConfig(args);
  if (!resolved.ok()) return ReportStatus(resolved.status(), err);
  absl::StatusOr<config::Limits> limits = LimitsFromArgs(args);
  if (!limits.ok()) return ReportStatus(limits.status(), err);
  plan::PlanOptions options;
  options.build = resolved->build;
  options.ddp = resolved->ddp;
  options.max_plan_tensors = limits->max_plan_tensors;
  // LoadResolvedConfig checked both against --max-world-size: they fit an int. Without
  // --world-size: the smallest world the parallel sizes allow.
  options.world_size =
      args.Get("world-size").has_value()
          ? std::stoi(*args.Get("world-size"))
          : static_cast<int>(config::MinimalWorldSize(resolved->model.transformer()));
  absl::StatusOr<plan::ModelPlan> plan = plan::ModelPlan::Create(resolved->model, options);
  if (!plan.ok()) return ReportStatus(plan.status(), err);
  if (*format == "json") {
    out << plan::PlanToJson(plan::DescribePlan(*plan)).dump(2) << "\n";
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
