#include "clients/cli/service_commands.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "clients/cli/build_progress.h"
#include "clients/cli/config_args.h"
#include "clients/cli/model_format.h"
#include "clients/cli/rpc_client.h"

namespace gptb::cli {
namespace {

using gptbuilder::v1::Model;

// The model name when --name is absent: the config file's stem, lower-cased, with anything
// outside [a-z0-9._-] replaced by '-'.
std::string NameFromPath(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  std::string out;
  for (char c : stem) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')
                      ? c
                      : '-');
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out.empty() ? "model" : out.substr(0, 63);
}

// The one positional argument NAME.
absl::StatusOr<std::string> ModelName(const ParsedArgs& args) {
  if (args.positional.size() != 1) {
    return absl::InvalidArgumentError("expected exactly one model NAME");
  }
  return args.positional[0];
}

std::vector<FlagSpec> WithFormat(std::vector<FlagSpec> flags, const std::string& default_format) {
  flags.push_back({"format", true, false, "table|json",
                   absl::StrCat("output format (default ", default_format, ")")});
  return flags;
}

// Prints a model that finished building; the exit code says whether it is READY.
int ReportModel(const Model& model, const std::string& format, std::ostream& out,
                std::ostream& err) {
  out << (format == "json" ? MessageToJson(model) + "\n" : ModelToText(model));
  if (model.state() == Model::READY) return kExitOk;
  err << "error: model " << model.name() << " is " << StateName(model.state())
      << (model.reason().empty() ? "" : ": " + model.reason()) << "\n";
  return kExitFailure;
}

// ---- build --------------------------------------------------------------------------------

}  // namespace

absl::StatusOr<gptbuilder::v1::BuildModelRequest> BuildRequestFromArgs(const ParsedArgs& given) {
  // --from-hf DIR: the config is DIR/config.json and the weights DIR's safetensors.
  ParsedArgs args = given;
  std::string load_from = given.Get("load").value_or("");
  if (std::optional<std::string> hf = given.Get("from-hf")) {
    if (!given.positional.empty() || given.Has("load")) {
      return absl::InvalidArgumentError(
          "--from-hf DIR takes the config and the weights from DIR: give no CONFIG and no --load");
    }
    args.positional = {(std::filesystem::path(*hf) / "config.json").string()};
    load_from = *hf;
    if (!args.Has("name")) {
      // The directory's own name, dots included ("Llama-3.1-8B"), whatever its trailing slash.
      std::string dir = *hf;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      args.values["name"] = {NameFromPath(dir + ".dir")};
    }
  }
  // The daemons resolve the path, not this shell: make it absolute.
  if (!load_from.empty()) load_from = std::filesystem::absolute(load_from).lexically_normal();
  // The file goes as text with its --set overrides: the coordinator loads, overrides and
  // finalizes it (the one Finalize on this path) against its own limits.
  absl::StatusOr<gptbuilder::v1::ConfigText> text = ConfigTextFromArgs(args);
  if (!text.ok()) return text.status();

  gptbuilder::v1::BuildModelRequest request;
  request.set_name(args.Get("name").value_or(NameFromPath(args.positional[0])));
  *request.mutable_config_text() = *std::move(text);
  if (std::optional<std::string> world = args.Get("world-size")) {
    absl::StatusOr<int> size = WorldSizeFromArgs(args);
    if (!size.ok()) return size.status();
    request.set_world_size(*size);
  }
  request.set_request_id(args.Get("request-id").value_or(""));
  request.set_validate_only(args.Has("validate-only"));
  request.set_for_training(args.Has("for-training"));
  request.set_load_from(load_from);
  request.set_device(args.Get("device").value_or(""));
  return request;
}

namespace {

int RunBuild(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<gptbuilder::v1::BuildModelRequest> request = BuildRequestFromArgs(args);
  if (!request.ok()) return ReportStatus(request.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);

  google::longrunning::Operation op;
  grpc::Status status = client->stub()->BuildModel(client->Context().get(), *request, &op);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);

  if (request->validate_only()) {
    Model model;
    op.response().UnpackTo(&model);
    out << (*format == "json"
                ? MessageToJson(model) + "\n"
                : absl::StrCat("would build model ", model.name(), ": ", ModelToText(model)));
    return kExitOk;
  }
  if (!args.Has("wait")) {
    out << (*format == "json" ? MessageToJson(op) + "\n"
                              : absl::StrCat("building model ", request->name(), " (", op.name(),
                                             "); `gptb watch ", request->name(), "` follows it\n"));
    return kExitOk;
  }
  absl::StatusOr<Model> model =
      WatchUntilDone(*client, request->name(), &err, isatty(STDERR_FILENO) != 0);
  if (!model.ok()) return ReportStatus(model.status(), err);
  return ReportModel(*model, *format, out, err);
}

std::vector<FlagSpec> BuildFlags() {
  std::vector<FlagSpec> flags = ConfigTextFlags();
  flags.push_back(
      {"name", true, false, "NAME", "the model's name (default: the config file's name)"});
  flags.push_back({"wait", false, false, "", "follow the build with progress bars until it ends"});
  flags.push_back({"request-id", true, false, "ID",
                   "idempotency key: a retry with the same NAME and ID returns the first build"});
  flags.push_back(
      {"validate-only", false, false, "", "validate, plan and place without building (a dry run)"});
  flags.push_back({"device", true, false, "cpu|cuda",
                   "the device type every rank runs on (default: cuda when the workers register a "
                   "CUDA slot per rank, else cpu)"});
  flags.push_back({"for-training", false, false, "",
                   "admit the model with room for its optimizer state (Adam moments, fp32 main "
                   "weights) next to parameters and gradients"});
  flags.push_back({"load", true, false, "PATH",
                   "load the weights from a checkpoint (gptb save's canonical format, or a Hugging "
                   "Face model directory) instead of initialising them; the path must be visible "
                   "to the coordinator and every worker"});
  flags.push_back({"from-hf", true, false, "DIR",
                   "build a Hugging Face model directory: the config from DIR/config.json, the "
                   "weights from DIR's safetensors (replaces CONFIG)"});
  return WithFormat(flags, "table");
}

// ---- watch / describe / models / workers / release ----------------------------------------

int RunWatch(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<std::string> name = ModelName(args);
  if (!name.ok()) return ReportStatus(name.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  absl::StatusOr<Model> model = WatchUntilDone(*client, *name, &err, isatty(STDERR_FILENO) != 0);
  if (!model.ok()) return ReportStatus(model.status(), err);
  return ReportModel(*model, *format, out, err);
}

int RunDescribe(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<std::string> name = ModelName(args);
  if (!name.ok()) return ReportStatus(name.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  gptbuilder::v1::DescribeModelRequest request;
  request.set_name(*name);
  gptbuilder::v1::DescribeModelResponse response;
  grpc::Status status = client->stub()->DescribeModel(client->Context().get(), request, &response);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  out << (*format == "json" ? DescribeToJson(response).dump(2) + "\n" : DescribeToTable(response));
  return kExitOk;
}

int RunModels(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  gptbuilder::v1::ListModelsResponse response;
  grpc::Status status = client->stub()->ListModels(client->Context().get(), {}, &response);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  out << (*format == "json" ? MessageToJson(response) + "\n" : ModelsToTable(response));
  return kExitOk;
}

int RunWorkers(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  gptbuilder::v1::ListWorkersResponse response;
  grpc::Status status = client->stub()->ListWorkers(client->Context().get(), {}, &response);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  out << (*format == "json" ? MessageToJson(response) + "\n" : WorkersToTable(response));
  return kExitOk;
}

int RunRelease(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<std::string> name = ModelName(args);
  if (!name.ok()) return ReportStatus(name.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  gptbuilder::v1::DeleteModelRequest request;
  request.set_name(*name);
  gptbuilder::v1::DeleteModelResponse response;
  grpc::Status status = client->stub()->DeleteModel(client->Context().get(), request, &response);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  out << (*format == "json" ? MessageToJson(response) + "\n"
                            : absl::StrCat("released model ", *name, " (",
                                           response.model().world_size(), " ranks)\n"));
  return kExitOk;
}

}  // namespace

const Command& BuildCommand() {
  static const auto* command = new Command{
      "build",
      "build a model on the cluster (returns at once; --wait follows it)",
      "CONFIG [--set K=V]... [--name NAME] [--world-size N] [--load PATH] [--wait] "
      "[--format table|json]\n       gptb build --from-hf DIR [--set K=V]... [--name NAME] ...",
      "Validates CONFIG locally (exit 2 with `field: message` lines when invalid), then asks the\n"
      "coordinator to build it: the coordinator plans it, places its ranks on worker slots and\n"
      "dispatches the build. With --wait, draws one progress bar per phase (process groups,\n"
      "layers, bytes initialised, wrapping) and exits 0 when the model is READY, 1 when it\n"
      "FAILED. Not enough slots is FAILED_PRECONDITION, not enough memory RESOURCE_EXHAUSTED.",
      BuildFlags(),
      &RunBuild,
  };
  return *command;
}

const Command& WatchCommand() {
  static const auto* command = new Command{
      "watch",
      "follow a model's build until it is READY or FAILED",
      "NAME [--format table|json]",
      "Draws the build's progress bars; exits 0 when the model is READY, 1 otherwise.",
      WithFormat({}, "table"),
      &RunWatch,
  };
  return *command;
}

const Command& DescribeCommand() {
  static const auto* command = new Command{
      "describe",
      "what the workers hold for a model: stages, parameters, checksums",
      "NAME [--format table|json]",
      "Gathers every rank's parameter table from the workers. --format json prints the same\n"
      "`stages` shape as `gptb plan --format json`, read from the tensors actually held, with a\n"
      "checksum per parameter.",
      WithFormat({}, "table"),
      &RunDescribe,
  };
  return *command;
}

const Command& ModelsCommand() {
  static const auto* command = new Command{
      "models",
      "list the models and their states",
      "[--format table|json]",
      "Every model the coordinator knows: BUILDING, READY, FAILED (with the reason), RELEASING\n"
      "or RECOVERING (after a coordinator restart, until its workers re-register).",
      WithFormat({}, "table"),
      &RunModels,
  };
  return *command;
}

const Command& WorkersCommand() {
  static const auto* command = new Command{
      "workers",
      "list the registered workers and their slots",
      "[--format table|json]",
      "Every registered worker: address, state (READY, or LOST when it stopped heart-beating),\n"
      "and which slots hold ranks of which models.",
      WithFormat({}, "table"),
      &RunWorkers,
  };
  return *command;
}

const Command& ReleaseCommand() {
  static const auto* command = new Command{
      "release",
      "release a model's stages on every worker",
      "NAME [--format table|json]",
      "Releases every rank of the model (cancelling its build when BUILDING) and forgets it.",
      WithFormat({}, "table"),
      &RunRelease,
  };
  return *command;
}

}  // namespace gptb::cli
