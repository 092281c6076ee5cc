#ifndef GPTB_BASE_TERMINATION_SIGNAL_H_
#define GPTB_BASE_TERMINATION_SIGNAL_H_

namespace gptb {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and in every thread it starts later,
// so that only WaitForTerminationSignal receives them. Call first thing in main().
void BlockTerminationSignals();

// Waits for SIGTERM, SIGINT or SIGHUP and returns its number.
int WaitForTerminationSignal();
// Like WaitForTerminationSignal, but returns 0 when none arrived within `milliseconds`.
int WaitForTerminationSignalFor(int milliseconds);

}  // namespace gptb

#endif  // GPTB_BASE_TERMINATION_SIGNAL_H_
