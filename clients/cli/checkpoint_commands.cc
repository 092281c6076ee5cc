#include "clients/cli/checkpoint_commands.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/cli/config_args.h"
#include "clients/cli/model_format.h"
#include "clients/cli/rpc_client.h"

namespace gptb::cli {
namespace {

// Asks the coordinator to save MODEL at `path` (made absolute: the workers write it).
int Save(const ParsedArgs& args, const std::string& model, const std::string& path,
         const std::string& format, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> output = OutputFormat(args, "table", {"table", "json"});
  if (!output.ok()) return ReportStatus(output.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);
  gptbuilder::v1::SaveCheckpointRequest request;
  request.set_model(model);
  request.set_path(std::filesystem::absolute(path).lexically_normal().string());
  while (request.path().size() > 1 && request.path().back() == '/') {
    request.mutable_path()->pop_back();
  }
  request.set_format(format);
  request.set_hf_model_type(args.Get("model-type").value_or(""));
  request.set_overwrite(args.Has("overwrite"));
  gptbuilder::v1::SaveCheckpointResponse response;
  // A save of a large model takes as long as the disks need.
  grpc::Status status =
      client->stub()->SaveCheckpoint(client->Context(absl::Hours(24)).get(), request, &response);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  if (*output == "json") {
    out << MessageToJson(response) << "\n";
  } else {
    out << absl::StrFormat(
        "saved model %s to %s (%s, %d files, %.2f GB in %.2f s, %.2f GB/s)\n", model,
        response.path(), response.format(), response.files(), response.bytes_written() / 1e9,
        response.seconds(),
        response.seconds() > 0 ? response.bytes_written() / 1e9 / response.seconds() : 0.0);
  }
  return kExitOk;
}

int RunSave(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  if (args.positional.size() != 2) {
    return ReportStatus(absl::InvalidArgumentError("expected MODEL and PATH"), err);
  }
  return Save(args, args.positional[0], args.positional[1], "canonical", out, err);
}

int RunExport(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  if (args.positional.size() != 1 || !args.Has("hf")) {
    return ReportStatus(absl::InvalidArgumentError("expected MODEL and --hf DIR"), err);
  }
  return Save(args, args.positional[0], *args.Get("hf"), "huggingface", out, err);
}

FlagSpec OverwriteFlag() {
  return {"overwrite", false, false, "", "replace what is at the path (else ALREADY_EXISTS)"};
}

FlagSpec JsonFlag() {
  return {"format", true, false, "table|json", "output format (default table)"};
}

}  // namespace

const Command& SaveCommand() {
  static const auto* command = new Command{
      "save",
      "save a model's weights as a layout-independent checkpoint",
      "MODEL PATH [--overwrite] [--format table|json]",
      "Every rank writes its own slices of the canonical (unsharded) tensors, with Megatron\n"
      "names and global layer/expert indices, into safetensors files (at most 5 GB each, with\n"
      "an index) and the resolved config as metadata. The checkpoint appears at PATH only when\n"
      "complete. `gptb build CONFIG --load PATH` loads it into any parallel layout. PATH must be\n"
      "visible to every worker (a shared filesystem across nodes).",
      {OverwriteFlag(), JsonFlag()},
      &RunSave,
  };
  return *command;
}

const Command& ExportCommand() {
  static const auto* command = new Command{
      "export",
      "export a model's weights as a Hugging Face model directory",
      "MODEL --hf DIR [--model-type T] [--overwrite] [--format table|json]",
      "Writes config.json and safetensors in the Hugging Face layout of the model's family\n"
      "(gpt2, llama, mistral, qwen2, qwen3, mixtral, qwen3_moe: split q/k/v and gate/up, GPT-2's\n"
      "Conv1D transposes, unpadded vocabulary). Every rank writes its own slices; DIR must be\n"
      "visible to every worker. `gptb build --from-hf DIR` reads it back.",
      {{"hf", true, false, "DIR", "the directory to write"},
       {"model-type", true, false, "T", "the Hugging Face model_type (default: inferred)"},
       OverwriteFlag(),
       JsonFlag()},
      &RunExport,
  };
  return *command;
}

}  // namespace gptb::cli
