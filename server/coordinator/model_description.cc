#include "server/coordinator/model_description.h"

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/coordinator/model_preparation.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;

absl::StatusOr<gptbuilder::v1::DescribeModelResponse> DescribeModel(CoordinatorContext& ctx,
                                                                    const std::string& name,
                                                                    absl::Time deadline) {
  Model model;
  WorkerAddresses addresses;
  {
    MutexLock lock(&ctx.mu);
    const Model* found = ctx.models.Find(name);
    if (found == nullptr) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
    if (found->state() != Model::READY) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "' is ", ModelStateName(found->state()),
          "; describe reads the stages of a READY model (`gptb watch ", name, "` follows it)"));
    }
    model = *found;
    absl::StatusOr<WorkerAddresses> found_addresses = ctx.AddressesOfLocked(model);
    if (!found_addresses.ok()) return found_addresses.status();
    addresses = *std::move(found_addresses);
  }
  absl::StatusOr<plan::ModelPlan> plan = PlanFinalized(model.config(), model.ddp(), model.build(),
                                                       model.world_size(), ctx.options.limits);
  if (!plan.ok()) return plan.status();

  gptbuilder::v1::DescribeHeldModelRequest request;
  request.set_model(name);
  const FanOutAnswers<gptbuilder::v1::DescribeHeldModelResponse> answers =
      WorkerFanOut(ctx.connector)
          .Collect<gptbuilder::v1::DescribeHeldModelResponse>(
              addresses, deadline,
              [&request](WorkerConnection& connection, absl::Time until, CallCanceller*) {
                return connection.DescribeModel(request, until);
              });
  if (std::optional<WorkerFailure> failed = answers.FirstFailure(); failed.has_value()) {
    return absl::Status(failed->status.code(),
                        absl::StrCat("describing the ranks on worker ", failed->worker, ": ",
                                     failed->status.message()));
  }
  std::map<int, std::pair<std::string, const gptbuilder::v1::HeldRankDescription*>> ranks;
  for (const auto& [worker, answer] : answers.by_worker) {
    for (const auto& rank : answer->ranks()) ranks[rank.rank()] = {worker, &rank};
  }

  gptbuilder::v1::DescribeModelResponse response;
  *response.mutable_model() = model;
  response.set_padded_vocab_size(plan->padded_vocab_size());
  response.set_world_size(model.world_size());
  const size_t num_stages = plan->stages().size();
  std::vector<std::optional<gptbuilder::v1::StageDescription>> stages(num_stages);
  std::set<int> inconsistent;
  for (int r = 0; r < model.world_size(); ++r) {
    auto it = ranks.find(r);
    if (it == ranks.end()) {
      return absl::DataLossError(
          absl::StrCat("no worker reports holding rank ", r, " of model '", name, "'"));
    }
    const auto& [worker, held] = it->second;
    const plan::RankPlan rank_plan = plan->Rank(r);
    gptbuilder::v1::RankSummary* summary = response.add_ranks();
    summary->set_rank(r);
    summary->set_worker(worker);
    summary->set_slot(held->slot());
    summary->set_device(held->device());
    summary->set_parameter_bytes(held->parameter_bytes());
    summary->set_gradient_bytes(held->gradient_bytes());
    *summary->mutable_phase_seconds() = held->phase_seconds();
    if (held->stages_size() != static_cast<int>(rank_plan.stages.size())) {
      return absl::DataLossError(absl::StrCat("rank ", r, " holds ", held->stages_size(),
                                              " model chunks; the plan has ",
                                              rank_plan.stages.size()));
    }
    for (int chunk = 0; chunk < held->stages_size(); ++chunk) {
      const int index = rank_plan.stages[chunk];
      summary->add_stages(index);
      const gptbuilder::v1::StageDescription& stage = held->stages(chunk);
      if (!stages[index].has_value()) {
        stages[index] = stage;
        continue;
      }
      // A data-parallel replica: every checksum must match the first holder's.
      const auto& first = *stages[index];
      bool same = first.params_size() == stage.params_size();
      for (int i = 0; same && i < stage.params_size(); ++i) {
        same = first.params(i).checksum() == stage.params(i).checksum();
      }
      if (!same) inconsistent.insert(index);
    }
  }
  for (size_t i = 0; i < num_stages; ++i) {
    if (!stages[i].has_value()) {
      return absl::DataLossError(absl::StrCat("no rank holds stage ", i, " of the plan"));
    }
    *response.add_stages() = *stages[i];
  }
  for (int index : inconsistent) response.add_inconsistent_stages(index);
  return response;
}

}  // namespace gptb::coordinator
