#include "server/gptbd/daemon_flags.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace gptb::gptbd {

std::vector<gptb::FlagSpec> Specs(const std::vector<DaemonFlag>& flags) {
  std::vector<gptb::FlagSpec> out;
  for (const DaemonFlag& flag : flags) {
    gptb::FlagSpec spec = flag.spec;
    std::string suffix;
    if (!flag.env.empty()) absl::StrAppend(&suffix, "env ", flag.env);
    if (!flag.default_value.empty()) {
      absl::StrAppend(&suffix, suffix.empty() ? "" : ", ", "default ", flag.default_value);
    }
    if (!suffix.empty()) absl::StrAppend(&spec.help, " (", suffix, ")");
    out.push_back(std::move(spec));
  }
  return out;
}

std::string DaemonArgs::Get(const std::string& name) const {
  if (std::optional<std::string> value = parsed_.Get(name)) return *value;
  for (const DaemonFlag& flag : flags_) {
    if (flag.spec.name != name) continue;
    if (!flag.env.empty()) {
      if (const char* env = std::getenv(flag.env.c_str()); env != nullptr && *env != '\0') {
        return env;
      }
    }
    return flag.default_value;
  }
  return "";
}

absl::StatusOr<int64_t> DaemonArgs::GetInt(const std::string& name) const {
  const std::string text = Get(name);
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs an integer, got '", text, "'"));
  }
  return value;
}

absl::StatusOr<absl::Duration> DaemonArgs::GetDuration(const std::string& name) const {
  const std::string text = Get(name);
  absl::Duration value;
  if (!absl::ParseDuration(text, &value) || value <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, " needs a positive duration such as 500ms, 5s or 2m; got '", text, "'"));
  }
  return value;
}

std::vector<DaemonFlag> SecurityFlags() {
  return {
      {{"tls-cert", true, false, "PEM", "serve TLS with this certificate (needs --tls-key)"},
       "GPTB_TLS_CERT",
       ""},
      {{"tls-key", true, false, "PEM", "the private key of --tls-cert"}, "GPTB_TLS_KEY", ""},
      {{"tls-ca", true, false, "PEM",
        "CA that signs peers: require client certificates (mutual TLS, unless "
        "--tls-client-auth none) and verify the peers this daemon calls"},
       "GPTB_TLS_CA",
       ""},
      {{"tls-client-auth", true, false, "require|none",
        "with --tls-ca: require client certificates signed by it (mutual TLS), or serve TLS "
        "without asking clients for one (server-only TLS under a private CA)"},
       "GPTB_TLS_CLIENT_AUTH",
       "require"},
      {{"auth-token-file", true, false, "PATH",
        "bearer token required on mutating RPCs and sent on this daemon's own calls (else "
        "GPTB_AUTH_TOKEN; none: no token)"},
       "",
       ""},
  };
}

rpc::TlsFiles TlsFromArgs(const DaemonArgs& args) {
  rpc::TlsFiles tls;
  tls.cert_file = args.Get("tls-cert");
  tls.key_file = args.Get("tls-key");
  tls.ca_file = args.Get("tls-ca");
  tls.client_auth = args.Get("tls-client-auth");
  return tls;
}

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

std::string AdvertisedAddress(const std::string& listen, int bound_port) {
  std::string host = HostOf(listen);
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    char name[256] = {0};
    host = gethostname(name, sizeof(name) - 1) == 0 ? name : "localhost";
  }
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  return absl::StrCat(host, ":", bound_port);
}

absl::Status WriteReadyFile(const std::string& path, const std::string& grpc_address,
                            const std::string& metrics_url,
                            const std::vector<std::pair<std::string, std::string>>& extra) {
  nlohmann::json doc = {{"grpc", grpc_address}, {"metrics", metrics_url}, {"pid", getpid()}};
  for (const auto& [key, value] : extra) doc[key] = value;
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp);
    out << doc.dump() << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write --ready-file ", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write --ready-file ", path));
  }
  return absl::OkStatus();
}

}  // namespace gptb::gptbd
