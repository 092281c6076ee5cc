#ifndef GPTB_CORE_INIT_HALF_H_
#define GPTB_CORE_INIT_HALF_H_

#include <cstdint>
#include <cstring>

namespace gptb::init {

// Reference fp32 -> bfloat16 / float16 conversions, round to nearest, ties to even, written out
// case by case for clarity. NaN maps to a quiet NaN of the same sign (bf16 keeps the top payload
// bits, fp16 is the canonical 0x7e00); overflow rounds to infinity as IEEE prescribes. The fill
// kernels carry branch-free copies of these (fill_kernel_impl.inc), tested against these for
// every fp32 bit pattern.

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t Fp32ToBf16Bits(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit rounds the 16 dropped bits to nearest, ties to even.
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline uint16_t Fp32ToFp16Bits(float f) {
  const uint32_t x = FloatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (a >= 0x38800000u) {                                              // >= 2^-14: normal half
    const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
  }
  // Subnormal half (unit 2^-24) or zero. |f| = m * 2^(e - 150) = m * 2^-24 / 2^(126 - e).
  const uint32_t e = a >> 23;
  if (e < 102) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to zero
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

inline float Bf16BitsToFp32(uint16_t h) { return BitsFloat(uint32_t{h} << 16); }

inline float Fp16BitsToFp32(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return BitsFloat(sign | 0x7f800000u | (m << 13));
  if (e != 0) return BitsFloat(sign | ((e + 112u) << 23) | (m << 13));
  // Subnormal: m * 2^-24, exact in fp32.
  const float v = static_cast<float>(m) * 5.9604644775390625e-08f;
  return sign ? -v : v;
}

}  // namespace gptb::init

#endif  // GPTB_CORE_INIT_HALF_H_
