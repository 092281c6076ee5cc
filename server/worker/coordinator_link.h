#ifndef GPTB_SERVER_WORKER_COORDINATOR_LINK_H_
#define GPTB_SERVER_WORKER_COORDINATOR_LINK_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "grpcpp/security/credentials.h"
#include "rpc/auth.h"
#include "server/worker/stage_holder.h"

namespace gptb::worker {

struct CoordinatorLinkOptions {
  std::string coordinator;  // HOST:PORT
  std::string name;         // this worker's stable name
  std::string address;      // where the coordinator reaches this worker
  std::string version;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  rpc::BearerToken token;
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Pause between attempts while the coordinator cannot be reached.
  absl::Duration retry = absl::Milliseconds(500);
  // Called on the link's thread whenever connected() changes (the worker's readiness follows
  // it at once: a registration must not wait for a poll before the worker reports ready).
  std::function<void(bool connected)> on_connected_change;
};

// Keeps a worker registered: registers (reporting the models it holds, so a restarted
// coordinator recovers them), heart-beats at the interval the coordinator asks for, registers
// again when told it is unknown, and releases the models the coordinator no longer has.
class CoordinatorLink {
 public:
  CoordinatorLink(CoordinatorLinkOptions options, StageHolder* holder);
  ~CoordinatorLink();

  void Start();
  void Stop();
  // True while the last register/heartbeat call succeeded.
  bool connected() const { return connected_; }
  // Waits until the first registration succeeded; false on timeout.
  bool WaitRegistered(absl::Duration timeout);

 private:
  void Loop();
  bool Register();
  bool Beat();
  void ReleaseAll(const google::protobuf::RepeatedPtrField<std::string>& models);

  const CoordinatorLinkOptions options_;
  StageHolder* holder_;
  std::unique_ptr<gptbuilder::v1::Coordinator::Stub> stub_;
  std::atomic<bool> connected_{false};
  bool registered_ = false;
  absl::Duration interval_ = absl::Seconds(1);
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool ever_registered_ = false;
  std::thread thread_;
};

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_COORDINATOR_LINK_H_
