#ifndef GPTB_BASE_EXCERPT_H_
#define GPTB_BASE_EXCERPT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace gptb {

namespace excerpt_internal {

// The length of the valid UTF-8 sequence starting at text[i], or 0 when it is not one.
inline size_t Utf8Length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b = byte(i);
  if (b < 0x80) return 1;
  size_t n = 0;
  uint32_t code = 0;
  if ((b & 0xE0) == 0xC0) {
    n = 2;
    code = b & 0x1F;
  } else if ((b & 0xF0) == 0xE0) {
    n = 3;
    code = b & 0x0F;
  } else if ((b & 0xF8) == 0xF0) {
    n = 4;
    code = b & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kMinimum[n] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return 0;
  return n;
}

}  // namespace excerpt_internal

// `text` as valid UTF-8 (each invalid byte becomes '?') of at most `max_bytes` bytes, plus
// "...(N bytes)" when cut: how a service echoes what a client sent (a name, a key, a path) into a
// message without a 10 MB name or a binary file travelling back in it. Header-only so that every
// layer (the fuzzed safetensors code included) can use it without a link dependency.
inline std::string Excerpt(std::string_view text, size_t max_bytes = 128) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = excerpt_internal::Utf8Length(text, i);
    if (out.size() + (n == 0 ? 1 : n) > max_bytes) break;
    if (n == 0) {
      out.push_back('?');
      i += 1;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  if (i < text.size()) {
    out.append("...(");
    out.append(std::to_string(text.size()));
    out.append(" bytes)");
  }
  return out;
}

#ifndef ABSL_USES_STD_STRING_VIEW
// Abseil built with its own string_view (Debian's) does not convert to std::string_view.
inline std::string Excerpt(absl::string_view text, size_t max_bytes = 128) {
  return Excerpt(std::string_view(text.data(), text.size()), max_bytes);
}
inline std::string Excerpt(const std::string& text, size_t max_bytes = 128) {
  return Excerpt(std::string_view(text), max_bytes);
}
inline std::string Excerpt(const char* text, size_t max_bytes = 128) {
  return Excerpt(std::string_view(text), max_bytes);
}
#endif

}  // namespace gptb

#endif  // GPTB_BASE_EXCERPT_H_
