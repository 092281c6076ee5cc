#include "base/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kFlags = {
    {"set", true, true, "K=V", "override"},
    {"world-size", true, false, "N", "ranks"},
    {"verbose", false, false, "", "more output"},
};

TEST(ParseArgs, FlagsValuesAndPositionals) {
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs({"model.yaml", "--set", "a=1", "--set=b=2", "--world-size", "4", "--world-size=8",
                 "--verbose", "--", "--not-a-flag"},
                kFlags);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_THAT(parsed->positional, ElementsAre("model.yaml", "--not-a-flag"));
  EXPECT_THAT(parsed->GetAll("set"), ElementsAre("a=1", "b=2"));
  EXPECT_EQ(parsed->Get("world-size"), "8");  // a non-repeated flag keeps its last value
  EXPECT_TRUE(parsed->Has("verbose"));
  EXPECT_FALSE(parsed->Has("help"));
  EXPECT_EQ(parsed->Get("format"), std::nullopt);
}

TEST(ParseArgs, HelpIsAlwaysAccepted) {
  EXPECT_TRUE(ParseArgs({"--help"}, kFlags)->Has("help"));
  EXPECT_TRUE(ParseArgs({"-h"}, {})->Has("help"));
}

TEST(ParseArgs, ErrorsNameTheFlag) {
  EXPECT_THAT(std::string(ParseArgs({"--bogus"}, kFlags).status().message()),
              HasSubstr("unknown flag --bogus"));
  EXPECT_THAT(std::string(ParseArgs({"--world-size"}, kFlags).status().message()),
              HasSubstr("--world-size needs a value (N)"));
  EXPECT_THAT(std::string(ParseArgs({"--verbose=1"}, kFlags).status().message()),
              HasSubstr("--verbose takes no value"));
  EXPECT_THAT(std::string(ParseArgs({"-x"}, kFlags).status().message()),
              HasSubstr("unknown option '-x'"));
}

TEST(FlagsHelp, ListsEveryFlag) {
  const std::string help = FlagsHelp(kFlags);
  EXPECT_THAT(help, HasSubstr("--set K=V"));
  EXPECT_THAT(help, HasSubstr("(repeatable)"));
  EXPECT_THAT(help, HasSubstr("--verbose"));
}

}  // namespace
}  // namespace gptb
