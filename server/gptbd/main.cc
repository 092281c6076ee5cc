// gptbd: the gptbuilder daemons. `gptbd coordinator` validates, plans, places and builds models
// on the registered workers; `gptbd worker` holds slots, builds ranks and holds their stages.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "base/termination_signal.h"
#include "grpc/grpc.h"
#include "server/gptbd/commands.h"

#ifndef GPTB_VERSION
#define GPTB_VERSION "0.0.0"
#endif

namespace {

void PrintUsage(std::ostream& os) {
  os << "usage: gptbd coordinator [FLAGS]   the coordinator (validate, plan, place, build)\n"
        "       gptbd worker [FLAGS]        a worker holding slots (one rank per slot)\n"
        "\n`gptbd coordinator --help` and `gptbd worker --help` list the flags; every flag can\n"
        "also come from the environment variable named in its help. Both daemons serve gRPC\n"
        "health (live: service \"\", ready: gptbuilder.v1.Coordinator / gptbuilder.v1.Worker),\n"
        "server reflection, and Prometheus metrics on --metrics-listen.\n";
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, so that only the main thread takes SIGTERM / SIGINT.
  gptb::BlockTerminationSignals();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    PrintUsage(std::cerr);
    return 2;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "coordinator" || command == "worker") {
    // Hold a gRPC library reference for the whole process: without it, the last channel or
    // server to go away runs gRPC's blocking global shutdown (seconds) while we return.
    grpc_init();
    const int code =
        command == "coordinator" ? gptb::gptbd::RunCoordinator(args) : gptb::gptbd::RunWorker(args);
    // Everything of ours is shut down by now; skip the library teardown at exit (gRPC's and
    // LibTorch's global destructors take seconds) so that a stopped daemon exits at once.
    std::fflush(nullptr);
    std::_Exit(code);
  }
  if (command == "--help" || command == "-h" || command == "help") {
    PrintUsage(std::cout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::cout << "gptbd " << GPTB_VERSION << "\n";
    return 0;
  }
  std::cerr << "gptbd: unknown command '" << command << "'\n\n";
  PrintUsage(std::cerr);
  return 2;
}
