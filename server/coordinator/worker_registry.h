#ifndef GPTB_SERVER_COORDINATOR_WORKER_REGISTRY_H_
#define GPTB_SERVER_COORDINATOR_WORKER_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/placement.h"

namespace gptb::coordinator {

// The registered workers, their liveness and which rank of which model each slot holds.
// Not thread-safe: the Coordinator guards it with its mutex.
class WorkerRegistry {
 public:
  // Adds a worker, or replaces one of the same name (a restarted worker or coordinator); its
  // slots start free and the caller re-occupies what the worker reports holding.
  void Register(const gptbuilder::v1::RegisterWorkerRequest& request, absl::Time now);
  // Records a heartbeat; false when the worker is unknown (it must register again). A LOST
  // worker that heart-beats again is READY again.
  bool Heartbeat(const std::string& name, absl::Time now);
  // Marks READY workers silent for longer than `timeout` LOST; returns the newly lost names.
  std::vector<std::string> SweepLost(absl::Time now, absl::Duration timeout);
  // Forgets LOST workers silent for longer than `timeout` + `retention` whose slots hold
  // nothing (their models were failed and released); returns their names. One that comes back
  // registers again.
  std::vector<std::string> ForgetLost(absl::Time now, absl::Duration timeout,
                                      absl::Duration retention);
  void Remove(const std::string& name);

  const gptbuilder::v1::WorkerInfo* Find(const std::string& name) const;
  bool IsReady(const std::string& name) const;
  // READY workers' slots, for placement.
  std::vector<WorkerCapacity> Capacity() const;
  int ReadyCount() const;

  void Occupy(const gptbuilder::v1::RankPlacement& placement, const std::string& model);
  void FreeModel(const std::string& model);
  // Models with a rank on `worker`.
  std::vector<std::string> ModelsOn(const std::string& worker) const;

  std::vector<gptbuilder::v1::WorkerInfo> List() const;
  // Seconds since each worker's last heartbeat.
  std::map<std::string, double> HeartbeatAges(absl::Time now) const;

 private:
  struct Record {
    gptbuilder::v1::WorkerInfo info;
    absl::Time last_heartbeat;
  };
  std::map<std::string, Record> workers_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_WORKER_REGISTRY_H_
