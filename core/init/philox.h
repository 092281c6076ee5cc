#ifndef GPTB_CORE_INIT_PHILOX_H_
#define GPTB_CORE_INIT_PHILOX_H_

#include <array>
#include <cstdint>

namespace gptb::init {

// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011): a keyed bijection of a 128-bit counter, 10 rounds, with the paper's multipliers and
// Weyl key increments. Matches the Random123 known-answer vectors (tests/unit/init/philox_test.cc).
// This scalar version is the reference; the fill kernels (fill_kernel_impl.inc) carry their own
// copy written for auto-vectorisation, checked against this one.
inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

constexpr PhiloxCounter PhiloxRound(const PhiloxCounter& c, const PhiloxKey& k) {
  const uint64_t p0 = uint64_t{kPhiloxM0} * c[0];
  const uint64_t p1 = uint64_t{kPhiloxM1} * c[2];
  return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
          static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
}

// Philox4x32 with `rounds` rounds; the key is bumped before every round but the first.
constexpr PhiloxCounter Philox4x32(PhiloxCounter ctr, PhiloxKey key, int rounds = 10) {
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) {
      key[0] += kPhiloxW0;
      key[1] += kPhiloxW1;
    }
    ctr = PhiloxRound(ctr, key);
  }
  return ctr;
}

}  // namespace gptb::init

#endif  // GPTB_CORE_INIT_PHILOX_H_
