#include "rpc/auth.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rpc/status_details.h"

namespace gptb::rpc {
namespace {

constexpr char kAuthorization[] = "authorization";
constexpr char kBearer[] = "Bearer ";

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<BearerToken> BearerToken::Load(const std::string& token_file) {
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth-token-file: cannot read a token from ", token_file));
    }
    std::string token(absl::StripAsciiWhitespace(line));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth-token-file: the first line of ", token_file, " is empty"));
    }
    return BearerToken(std::move(token));
  }
  const char* env = std::getenv("GPTB_AUTH_TOKEN");
  if (env == nullptr) return BearerToken();
  std::string token(absl::StripAsciiWhitespace(env));
  // Set but blank is a mistake (an unfilled secret), not a request to run without a token.
  if (token.empty()) {
    return absl::InvalidArgumentError(
        "GPTB_AUTH_TOKEN is set but holds only whitespace; set it to the token, or unset it to "
        "run without authentication");
  }
  return BearerToken(std::move(token));
}

absl::Status BearerToken::Verify(const grpc::ServerContext& context) const {
  if (!enabled()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorization);
  if (it == metadata.end()) {
    return WithErrorInfo(
        absl::UnauthenticatedError("this method needs a bearer token: pass --auth-token-file or "
                                   "set GPTB_AUTH_TOKEN"),
        "MISSING_TOKEN");
  }
  std::string_view value(it->second.data(), it->second.size());
  if (value.substr(0, sizeof(kBearer) - 1) != kBearer ||
      !ConstantTimeEquals(value.substr(sizeof(kBearer) - 1), token_)) {
    return WithErrorInfo(absl::UnauthenticatedError("the bearer token is not valid"),
                         "INVALID_TOKEN");
  }
  return absl::OkStatus();
}

void BearerToken::Attach(grpc::ClientContext* context) const {
  if (enabled()) context->AddMetadata(kAuthorization, absl::StrCat(kBearer, token_));
}

}  // namespace gptb::rpc
