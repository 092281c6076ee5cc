#ifndef GPTB_BASE_ARGS_H_
#define GPTB_BASE_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gptb {

// One command-line flag. Flags are written `--name value` or `--name=value`; switches (no value)
// `--name`.
struct FlagSpec {
  std::string name;         // without the leading dashes, e.g. "world-size"
  bool takes_value = true;  // false: a switch
  bool repeated = false;    // true: every occurrence is kept (e.g. --set)
  std::string value_name;   // for help: "N", "K=V", "yaml|json"
  std::string help;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  // Values per flag name, in command-line order (a non-repeated flag keeps its last value).
  std::map<std::string, std::vector<std::string>> values;

  bool Has(const std::string& flag) const { return values.count(flag) > 0; }
  // The (last) value of a flag, or nullopt when it was not given.
  std::optional<std::string> Get(const std::string& flag) const;
  // Every value of a repeated flag, in order.
  std::vector<std::string> GetAll(const std::string& flag) const;
};

// Parses the arguments that follow the command name. `--help` (and `-h`) are always accepted as
// switches named "help"; `--` ends flag parsing. Unknown flags, a missing value, or a value given
// to a switch are INVALID_ARGUMENT with a sentence naming the flag.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& flags);

// Help lines for a flag list ("  --world-size N   the number of ranks ...").
std::string FlagsHelp(const std::vector<FlagSpec>& flags);

}  // namespace gptb

#endif  // GPTB_BASE_ARGS_H_
