// The /metrics HTTP endpoint: what it answers, and that bad or stalled clients stay bounded.
#include "server/common/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` and reads until the server closes (10 s at most).
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return "connect failed";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 10000) > 0) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", [this] {
      ++renders_;
      return std::string("gptb_test_metric 1\n");
    });
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
    ASSERT_GT(endpoint_->port(), 0);
  }

  std::atomic<int> renders_{0};
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

TEST_F(MetricsEndpointTest, GetServesTheRenderedText) {
  const std::string r =
      Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(r, HasSubstr("Content-Length: 19\r\n"));
  EXPECT_THAT(r, HasSubstr("\r\n\r\ngptb_test_metric 1\n"));
  EXPECT_EQ(renders_, 1);
  // A query string is ignored, as Prometheus' own handlers do.
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(MetricsEndpointTest, HeadSendsNoBody) {
  const std::string r = Exchange(endpoint_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Length: 19\r\n"));
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "");
}

TEST_F(MetricsEndpointTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_THAT(Exchange(endpoint_->port(), "GET / HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metricsx HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 Not Found"));
  const std::string post = Exchange(endpoint_->port(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405 Method Not Allowed"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD"));
  EXPECT_THAT(Exchange(endpoint_->port(), "garbage\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_EQ(renders_, 0);
}

TEST_F(MetricsEndpointTest, OversizedRequestHeadIsRefused) {
  const std::string big = absl::StrCat("GET /metrics HTTP/1.1\r\nX-Pad: ",
                                       std::string(MetricsEndpoint::kMaxRequestHead, 'a'), "\r\n");
  EXPECT_THAT(Exchange(endpoint_->port(), big), StartsWith("HTTP/1.1 431"));
  EXPECT_EQ(renders_, 0);
}

TEST_F(MetricsEndpointTest, StalledClientsDoNotBlockOthersForever) {
  // Every handler busy with a client that sends nothing: the next request waits for one of them
  // to time out (kRequestTimeoutMs), then is served.
  std::vector<int> stalled;
  for (int i = 0; i < MetricsEndpoint::kHandlers; ++i)
    stalled.push_back(Connect(endpoint_->port()));
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
  for (int fd : stalled) close(fd);
}

TEST_F(MetricsEndpointTest, StopsWithAConnectionOpen) {
  const int idle = Connect(endpoint_->port());
  ASSERT_GE(idle, 0);
  endpoint_.reset();  // must not wait for the idle client
  close(idle);
}

TEST(MetricsEndpoint, BadAddressesNameTheForm) {
  for (const char* bad : {"", "host:", "host:port", "127.0.0.1:70000", "::1:80", "[::1]80"}) {
    auto endpoint = MetricsEndpoint::Start(bad, [] { return std::string(); });
    ASSERT_FALSE(endpoint.ok()) << bad;
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(endpoint.status().message()), HasSubstr("HOST:PORT")) << bad;
  }
}

TEST(MetricsEndpoint, BusyPortIsUnavailable) {
  auto first = MetricsEndpoint::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsEndpoint::Start(absl::StrCat("127.0.0.1:", (*first)->port()),
                                       [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
}

TEST(MetricsEndpoint, ListensOnIpv6AndEveryInterface) {
  auto v6 = MetricsEndpoint::Start("[::1]:0", [] { return std::string("v6\n"); });
  if (v6.ok()) {  // hosts without IPv6 loopback refuse to bind it, which is not this test's point
    EXPECT_GT((*v6)->port(), 0);
  } else {
    EXPECT_EQ(v6.status().code(), absl::StatusCode::kUnavailable) << v6.status();
  }
  auto any = MetricsEndpoint::Start("0", [] { return std::string("any\n"); });
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(Exchange((*any)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              HasSubstr("\r\n\r\nany\n"));
}

}  // namespace
}  // namespace gptb::server
