#include "core/init/half.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/init/fill_kernel.h"
#include "core/init/initializer.h"
#include "gtest/gtest.h"

namespace gptb::init {
namespace {

float F(uint32_t bits) { return BitsFloat(bits); }

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(Fp32ToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(Fp32ToBf16Bits(-2.0f), 0xc000);
  EXPECT_EQ(Fp32ToBf16Bits(0.0f), 0x0000);
  EXPECT_EQ(Fp32ToBf16Bits(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToBf16Bits(F(0x3f808000)), 0x3f80);  // 1 + 2^-8: tie, 0x3f80 is even
  EXPECT_EQ(Fp32ToBf16Bits(F(0x3f818000)), 0x3f82);  // tie, 0x3f81 odd -> up
  EXPECT_EQ(Fp32ToBf16Bits(F(0x3f808001)), 0x3f81);  // just above the tie
  EXPECT_EQ(Fp32ToBf16Bits(F(0x3f807fff)), 0x3f80);  // just below the tie
  EXPECT_EQ(Fp32ToBf16Bits(0.1f), 0x3dcd);           // 0x3dcccccd
  EXPECT_EQ(Fp32ToBf16Bits(F(0x00000001)), 0x0000);  // smallest subnormal rounds to 0
  EXPECT_EQ(Fp32ToBf16Bits(F(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to inf (RNE)
  EXPECT_EQ(Fp32ToBf16Bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(Fp32ToBf16Bits(F(0x7f800001)) & 0x7fc0, 0x7fc0);  // signalling NaN -> quiet NaN
  EXPECT_EQ(Fp32ToBf16Bits(F(0xffc00000)), 0xffc0);
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(Fp32ToFp16Bits(1.0f), 0x3c00);
  EXPECT_EQ(Fp32ToFp16Bits(-2.0f), 0xc000);
  EXPECT_EQ(Fp32ToFp16Bits(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToFp16Bits(0.1f), 0x2e66);
  EXPECT_EQ(Fp32ToFp16Bits(1.0f + 0x1p-11f), 0x3c00);      // tie, even stays
  EXPECT_EQ(Fp32ToFp16Bits(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie, odd goes up
  EXPECT_EQ(Fp32ToFp16Bits(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  EXPECT_EQ(Fp32ToFp16Bits(65504.0f), 0x7bff);  // max half
  EXPECT_EQ(Fp32ToFp16Bits(65519.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16Bits(65520.0f), 0x7c00);             // tie with 2^16 -> inf
  EXPECT_EQ(Fp32ToFp16Bits(0x1p-14f), 0x0400);             // min normal
  EXPECT_EQ(Fp32ToFp16Bits(0x1p-14f - 0x1p-25f), 0x0400);  // tie between 0x3ff and 0x400
  EXPECT_EQ(Fp32ToFp16Bits(0x1p-24f), 0x0001);             // min subnormal
  EXPECT_EQ(Fp32ToFp16Bits(0x1p-25f), 0x0000);             // tie with 0 -> even 0
  EXPECT_EQ(Fp32ToFp16Bits(0x1.8p-25f), 0x0001);
  EXPECT_EQ(Fp32ToFp16Bits(3 * 0x1p-25f), 0x0002);  // 1.5 ulp: tie -> 2
  EXPECT_EQ(Fp32ToFp16Bits(5 * 0x1p-25f), 0x0002);  // 2.5 ulp: tie -> 2
  EXPECT_EQ(Fp32ToFp16Bits(-0x1p-30f), 0x8000);
  EXPECT_EQ(Fp32ToFp16Bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(Fp32ToFp16Bits(-std::numeric_limits<float>::quiet_NaN()), 0xfe00);
}

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    // NaNs are not round-tripped bit for bit (they come back quiet), checked above.
    const bool half_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    const bool bf16_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
    if (!half_nan) {
      EXPECT_EQ(Fp32ToFp16Bits(Fp16BitsToFp32(static_cast<uint16_t>(h))), h) << std::hex << h;
    }
    if (!bf16_nan) {
      EXPECT_EQ(Fp32ToBf16Bits(Bf16BitsToFp32(static_cast<uint16_t>(h))), h) << std::hex << h;
    }
  }
}

std::vector<const internal::KernelTable*> AllKernels() {
  std::vector<const internal::KernelTable*> tables;
  for (Isa isa : AvailableIsas()) {
    switch (isa) {
      case Isa::kGeneric:
        tables.push_back(&internal::generic::Kernels());
        break;
#if defined(__x86_64__)
      case Isa::kAvx2:
        tables.push_back(&internal::avx2::Kernels());
        break;
      case Isa::kAvx512:
        tables.push_back(&internal::avx512::Kernels());
        break;
#endif
      default:
        break;
    }
  }
  return tables;
}

// The kernels' branch-free conversions against the reference, on a sample of every fp32 bit
// pattern plus every pattern near the boundaries and every tie.
TEST(KernelConversions, MatchReferenceOnBoundariesTiesAndSample) {
  std::vector<uint32_t> patterns;
  for (uint64_t x = 0; x <= 0xffffffffull; x += 4099) patterns.push_back(static_cast<uint32_t>(x));
  for (uint32_t edge : {0x33000000u, 0x33c00000u, 0x38800000u, 0x477fe000u, 0x477ff000u,
                        0x7f7f8000u, 0x7f800000u, 0x00000000u}) {
    for (uint32_t d = 0; d < (1u << 16); ++d) {
      patterns.push_back(edge + d - (1u << 15));
      patterns.push_back((edge + d - (1u << 15)) | 0x80000000u);
    }
  }
  for (uint32_t hi = 0; hi < (1u << 19); ++hi) patterns.push_back(hi << 13 | 0x1000u);  // fp16 ties
  for (uint32_t hi = 0; hi < (1u << 16); ++hi) patterns.push_back(hi << 16 | 0x8000u);  // bf16 ties
  std::vector<float> in(patterns.size());
  for (size_t i = 0; i < patterns.size(); ++i) in[i] = BitsFloat(patterns[i]);
  std::vector<uint16_t> bf(in.size()), hf(in.size());
  for (const internal::KernelTable* k : AllKernels()) {
    k->to_bf16(in.data(), bf.data(), static_cast<int64_t>(in.size()));
    k->to_fp16(in.data(), hf.data(), static_cast<int64_t>(in.size()));
    int64_t bad = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      if (bf[i] != Fp32ToBf16Bits(in[i]) || hf[i] != Fp32ToFp16Bits(in[i])) {
        if (++bad < 5) {
          ADD_FAILURE() << k->name << ": input 0x" << std::hex << patterns[i] << " bf16 0x" << bf[i]
                        << " vs 0x" << Fp32ToBf16Bits(in[i]) << ", fp16 0x" << hf[i] << " vs 0x"
                        << Fp32ToFp16Bits(in[i]);
        }
      }
    }
    EXPECT_EQ(bad, 0) << k->name;
  }
}

}  // namespace
}  // namespace gptb::init
