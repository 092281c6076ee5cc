// gptb: the command-line client. Each subcommand is one entry of the table below; a command's
// flags are its own plus the global ones (GlobalFlags), and `gptb CMD --help` prints its usage.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "base/args.h"
#include "clients/cli/checkpoint_commands.h"
#include "clients/cli/command.h"
#include "clients/cli/plan_command.h"
#include "clients/cli/service_commands.h"
#include "clients/cli/train_command.h"
#include "clients/cli/validate_command.h"
#include "core/config/suggest.h"

namespace gptb::cli {
namespace {

const std::vector<const Command*>& Commands() {
  static const auto* commands = new std::vector<const Command*>{
      &ValidateCommand(), &PlanCommand(),   &BuildCommand(),   &WatchCommand(),
      &DescribeCommand(), &ModelsCommand(), &WorkersCommand(), &ReleaseCommand(),
      &TrainCommand(),    &SaveCommand(),   &ExportCommand(),  &UpCommand(),
  };
  return *commands;
}

void PrintUsage(std::ostream& os) {
  os << "usage: gptb [--server HOST:PORT] COMMAND [ARGS...]\n\ncommands:\n";
  size_t width = 0;
  for (const Command* c : Commands()) width = std::max(width, c->name.size());
  for (const Command* c : Commands()) {
    os << "  " << c->name << std::string(width - c->name.size() + 3, ' ') << c->summary << "\n";
  }
  os << "\nglobal flags:\n"
     << FlagsHelp(GlobalFlags())
     << "\n`gptb COMMAND --help` describes a command. Exit codes: 0 success, 2 invalid input, "
        "1 other failure.\n";
}

std::vector<FlagSpec> AllFlags(const Command& command) {
  std::vector<FlagSpec> flags = command.flags;
  flags.insert(flags.end(), GlobalFlags().begin(), GlobalFlags().end());
  return flags;
}

void PrintCommandHelp(const Command& command, std::ostream& os) {
  os << "usage: gptb " << command.name << " " << command.usage << "\n\n"
     << command.description << "\n\nflags:\n"
     << FlagsHelp(AllFlags(command)) << "  --help" << std::string(3, ' ') << "show this help\n";
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Global flags may come before the command name; they are handed to the command.
  std::vector<std::string> globals;
  size_t i = 0;
  while (i < args.size() && absl::StartsWith(args[i], "-")) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      PrintUsage(std::cout);
      return kExitOk;
    }
    const std::string name =
        arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
    const FlagSpec* global = nullptr;
    for (const FlagSpec& flag : GlobalFlags()) {
      if (absl::StartsWith(arg, "--") && flag.name == name) global = &flag;
    }
    if (global == nullptr) {
      std::cerr << "gptb: unknown flag " << arg << "\n\n";
      PrintUsage(std::cerr);
      return kExitInvalidInput;
    }
    globals.push_back(arg);
    ++i;
    if (global->takes_value && arg.find('=') == std::string::npos) {
      if (i >= args.size()) {
        std::cerr << "gptb: " << arg << " needs a value\n";
        return kExitInvalidInput;
      }
      globals.push_back(args[i++]);
    }
  }
  if (i >= args.size()) {
    PrintUsage(std::cerr);
    return kExitInvalidInput;
  }
  const std::string name = args[i];
  if (name == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  const Command* command = nullptr;
  std::vector<std::string> names;
  for (const Command* c : Commands()) {
    names.push_back(c->name);
    if (c->name == name) command = c;
  }
  if (command == nullptr) {
    std::cerr << "gptb: unknown command '" << name << "'." << config::DidYouMean(name, names)
              << "\n\n";
    PrintUsage(std::cerr);
    return kExitInvalidInput;
  }
  std::vector<std::string> command_args = globals;
  command_args.insert(command_args.end(), args.begin() + i + 1, args.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(command_args, AllFlags(*command));
  if (!parsed.ok()) {
    std::cerr << "gptb " << command->name << ": " << parsed.status().message() << "\n"
              << "usage: gptb " << command->name << " " << command->usage << "\n";
    return kExitInvalidInput;
  }
  if (parsed->Has("help")) {
    PrintCommandHelp(*command, std::cout);
    return kExitOk;
  }
  return command->run(*parsed, std::cout, std::cerr);
}

}  // namespace
}  // namespace gptb::cli

int main(int argc, char** argv) { return gptb::cli::Main(argc, argv); }
