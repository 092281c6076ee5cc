#include "core/init/checksum.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace gptb::init {
namespace {

// XXH64 reference values (xxHash's own sanity checks and documentation).
TEST(Checksum, MatchesXxh64ReferenceVectors) {
  EXPECT_EQ(Checksum("", 0), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(Checksum("a", 1), 0xD24EC4F1A98C6E5Bull);
  EXPECT_EQ(Checksum("abc", 3), 0x44BC2CF5AD770999ull);
  const char* text = "Nobody inspects the spammish repetition";  // 39 bytes: one stripe + tail
  EXPECT_EQ(Checksum(text, std::strlen(text)), 0xFBCEA83C8A378BF1ull);
}

// xxHash's sanity buffer: byte i is the top byte of a squaring sequence seeded with 2654435761.
TEST(Checksum, MatchesXxh64SanityBuffer) {
  std::vector<unsigned char> buf(101);
  uint32_t gen = 2654435761u;
  for (unsigned char& b : buf) {
    b = static_cast<unsigned char>(gen >> 24);
    gen *= gen;
  }
  const uint64_t prime = 2654435761u;
  EXPECT_EQ(Checksum(nullptr, 0, prime), 0xAC75FDA2929B17EFull);
  EXPECT_EQ(Checksum(buf.data(), 1, 0), 0x4FCE394CC88952D8ull);
  EXPECT_EQ(Checksum(buf.data(), 1, prime), 0x739840CB819FA723ull);
  EXPECT_EQ(Checksum(buf.data(), 14, 0), 0xCFFA8DB881BC3A3Dull);
  EXPECT_EQ(Checksum(buf.data(), 14, prime), 0x5B9611585EFCC9CBull);
  EXPECT_EQ(Checksum(buf.data(), 101, 0), 0x0EAB543384F878ADull);
}

TEST(Checksum, SeesEveryByte) {
  std::vector<unsigned char> buf(1000, 7);
  const uint64_t base = Checksum(buf.data(), buf.size());
  for (size_t i : {size_t{0}, size_t{31}, size_t{32}, size_t{500}, size_t{995}, size_t{999}}) {
    buf[i] ^= 1;
    EXPECT_NE(Checksum(buf.data(), buf.size()), base) << "byte " << i;
    buf[i] ^= 1;
  }
  EXPECT_EQ(Checksum(buf.data(), buf.size()), base);
}

}  // namespace
}  // namespace gptb::init
