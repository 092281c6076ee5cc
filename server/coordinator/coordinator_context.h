#ifndef GPTB_SERVER_COORDINATOR_COORDINATOR_CONTEXT_H_
#define GPTB_SERVER_COORDINATOR_COORDINATOR_CONTEXT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "core/config/limits.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/model_registry.h"
#include "server/coordinator/rendezvous.h"
#include "server/coordinator/worker_connection.h"
#include "server/coordinator/worker_fan_out.h"
#include "server/coordinator/worker_registry.h"

namespace gptb::coordinator {

struct CoordinatorOptions {
  // Workers heart-beat this often; one silent for `heartbeat_timeout` is LOST, which fails the
  // builds and models it holds ranks of.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(6);
  // The store and process-group timeout every rank builds with: how long a rank waits for a
  // peer that never comes (a dead worker) before it gives up and releases.
  absl::Duration rank_timeout = absl::Seconds(120);
  // The deadline of a whole build's BuildStages calls.
  absl::Duration build_deadline = absl::Hours(6);
  // Release and describe calls to workers.
  absl::Duration worker_rpc_timeout = absl::Seconds(30);
  // A model recovered after a restart fails when not every rank's worker re-registered by then.
  absl::Duration recovery_grace = absl::Seconds(60);
  absl::Duration sweep_period = absl::Milliseconds(100);
  // A LOST worker leaves ListWorkers this long after it was declared lost (once its models were
  // released), so that a worker that is gone for good does not stay listed forever.
  absl::Duration lost_worker_retention = absl::Seconds(60);
  // What one validate, plan or build request may ask for (core/config/limits.h).
  config::Limits limits;
  // When set (resolved), load_from must resolve inside it and save paths must lie inside it
  // (--checkpoint-root; the workers enforce their own on loads and saves as well).
  std::string checkpoint_root;
};

// A model's ranks to release on its workers.
struct Release {
  std::string model;
  std::string build_id;
  std::vector<std::string> workers;
};

// What every part of the coordinator shares: its options, the connections to workers, the
// metrics, and the models and workers it knows, all under one lock (a change to one often
// changes the other: a lost worker fails models, a build occupies slots).
class CoordinatorContext {
 public:
  CoordinatorContext(CoordinatorOptions options, std::unique_ptr<Rendezvous> rendezvous,
                     std::shared_ptr<WorkerConnector> connector, CoordinatorMetrics* metrics)
      : options(options),
        rendezvous(std::move(rendezvous)),
        connector(std::move(connector)),
        metrics(metrics) {}

  const CoordinatorOptions options;
  const std::unique_ptr<Rendezvous> rendezvous;
  const std::shared_ptr<WorkerConnector> connector;
  CoordinatorMetrics* const metrics;  // may be null

  mutable Mutex mu;
  // Notified after every change under `mu` that a waiter may be waiting for.
  CondVar changed;
  WorkerRegistry workers ABSL_GUARDED_BY(mu);
  ModelRegistry models ABSL_GUARDED_BY(mu);
  // Why each failed build failed (the operation's error), by build id.
  std::map<std::string, absl::Status> failures ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;

  // The addresses of the workers holding ranks of `model`; UNAVAILABLE naming a worker that is
  // gone.
  absl::StatusOr<WorkerAddresses> AddressesOfLocked(const gptbuilder::v1::Model& model) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Marks the READY or RECOVERING model `name` FAILED for `reason` and returns what to release
  // (its workers but `exclude_worker`, whose ranks are gone); nullopt in any other state.
  std::optional<Release> MarkFailedLocked(const std::string& name, const std::string& reason,
                                          const std::string& exclude_worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Releases `release` on its READY workers (a lost one releases when it re-registers), then
  // frees its slots when the model still has that build. Takes the lock; not under it.
  void ReleaseOnWorkers(const Release& release, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu);
};

// The workers holding ranks of `model`, by name.
std::vector<std::string> WorkersOf(const gptbuilder::v1::Model& model);
// The ranks of `model` on `worker`.
std::vector<int> RanksOn(const gptbuilder::v1::Model& model, const std::string& worker);
// "[0, 1, 3]".
std::string RankList(const std::vector<int>& ranks);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_COORDINATOR_CONTEXT_H_
