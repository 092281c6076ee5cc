#include "server/gptbd/daemon_flags.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "rpc/credentials.h"

namespace gptb::gptbd {
namespace {

std::vector<DaemonFlag> Flags() {
  return {{{"listen", true, false, "HOST:PORT", "gRPC address"}, "GPTB_TEST_LISTEN", "127.0.0.1:1"},
          {{"timeout", true, false, "DURATION", "a timeout"}, "", "5s"}};
}

TEST(DaemonArgsTest, FlagBeatsEnvironmentBeatsDefault) {
  auto parsed = gptb::ParseArgs({}, Specs(Flags()));
  ASSERT_TRUE(parsed.ok());
  ::unsetenv("GPTB_TEST_LISTEN");
  EXPECT_EQ(DaemonArgs(*parsed, Flags()).Get("listen"), "127.0.0.1:1");
  ::setenv("GPTB_TEST_LISTEN", "0.0.0.0:2", 1);
  EXPECT_EQ(DaemonArgs(*parsed, Flags()).Get("listen"), "0.0.0.0:2");
  auto with_flag = gptb::ParseArgs({"--listen", "10.0.0.1:3"}, Specs(Flags()));
  ASSERT_TRUE(with_flag.ok());
  EXPECT_EQ(DaemonArgs(*with_flag, Flags()).Get("listen"), "10.0.0.1:3");
  ::unsetenv("GPTB_TEST_LISTEN");
}

TEST(DaemonArgsTest, DurationsAreParsedAndCheckedWithTheFlagName) {
  auto ok = gptb::ParseArgs({"--timeout", "250ms"}, Specs(Flags()));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*DaemonArgs(*ok, Flags()).GetDuration("timeout"), absl::Milliseconds(250));
  auto bad = gptb::ParseArgs({"--timeout", "soon"}, Specs(Flags()));
  ASSERT_TRUE(bad.ok());
  auto duration = DaemonArgs(*bad, Flags()).GetDuration("timeout");
  ASSERT_FALSE(duration.ok());
  EXPECT_THAT(std::string(duration.status().message()), ::testing::HasSubstr("--timeout"));
}

TEST(DaemonArgsTest, HelpNamesTheEnvironmentVariableAndDefault) {
  const std::string help = gptb::FlagsHelp(Specs(Flags()));
  EXPECT_THAT(help, ::testing::HasSubstr("env GPTB_TEST_LISTEN, default 127.0.0.1:1"));
}

TEST(AddressTest, WildcardHostsAdvertiseTheHostname) {
  EXPECT_EQ(HostOf("127.0.0.1:50051"), "127.0.0.1");
  EXPECT_EQ(HostOf("[::1]:5"), "::1");
  EXPECT_EQ(AdvertisedAddress("127.0.0.1:0", 4242), "127.0.0.1:4242");
  const std::string wildcard = AdvertisedAddress("0.0.0.0:0", 7);
  EXPECT_THAT(wildcard, ::testing::EndsWith(":7"));
  EXPECT_NE(HostOf(wildcard), "0.0.0.0");
  EXPECT_EQ(AdvertisedAddress("[::1]:0", 9), "[::1]:9");
}

TEST(ReadyFileTest, WritesTheAddressesAsJson) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("gptb_ready_" + std::to_string(::getpid())))
          .string();
  ASSERT_TRUE(
      WriteReadyFile(path, "127.0.0.1:5", "http://127.0.0.1:6/metrics", {{"store", "x:7"}}).ok());
  std::ifstream in(path);
  const nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["grpc"], "127.0.0.1:5");
  EXPECT_EQ(doc["metrics"], "http://127.0.0.1:6/metrics");
  EXPECT_EQ(doc["store"], "x:7");
  EXPECT_EQ(doc["pid"], ::getpid());
  std::filesystem::remove(path);
}

TEST(FanOutDeadlineTest, StaysWithinTheCallersDeadline) {
  grpc::ServerContext context;  // no deadline: the budget applies
  const auto now = std::chrono::system_clock::now();
  const auto deadline = rpc::FanOutDeadline(context, std::chrono::seconds(10));
  EXPECT_GE(deadline, now + std::chrono::seconds(9));
  EXPECT_LE(deadline, now + std::chrono::seconds(11));
}

}  // namespace
}  // namespace gptb::gptbd
