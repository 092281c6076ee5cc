#include "clients/cli/build_progress.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/plan/plan_format.h"
#include "grpcpp/client_context.h"

namespace gptb::cli {
namespace {

constexpr int kBarWidth = 30;

double Fraction(int64_t done, int64_t total) {
  return total <= 0 ? 0.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
}

}  // namespace

std::string Bar(const std::string& name, double fraction, const std::string& text) {
  const int filled = static_cast<int>(fraction * kBarWidth + 0.5);
  return absl::StrFormat("%-15s [%s%s] %s", name, std::string(filled, '#'),
                         std::string(kBarWidth - filled, '.'), text);
}

void BuildProgressDisplay::Update(const gptbuilder::v1::BuildEvent& event) {
  const gptbuilder::v1::BuildProgress& p = event.progress();
  const int ranks = std::max(p.ranks_total(), 1);
  const std::string lines[] = {
      Bar("process groups", Fraction(p.ranks_with_process_groups(), ranks),
          absl::StrCat(p.ranks_with_process_groups(), "/", ranks, " ranks")),
      Bar("layers", Fraction(p.layers_built(), p.layers_total()),
          absl::StrCat(p.layers_built(), "/", p.layers_total())),
      Bar("initialised", Fraction(p.bytes_initialized(), p.bytes_total()),
          absl::StrCat(plan::HumanBytes(p.bytes_initialized()), " / ",
                       plan::HumanBytes(p.bytes_total()))),
      Bar("wrapped", Fraction(p.ranks_done(), ranks),
          absl::StrCat(p.ranks_done(), "/", ranks, " ranks")),
  };
  if (terminal_) {
    if (drawn_) out_ << "\x1b[4F";  // back to the first bar
    for (const std::string& line : lines) out_ << "\x1b[2K" << line << "\n";
    out_.flush();
    drawn_ = true;
    return;
  }
  // Logs: one compact line per visible step.
  const std::string line =
      absl::StrFormat("%s: groups %d/%d, layers %d/%d, init %d%%, wrapped %d/%d",
                      gptbuilder::v1::Model::State_Name(event.state()),
                      p.ranks_with_process_groups(), ranks, p.layers_built(), p.layers_total(),
                      static_cast<int>(Fraction(p.bytes_initialized(), p.bytes_total()) * 10) * 10,
                      p.ranks_done(), ranks);
  if (line != last_line_) {
    out_ << line << "\n";
    out_.flush();
    last_line_ = line;
  }
}

absl::StatusOr<gptbuilder::v1::Model> WatchUntilDone(CoordinatorClient& client,
                                                     const std::string& name,
                                                     std::ostream* progress, bool terminal) {
  BuildProgressDisplay display(progress != nullptr ? *progress : std::cerr, terminal);
  gptbuilder::v1::WatchBuildRequest request;
  request.set_name(name);
  // A watch lasts as long as the build; the build's own deadline bounds it on the server.
  std::unique_ptr<grpc::ClientContext> context = client.Context(absl::Hours(24));
  auto reader = client.stub()->WatchBuild(context.get(), request);
  gptbuilder::v1::BuildEvent event;
  bool any = false;
  while (reader->Read(&event)) {
    any = true;
    if (progress != nullptr) display.Update(event);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return RpcError(status, client.server());
  if (!any) return absl::InternalError("the coordinator ended the watch without an event");
  std::unique_ptr<grpc::ClientContext> get = client.Context();
  gptbuilder::v1::GetModelRequest get_request;
  get_request.set_name(name);
  gptbuilder::v1::Model model;
  status = client.stub()->GetModel(get.get(), get_request, &model);
  if (!status.ok()) return RpcError(status, client.server());
  return model;
}

}  // namespace gptb::cli
