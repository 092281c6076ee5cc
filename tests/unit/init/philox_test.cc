#include "core/init/philox.h"

#include "gtest/gtest.h"

namespace gptb::init {
namespace {

// Known-answer vectors of Random123's kat_vectors file ("philox4x32 10" lines).
TEST(Philox4x32, Random123KnownAnswers) {
  struct Case {
    PhiloxCounter ctr;
    PhiloxKey key;
    PhiloxCounter expected;
  };
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Philox4x32(c.ctr, c.key), c.expected);
  }
}

TEST(Philox4x32, UsableAtCompileTime) {
  constexpr PhiloxCounter out = Philox4x32({0, 0, 0, 0}, {0, 0});
  static_assert(out[0] == 0x6627e8d5u, "Philox4x32-10 of zeros");
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(Philox4x32, FewerRoundsDiffer) {
  // Guards against a loop that ignores `rounds` (the KAT only pins 10).
  EXPECT_NE(Philox4x32({0, 0, 0, 0}, {0, 0}, 7), Philox4x32({0, 0, 0, 0}, {0, 0}, 10));
}

}  // namespace
}  // namespace gptb::init
