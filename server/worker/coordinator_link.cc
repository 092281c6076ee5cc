#include "server/worker/coordinator_link.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "rpc/credentials.h"
#include "server/common/log.h"

namespace gptb::worker {

CoordinatorLink::CoordinatorLink(CoordinatorLinkOptions options, StageHolder* holder)
    : options_(std::move(options)),
      holder_(holder),
      stub_(gptbuilder::v1::Coordinator::NewStub(
          rpc::MakeChannel(options_.coordinator, options_.credentials))) {}

CoordinatorLink::~CoordinatorLink() { Stop(); }

void CoordinatorLink::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void CoordinatorLink::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool CoordinatorLink::WaitRegistered(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return wake_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [this] {
    return ever_registered_ || stop_;
  }) && ever_registered_;
}

void CoordinatorLink::ReleaseAll(const google::protobuf::RepeatedPtrField<std::string>& models) {
  for (const std::string& model : models) {
    server::Log(absl::StrCat("the coordinator no longer has model '", model, "': releasing it"));
    holder_->Release(model, "");
  }
}

bool CoordinatorLink::Register() {
  gptbuilder::v1::RegisterWorkerRequest request;
  request.set_name(options_.name);
  request.set_address(options_.address);
  request.set_version(options_.version);
  for (const gptbuilder::v1::Slot& slot : holder_->slots()) *request.add_slots() = slot;
  for (gptbuilder::v1::HeldModel& held : holder_->HeldModels()) {
    *request.add_held_models() = std::move(held);
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  options_.token.Attach(&context);
  gptbuilder::v1::RegisterWorkerResponse response;
  grpc::Status status = stub_->RegisterWorker(&context, request, &response);
  if (!status.ok()) {
    if (connected_ || !ever_registered_) {
      server::Log(absl::StrCat("cannot register with the coordinator at ", options_.coordinator,
                               ": ", status.error_message(), " (retrying)"));
    }
    return false;
  }
  server::Log(absl::StrCat("registered with the coordinator at ", options_.coordinator, " as ",
                           options_.name, " (", request.slots_size(), " slots, ",
                           request.held_models_size(), " held models)"));
  if (response.heartbeat_interval_ms() > 0) {
    interval_ = absl::Milliseconds(response.heartbeat_interval_ms());
  }
  ReleaseAll(response.release_models());
  return true;
}

bool CoordinatorLink::Beat() {
  gptbuilder::v1::HeartbeatRequest request;
  request.set_name(options_.name);
  for (const std::string& name : holder_->HeldModelNames()) request.add_held_models(name);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  options_.token.Attach(&context);
  gptbuilder::v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) {
    if (connected_) {
      server::Log(absl::StrCat("lost the coordinator at ", options_.coordinator, ": ",
                               status.error_message()));
    }
    return false;
  }
  if (response.register_again()) {
    server::Log("the coordinator does not know this worker (it restarted): registering again");
    registered_ = false;
  }
  ReleaseAll(response.release_models());
  return true;
}

void CoordinatorLink::Loop() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    bool ok;
    if (!registered_) {
      ok = registered_ = Register();
      if (ok) {
        std::lock_guard<std::mutex> lock(mu_);
        ever_registered_ = true;
      }
      if (ok) wake_.notify_all();
    } else {
      ok = Beat();
    }
    const bool was_connected = connected_.exchange(ok);
    if (was_connected != ok && options_.on_connected_change) options_.on_connected_change(ok);
    if (ok && !registered_) continue;  // told to register again: do it now
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, absl::ToChronoMilliseconds(ok ? interval_ : options_.retry),
                   [this] { return stop_; });
  }
}

}  // namespace gptb::worker
