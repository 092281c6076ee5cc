#ifndef GPTB_TESTS_UNIT_CHECKPOINT_SAFETENSORS_TEST_UTIL_H_
#define GPTB_TESTS_UNIT_CHECKPOINT_SAFETENSORS_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::checkpoint::testing {

// A fresh directory under /tmp, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gptb_st_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file image: the 8-byte little-endian length of `json`, `json`, then `data`. Nothing is
// validated, so tests can build any corruption.
inline std::string RawSafetensors(const std::string& json, const std::string& data) {
  uint64_t n = json.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  return bytes + json + data;
}

// Deterministic bytes that differ from tensor to tensor and from position to position.
inline std::vector<unsigned char> Pattern(size_t n, uint32_t seed) {
  std::vector<unsigned char> bytes(n);
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    bytes[i] = static_cast<unsigned char>(x >> 24);
  }
  return bytes;
}

// Fails the test unless `status` has `code` and a message containing every one of `parts`.
inline void ExpectError(const absl::Status& status, absl::StatusCode code,
                        const std::vector<std::string>& parts) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(part));
  }
}

}  // namespace gptb::checkpoint::testing

#endif  // GPTB_TESTS_UNIT_CHECKPOINT_SAFETENSORS_TEST_UTIL_H_
