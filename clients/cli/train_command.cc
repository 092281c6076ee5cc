#include "clients/cli/train_command.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/cli/config_args.h"
#include "clients/cli/model_format.h"
#include "clients/cli/rpc_client.h"
#include "core/config/violations.h"

namespace gptb::cli {
namespace {

// Reads an optional numeric flag into `set`; a value that does not parse or is out of range is
// a violation naming the flag.
template <typename T, typename Setter>
void NumberFlag(const ParsedArgs& args, const std::string& flag, T min, const std::string& range,
                config::Violations* violations, Setter set) {
  std::optional<std::string> text = args.Get(flag);
  if (!text.has_value()) return;
  T value{};
  bool ok;
  if constexpr (std::is_floating_point_v<T>) {
    ok = absl::SimpleAtod(*text, &value);
  } else {
    ok = absl::SimpleAtoi(*text, &value);
  }
  if (!ok || value < min) {
    violations->Add(absl::StrCat("--", flag), "INVALID_VALUE",
                    absl::StrCat("--", flag, " must be ", range, ", got '", *text, "'"));
    return;
  }
  set(value);
}

int RunTrain(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<gptbuilder::v1::TrainStepRequest> request = TrainRequestFromArgs(args);
  if (!request.ok()) return ReportStatus(request.status(), err);
  absl::StatusOr<CoordinatorClient> client = CoordinatorClient::FromArgs(args);
  if (!client.ok()) return ReportStatus(client.status(), err);

  // Training runs as long as it needs; --timeout bounds each step's wait only through the
  // server's own limits.
  std::unique_ptr<grpc::ClientContext> context = client->Context(absl::Hours(24 * 7));
  std::unique_ptr<grpc::ClientReader<gptbuilder::v1::TrainStepResult>> reader =
      client->stub()->TrainStep(context.get(), *request);
  const bool table = *format == "table";
  gptbuilder::v1::TrainStepResult result;
  int steps = 0;
  double first_loss = 0.0, last_loss = 0.0;
  while (reader->Read(&result)) {
    if (steps == 0) {
      first_loss = result.loss();
      if (table) {
        out << absl::StrFormat("%-6s %10s %10s %10s %12s %9s\n", "step", "loss", "grad norm", "lr",
                               "tokens/s", "seconds");
      }
    }
    last_loss = result.loss();
    ++steps;
    if (table) {
      out << absl::StrFormat("%-6d %10.4f %10.4f %10.3g %12.0f %9.3f%s\n", result.iteration(),
                             result.loss(), result.grad_norm(), result.learning_rate(),
                             result.tokens_per_second(), result.seconds().total(),
                             result.skipped() ? "  (skipped: fp16 overflow)" : "");
    } else {
      out << MessageToJson(result, /*multiline=*/false) << "\n";
    }
    out.flush();  // a live display: one line per step as it ends
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  if (table && steps > 1) {
    out << absl::StrFormat("%d steps, loss %.4f -> %.4f\n", steps, first_loss, last_loss);
  }
  return kExitOk;
}

std::vector<FlagSpec> TrainFlags() {
  return {
      {"steps", true, false, "N", "train steps to run (default 1)"},
      {"data", true, false, "PREFIX",
       "a Megatron indexed dataset (PREFIX.bin / PREFIX.idx), readable by every worker"},
      {"synthetic", true, false, "SEED",
       "uniform random token ids from SEED (the default, with seed 1234, when --data is absent)"},
      {"micro-batch-size", true, false, "B", "samples per micro-batch (default 1)"},
      {"micro-batches", true, false, "M", "micro-batches per step and replica (default 1)"},
      {"seq-length", true, false, "L", "tokens per sample (default: the model's seq_length)"},
      {"optimizer", true, false, "adam|sgd", "the optimizer (default adam, decoupled decay)"},
      {"lr", true, false, "X",
       "peak learning rate: required on the model's first train call, which creates the "
       "optimizer; later calls omit the optimizer flags or repeat them"},
      {"min-lr", true, false, "X", "the decay's floor (default 0)"},
      {"weight-decay", true, false, "X", "weight decay (default 0.01)"},
      {"clip-grad", true, false, "X", "global gradient-norm clipping, 0 off (default 1.0)"},
      {"lr-warmup-iters", true, false, "N", "linear warmup steps (default 0)"},
      {"lr-decay-style", true, false, "STYLE",
       "constant, linear, cosine or inverse-square-root (default constant)"},
      {"lr-decay-iters", true, false, "N", "steps of the decay (linear and cosine need it)"},
      {"format", true, false, "table|json",
       "output format (default table; json prints one TrainStepResult per line)"},
  };
}

}  // namespace

absl::StatusOr<gptbuilder::v1::TrainStepRequest> TrainRequestFromArgs(const ParsedArgs& args) {
  config::Violations violations;
  gptbuilder::v1::TrainStepRequest request;
  if (args.positional.size() != 1) {
    violations.Add("MODEL", "REQUIRED", "expected exactly one model NAME");
  } else {
    request.set_model(args.positional[0]);
  }
  request.set_steps(1);
  NumberFlag<int32_t>(args, "steps", 1, "an integer >= 1", &violations,
                      [&](int32_t v) { request.set_steps(v); });
  if (args.Has("data") && args.Has("synthetic")) {
    violations.Add("--data", "CONFLICT", "give --data or --synthetic, not both");
  }
  if (std::optional<std::string> data = args.Get("data")) {
    request.mutable_batch()->set_data_path(*data);
  } else {
    request.mutable_batch()->set_synthetic_seed(1234);
    NumberFlag<uint64_t>(args, "synthetic", 0, "a non-negative integer seed", &violations,
                         [&](uint64_t v) { request.mutable_batch()->set_synthetic_seed(v); });
  }
  gptbuilder::v1::TrainOptions* options = request.mutable_options();
  NumberFlag<int32_t>(args, "micro-batch-size", 1, "an integer >= 1", &violations,
                      [&](int32_t v) { options->set_micro_batch_size(v); });
  NumberFlag<int32_t>(args, "micro-batches", 1, "an integer >= 1", &violations,
                      [&](int32_t v) { options->set_num_micro_batches(v); });
  NumberFlag<int32_t>(args, "seq-length", 1, "an integer >= 1", &violations,
                      [&](int32_t v) { options->set_seq_length(v); });
  // The optimizer is created by the model's first step; later calls may omit its flags.
  gptbuilder::v1::OptimizerConfig optimizer;
  gptbuilder::v1::SchedulerConfig scheduler;
  bool any = false;
  if (std::optional<std::string> name = args.Get("optimizer")) {
    if (*name != "adam" && *name != "adamw" && *name != "sgd") {
      violations.Add("--optimizer", "INVALID_VALUE",
                     absl::StrCat("--optimizer must be adam, adamw or sgd, got '", *name, "'"));
    }
    optimizer.set_optimizer(*name);
    any = true;
  }
  auto number = [&](const std::string& flag, double min, const std::string& range, auto set) {
    NumberFlag<double>(args, flag, min, range, &violations, [&](double v) {
      set(v);
      any = true;
    });
  };
  number("lr", 0.0, "a number >= 0", [&](double v) { optimizer.set_lr(v); });
  number("min-lr", 0.0, "a number >= 0", [&](double v) { optimizer.set_min_lr(v); });
  number("weight-decay", 0.0, "a number >= 0", [&](double v) { optimizer.set_weight_decay(v); });
  number("clip-grad", 0.0, "a number >= 0", [&](double v) { optimizer.set_clip_grad(v); });
  NumberFlag<int64_t>(args, "lr-warmup-iters", 0, "an integer >= 0", &violations, [&](int64_t v) {
    scheduler.set_lr_warmup_iters(v);
    any = true;
  });
  NumberFlag<int64_t>(args, "lr-decay-iters", 1, "an integer >= 1", &violations, [&](int64_t v) {
    scheduler.set_lr_decay_iters(v);
    any = true;
  });
  if (std::optional<std::string> style = args.Get("lr-decay-style")) {
    scheduler.set_lr_decay_style(*style);  // the workers check it against Megatron's styles
    any = true;
  }
  if (any) {
    if (!args.Has("lr")) {
      violations.Add("--lr", "REQUIRED",
                     "--lr is required with the other optimizer flags (Megatron has no default)");
    }
    *options->mutable_optimizer() = optimizer;
    *options->mutable_scheduler() = scheduler;
  }
  if (!violations.empty()) return violations.ToStatus();
  return request;
}

const Command& TrainCommand() {
  static const auto* command = new Command{
      "train",
      "run train steps on a READY model and show the loss live",
      "MODEL [--steps N] [--data PREFIX | --synthetic SEED] [--micro-batches M] [...]",
      "Runs N train steps on every rank of the model (Megatron's train step: the 1F1B or\n"
      "interleaved pipeline schedule, tensor-parallel cross entropy, data-parallel and embedding\n"
      "gradient reductions, Adam with fp32 main weights) and prints one line per step as it\n"
      "ends. The model's first call creates the optimizer and needs --lr; later calls omit the\n"
      "optimizer flags or repeat them. A request every rank rejects leaves the model as it was;\n"
      "a step that fails on a rank (a lost worker, a peer timeout) leaves the model FAILED.",
      TrainFlags(),
      &RunTrain,
  };
  return *command;
}

}  // namespace gptb::cli
