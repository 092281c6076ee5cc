#include "server/coordinator/coordinator_context.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;
using gptbuilder::v1::RankPlacement;

std::vector<std::string> WorkersOf(const Model& model) {
  std::set<std::string> workers;
  for (const RankPlacement& p : model.placement()) workers.insert(p.worker());
  return {workers.begin(), workers.end()};
}

std::vector<int> RanksOn(const Model& model, const std::string& worker) {
  std::vector<int> ranks;
  for (const RankPlacement& p : model.placement()) {
    if (p.worker() == worker) ranks.push_back(p.rank());
  }
  return ranks;
}

std::string RankList(const std::vector<int>& ranks) {
  return absl::StrCat("[", absl::StrJoin(ranks, ", "), "]");
}

absl::StatusOr<WorkerAddresses> CoordinatorContext::AddressesOfLocked(const Model& model) const {
  WorkerAddresses addresses;
  for (const std::string& worker : WorkersOf(model)) {
    const gptbuilder::v1::WorkerInfo* w = workers.Find(worker);
    if (w == nullptr) return absl::UnavailableError(absl::StrCat("worker ", worker, " is gone"));
    addresses[worker] = w->address();
  }
  return addresses;
}

std::optional<Release> CoordinatorContext::MarkFailedLocked(const std::string& name,
                                                            const std::string& reason,
                                                            const std::string& exclude_worker) {
  const Model* model = models.Find(name);
  if (model == nullptr) return std::nullopt;
  if (model->state() != Model::READY && model->state() != Model::RECOVERING) return std::nullopt;
  Release release{name, model->build_id(), {}};
  for (const std::string& worker : WorkersOf(*model)) {
    if (worker != exclude_worker) release.workers.push_back(worker);
  }
  failures[model->build_id()] = absl::UnavailableError(reason);
  models
      .Transition(name, Model::FAILED,
                  absl::StrCat(reason, "; the other ranks were released; build the model again"),
                  absl::Now())
      .IgnoreError();
  return release;
}

void CoordinatorContext::ReleaseOnWorkers(const Release& release, absl::Time deadline) {
  WorkerAddresses targets;
  {
    MutexLock lock(&mu);
    for (const std::string& worker : release.workers) {
      if (!workers.IsReady(worker)) continue;  // a lost worker releases when it re-registers
      targets[worker] = workers.Find(worker)->address();
    }
  }
  gptbuilder::v1::ReleaseModelRequest request;
  request.set_model(release.model);
  request.set_build_id(release.build_id);
  // A failed release is retried through heartbeat reconciliation.
  WorkerFanOut(connector).Collect<gptbuilder::v1::ReleaseModelResponse>(
      targets, deadline,
      [&request](WorkerConnection& connection, absl::Time until, CallCanceller*) {
        return connection.ReleaseModel(request, until);
      });
  {
    MutexLock lock(&mu);
    const Model* model = models.Find(release.model);
    if (model == nullptr || model->build_id() == release.build_id) workers.FreeModel(release.model);
  }
  // Keys a released build's ranks may still have written after the build ended.
  if (rendezvous != nullptr) {
    rendezvous->DeletePrefix(absl::StrCat("gptb/", release.model, "/", release.build_id, "/"));
  }
  changed.NotifyAll();
}

}  // namespace gptb::coordinator
