#include "core/init/initializer.h"

#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "core/init/half.h"
#include "core/init/philox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::init {
namespace {

using ::testing::HasSubstr;

constexpr DType kAllDTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

const char* Name(DType d) {
  return d == DType::kFloat32 ? "f32" : d == DType::kBFloat16 ? "bf16" : "f16";
}

// The SplitMix64 finaliser, as the stream contract in initializer.h defines the key.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::vector<uint8_t> Fill(uint64_t seed, const std::string& name, const InitSpec& spec,
                          const ShardLayout& layout, DType dtype, const FillOptions& opts = {}) {
  absl::StatusOr<int64_t> n = LocalNumel(layout);
  EXPECT_TRUE(n.ok()) << n.status();
  if (!n.ok()) return {};
  // Poison the buffer so an element the fill skips cannot pass by accident.
  std::vector<uint8_t> out(static_cast<size_t>(*n) * DTypeSize(dtype), 0xA5);
  absl::Status s = FillShard(seed, name, spec, layout, dtype, out.data(), *n, opts);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::vector<float> FillF32(uint64_t seed, const std::string& name, const InitSpec& spec, int64_t n,
                           const FillOptions& opts = {}) {
  std::vector<uint8_t> bytes = Fill(seed, name, spec, WholeLayout({n}), DType::kFloat32, opts);
  std::vector<float> out(static_cast<size_t>(n));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// Canonical index of local element k, computed naively from the layout (independently of the
// library's run walker): unravel in the local shape, map the partition coordinate, ravel.
int64_t LocalToCanonical(const ShardLayout& layout, int64_t k) {
  const std::vector<int64_t>& cshape = layout.canonical_shape;
  std::vector<int64_t> lshape = cshape;
  const int p = layout.partition_dim;
  if (p >= 0) {
    lshape[p] = 0;
    for (const Piece& piece : layout.pieces) lshape[p] += piece.length;
  }
  std::vector<int64_t> idx(lshape.size());
  for (int d = static_cast<int>(lshape.size()) - 1; d >= 0; --d) {
    idx[d] = k % lshape[d];
    k /= lshape[d];
  }
  if (p >= 0) {
    int64_t c = idx[p];
    for (const Piece& piece : layout.pieces) {
      if (c < piece.length) {
        idx[p] = piece.start + c;
        break;
      }
      c -= piece.length;
    }
  }
  int64_t canonical = 0;
  for (size_t d = 0; d < cshape.size(); ++d) canonical = canonical * cshape[d] + idx[d];
  return canonical;
}

std::vector<FillOptions> OptionVariants() {
  std::vector<FillOptions> variants;
  for (Isa isa : AvailableIsas()) {
    FillOptions o;
    o.num_threads = 1;
    o.isa = isa;
    variants.push_back(o);
  }
  for (int threads : {2, 3, 8}) {
    FillOptions o;
    o.num_threads = threads;
    o.min_elements_per_thread = 1;
    o.isa = threads == 3 ? Isa::kGeneric : Isa::kAuto;
    variants.push_back(o);
  }
  return variants;
}

struct Scenario {
  std::string what;
  std::vector<int64_t> shape;
  std::vector<ShardLayout> shards;
  bool covers;  // the shards partition the tensor
};

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> out;
  auto split = [](std::vector<int64_t> shape, int dim, int t, int stride) {
    std::vector<ShardLayout> shards;
    for (int r = 0; r < t; ++r) {
      absl::StatusOr<ShardLayout> l = SplitLayout(shape, dim, r, t, stride);
      EXPECT_TRUE(l.ok()) << l.status();
      shards.push_back(*l);
    }
    return shards;
  };
  for (int t : {1, 2, 4, 8}) {
    const std::string ts = std::to_string(t);
    out.push_back({"column-parallel t=" + ts, {96, 200}, split({96, 200}, 0, t, 1), true});
    // 200 / 8 = 25 columns: runs that are not multiples of 4, 8, 16 or 64.
    out.push_back({"row-parallel t=" + ts, {96, 200}, split({96, 200}, 1, t, 1), true});
    out.push_back({"gated fc1 t=" + ts, {96, 77}, split({96, 77}, 0, t, 2), true});
    out.push_back({"bias t=" + ts, {1000}, split({1000}, 0, t, 1), true});
  }
  out.push_back({"3-D middle dim t=3", {5, 24, 7}, split({5, 24, 7}, 1, 3, 1), true});
  out.push_back({"3-D middle dim t=8 stride 3", {5, 24, 7}, split({5, 24, 7}, 1, 8, 3), false});
  ShardLayout odd_rows{{96, 200}, 0, {{3, 5}, {17, 1}, {40, 13}, {95, 1}}};
  ShardLayout odd_cols{{96, 200}, 1, {{1, 3}, {7, 9}, {30, 31}, {199, 1}}};
  ShardLayout reversed{{96, 77}, 0, {{48, 24}, {0, 24}}};  // [up; gate]: pieces out of order
  out.push_back({"odd pieces", {96, 200}, {odd_rows, odd_cols}, false});
  out.push_back({"reversed pieces", {96, 77}, {reversed}, false});
  ShardLayout single{{3, 3}, 1, {{2, 1}}};
  out.push_back({"single column", {3, 3}, {single}, false});
  return out;
}

// (a) Every shard, under every kernel and thread count, holds exactly the canonical elements of
// the whole tensor; shards that partition the tensor reassemble it bit for bit.
TEST(FillShard, ShardsAreBitIdenticalToTheWholeTensor) {
  const InitSpec specs[] = {InitSpec::Normal(0.02), InitSpec::Uniform(-1.5, 2.5)};
  for (const Scenario& sc : Scenarios()) {
    for (DType dtype : kAllDTypes) {
      for (const InitSpec& spec : specs) {
        const size_t es = DTypeSize(dtype);
        FillOptions whole_opts;
        whole_opts.num_threads = 1;
        whole_opts.isa = Isa::kGeneric;
        const std::vector<uint8_t> whole = Fill(42, "decoder.layers.3.mlp.linear_fc1.weight", spec,
                                                WholeLayout(sc.shape), dtype, whole_opts);
        for (const FillOptions& opts : OptionVariants()) {
          std::vector<uint8_t> assembled(whole.size(), 0x5A);
          int64_t mismatches = 0;
          for (const ShardLayout& shard : sc.shards) {
            const std::vector<uint8_t> local =
                Fill(42, "decoder.layers.3.mlp.linear_fc1.weight", spec, shard, dtype, opts);
            const int64_t n = static_cast<int64_t>(local.size() / es);
            for (int64_t k = 0; k < n; ++k) {
              const int64_t c = LocalToCanonical(shard, k);
              if (std::memcmp(&local[k * es], &whole[c * es], es) != 0) ++mismatches;
              std::memcpy(&assembled[c * es], &local[k * es], es);
            }
          }
          EXPECT_EQ(mismatches, 0) << sc.what << " " << Name(dtype) << " isa " << IsaName(opts.isa)
                                   << " threads " << opts.num_threads;
          if (sc.covers) {
            EXPECT_TRUE(assembled == whole)
                << sc.what << " " << Name(dtype) << " threads " << opts.num_threads;
          }
        }
      }
    }
  }
}

// (a) Large fills: kernels and thread counts agree bit for bit, including the fast path that
// writes whole blocks straight into the output and a tail that is not a multiple of 64.
TEST(FillShard, KernelsAndThreadCountsAgreeOnLargeTensors) {
  const std::vector<int64_t> shape = {300, 1111};
  for (DType dtype : kAllDTypes) {
    FillOptions ref_opts;
    ref_opts.num_threads = 1;
    ref_opts.isa = Isa::kGeneric;
    const std::vector<uint8_t> ref =
        Fill(7, "embedding.word_embeddings.weight", InitSpec::Normal(0.02), WholeLayout(shape),
             dtype, ref_opts);
    for (Isa isa : AvailableIsas()) {
      for (int threads : {1, 2, 4, 7}) {
        FillOptions o;
        o.num_threads = threads;
        o.min_elements_per_thread = 1000;
        o.isa = isa;
        EXPECT_TRUE(Fill(7, "embedding.word_embeddings.weight", InitSpec::Normal(0.02),
                         WholeLayout(shape), dtype, o) == ref)
            << Name(dtype) << " " << IsaName(isa) << " threads " << threads;
      }
    }
  }
}

// Prefaulting (madvise) changes no contents: fills into fresh, unaligned mmap'd memory with and
// without it agree, for generated and constant fills.
TEST(FillShard, PrefaultDoesNotChangeContents) {
  const ShardLayout layout = *SplitLayout({1000, 771}, 0, 1, 2);  // 385500 elements
  const int64_t n = *LocalNumel(layout);
  for (DType dtype : kAllDTypes) {
    for (const InitSpec& spec : {InitSpec::Normal(0.02), InitSpec::Ones()}) {
      const size_t bytes = static_cast<size_t>(n) * DTypeSize(dtype);
      const size_t mapped = bytes + 4096;
      void* region =
          mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ASSERT_NE(region, MAP_FAILED);
      char* out = static_cast<char*>(region) + 3 * DTypeSize(dtype);  // not page aligned
      FillOptions with;
      with.num_threads = 2;
      with.prefault = true;
      ASSERT_TRUE(FillShard(9, "w", spec, layout, dtype, out, n, with).ok());
      FillOptions without = with;
      without.prefault = false;
      std::vector<uint8_t> ref = Fill(9, "w", spec, layout, dtype, without);
      EXPECT_EQ(std::memcmp(out, ref.data(), bytes), 0) << Name(dtype);
      munmap(region, mapped);
    }
  }
}

// A bf16/fp16 model is exactly the rounded fp32 model.
TEST(FillShard, HalfPrecisionIsTheRoundedFloat32Value) {
  const ShardLayout layout = *SplitLayout({64, 99}, 1, 1, 3);
  const std::vector<uint8_t> f32 =
      Fill(5, "output_layer.weight", InitSpec::Normal(0.5, 0.25), layout, DType::kFloat32);
  const std::vector<uint8_t> bf =
      Fill(5, "output_layer.weight", InitSpec::Normal(0.5, 0.25), layout, DType::kBFloat16);
  const std::vector<uint8_t> hf =
      Fill(5, "output_layer.weight", InitSpec::Normal(0.5, 0.25), layout, DType::kFloat16);
  const size_t n = f32.size() / 4;
  for (size_t i = 0; i < n; ++i) {
    float v;
    uint16_t b, h;
    std::memcpy(&v, &f32[4 * i], 4);
    std::memcpy(&b, &bf[2 * i], 2);
    std::memcpy(&h, &hf[2 * i], 2);
    ASSERT_EQ(b, Fp32ToBf16Bits(v)) << i;
    ASSERT_EQ(h, Fp32ToFp16Bits(v)) << i;
  }
}

// (e) The kernels run the documented Philox stream: uniform(0, 2^24) yields exactly x >> 8 for
// the Philox words of counter (i / 4, name key) under key Mix64(seed), on every kernel.
TEST(FillShard, UniformExposesThePhiloxStreamOnEveryKernel) {
  const uint64_t seed = 0x0123456789abcdefull;
  const std::string name = "decoder.layers.0.self_attention.linear_qkv.weight";
  const uint64_t key = Mix64(seed);
  const uint64_t nk = NameKey(name);
  const int64_t n = 4096 + 13;
  for (Isa isa : AvailableIsas()) {
    FillOptions o;
    o.isa = isa;
    const std::vector<float> got = FillF32(seed, name, InitSpec::Uniform(0, 16777216.0), n, o);
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t c = static_cast<uint64_t>(i / 4);
      const PhiloxCounter w =
          Philox4x32({static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32),
                      static_cast<uint32_t>(nk), static_cast<uint32_t>(nk >> 32)},
                     {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
      ASSERT_EQ(got[i], static_cast<float>(w[i % 4] >> 8)) << IsaName(isa) << " element " << i;
    }
  }
}

// The normal kernel against a float64 Box-Muller of the same Philox words.
TEST(FillShard, KernelMatchesFloat64BoxMuller) {
  const uint64_t seed = 1234;
  const std::string name = "x";
  const uint64_t key = Mix64(seed);
  const uint64_t nk = NameKey(name);
  const int64_t n = int64_t{1} << 20;
  const std::vector<float> got = FillF32(seed, name, InitSpec::Normal(1.0), n);
  double max_abs = 0, max_rel = 0, max_z = 0;
  for (int64_t c = 0; c < n / 4; ++c) {
    const PhiloxCounter w =
        Philox4x32({static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32),
                    static_cast<uint32_t>(nk), static_cast<uint32_t>(nk >> 32)},
                   {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
    for (int pair = 0; pair < 2; ++pair) {
      const double u = (2.0 * (w[2 * pair] >> 9) + 1.0) * 0x1p-24;
      const double r = std::sqrt(-2.0 * std::log(u));
      const double t = 2.0 * M_PI * w[2 * pair + 1] * 0x1p-32;
      const double ref[2] = {r * std::cos(t), r * std::sin(t)};
      for (int j = 0; j < 2; ++j) {
        const double z = got[4 * c + 2 * pair + j];
        const double err = std::fabs(z - ref[j]);
        if (std::fabs(ref[j]) < 1) {
          max_abs = std::max(max_abs, err);
        } else {
          max_rel = std::max(max_rel, err / std::fabs(ref[j]));
        }
        max_z = std::max(max_z, std::fabs(z));
      }
    }
  }
  std::cout << "normal kernel vs float64: max abs err (|z|<1) " << max_abs
            << ", max rel err (|z|>=1) " << max_rel << ", max |z| " << max_z << "\n";
  EXPECT_LT(max_abs, 1e-6);
  EXPECT_LT(max_rel, 1e-6);
  EXPECT_LE(max_z, 5.7678);
}

// (b) Moments, tail mass and lag correlations of a large normal fill.
TEST(FillShard, NormalStatistics) {
  const int64_t n = int64_t{1} << 22;
  for (double mean : {0.0, 0.75}) {
    const double sd = 0.02;
    const std::vector<float> v =
        FillF32(99, "decoder.layers.7.mlp.linear_fc2.weight", InitSpec::Normal(sd, mean), n);
    double s = 0, s2 = 0, s4 = 0;
    int64_t within1 = 0, within2 = 0;
    for (float x : v) {
      const double d = x - mean;
      s += d;
      s2 += d * d;
      s4 += d * d * d * d;
      within1 += std::fabs(d) < sd;
      within2 += std::fabs(d) < 2 * sd;
    }
    const double m = s / n;
    const double var = s2 / n - m * m;
    EXPECT_LT(std::fabs(m), 6 * sd / std::sqrt(static_cast<double>(n))) << "mean " << mean;
    EXPECT_NEAR(std::sqrt(var) / sd, 1.0, 0.003) << "mean " << mean;
    EXPECT_NEAR(s4 / n / (var * var), 3.0, 0.02) << "kurtosis, mean " << mean;
    EXPECT_NEAR(static_cast<double>(within1) / n, 0.682689, 0.0015);
    EXPECT_NEAR(static_cast<double>(within2) / n, 0.954500, 0.0008);
    for (int lag : {1, 2, 3, 4, 64}) {
      double c = 0;
      for (int64_t i = 0; i + lag < n; ++i) c += (v[i] - mean) * (v[i + lag] - mean);
      EXPECT_LT(std::fabs(c / (n - lag) / var), 6 / std::sqrt(static_cast<double>(n)))
          << "lag " << lag;
    }
  }
}

TEST(FillShard, UniformStatisticsAndRange) {
  const int64_t n = int64_t{1} << 20;
  const std::vector<float> v = FillF32(3, "u", InitSpec::Uniform(-0.5, 1.5), n);
  double s = 0, s2 = 0;
  for (float x : v) {
    ASSERT_GE(x, -0.5f);
    ASSERT_LE(x, 1.5f);
    s += x;
    s2 += x * x;
  }
  const double m = s / n;
  EXPECT_NEAR(m, 0.5, 6 * std::sqrt(4.0 / 12 / n));
  EXPECT_NEAR(s2 / n - m * m, 4.0 / 12, 0.003);
}

// (b) Constant fills are exact in every dtype and layout.
TEST(FillShard, ConstantFillsAreExact) {
  struct Case {
    InitSpec spec;
    float f32;
    uint16_t bf16, fp16;
  };
  const Case cases[] = {{InitSpec::Ones(), 1.0f, 0x3f80, 0x3c00},
                        {InitSpec::Zeros(), 0.0f, 0x0000, 0x0000},
                        {InitSpec::Constant(-0.25), -0.25f, 0xbe80, 0xb400}};
  const ShardLayout layouts[] = {WholeLayout({5000}), *SplitLayout({96, 77}, 0, 1, 4, 2)};
  for (const Case& c : cases) {
    for (const ShardLayout& layout : layouts) {
      for (DType dtype : kAllDTypes) {
        FillOptions o;
        o.num_threads = 3;
        o.min_elements_per_thread = 100;
        const std::vector<uint8_t> out = Fill(1, "n", c.spec, layout, dtype, o);
        const size_t es = DTypeSize(dtype);
        uint8_t want[4];
        if (dtype == DType::kFloat32) std::memcpy(want, &c.f32, 4);
        if (dtype == DType::kBFloat16) std::memcpy(want, &c.bf16, 2);
        if (dtype == DType::kFloat16) std::memcpy(want, &c.fp16, 2);
        int64_t bad = 0;
        for (size_t i = 0; i < out.size(); i += es) bad += std::memcmp(&out[i], want, es) != 0;
        EXPECT_EQ(bad, 0) << Name(dtype) << " value " << c.f32;
      }
    }
  }
}

// (c) Half outputs of a wide normal fill are finite (no Inf / NaN produced).
TEST(FillShard, HalfOutputsAreFinite) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    const std::vector<uint8_t> out =
        Fill(11, "w", InitSpec::Normal(1000.0), WholeLayout({1 << 18}), dtype);
    for (size_t i = 0; i < out.size(); i += 2) {
      uint16_t h;
      std::memcpy(&h, &out[i], 2);
      const float v = dtype == DType::kBFloat16 ? Bf16BitsToFp32(h) : Fp16BitsToFp32(h);
      ASSERT_TRUE(std::isfinite(v)) << Name(dtype) << " element " << i / 2;
    }
  }
}

// (d) Names and seeds select independent streams; the same pair always gives the same stream.
TEST(FillShard, NamesAndSeedsSelectStreams) {
  const int64_t n = 1 << 16;
  const InitSpec spec = InitSpec::Normal(0.02);
  const std::vector<float> a = FillF32(0, "decoder.layers.1.mlp.linear_fc1.weight", spec, n);
  const std::vector<float> a2 = FillF32(0, "decoder.layers.1.mlp.linear_fc1.weight", spec, n);
  EXPECT_TRUE(a == a2);
  const std::vector<std::vector<float>> others = {
      FillF32(0, "decoder.layers.10.mlp.linear_fc1.weight", spec, n),
      FillF32(0, "decoder.layers.1.mlp.linear_fc2.weight", spec, n),
      FillF32(1, "decoder.layers.1.mlp.linear_fc1.weight", spec, n),
      FillF32(uint64_t{1} << 32, "decoder.layers.1.mlp.linear_fc1.weight", spec, n),
  };
  for (size_t k = 0; k < others.size(); ++k) {
    int64_t equal = 0;
    double dot = 0;
    for (int64_t i = 0; i < n; ++i) {
      equal += a[i] == others[k][i];
      dot += static_cast<double>(a[i]) * others[k][i];
    }
    EXPECT_LT(equal, 5) << "variant " << k;
    EXPECT_LT(std::fabs(dot / n) / (0.02 * 0.02), 6 / std::sqrt(static_cast<double>(n)))
        << "variant " << k;
  }
  EXPECT_NE(NameKey("decoder.layers.1.mlp.linear_fc1.weight"),
            NameKey("decoder.layers.10.mlp.linear_fc1.weight"));
}

TEST(NameKey, IsMixedFnv1a) {
  EXPECT_EQ(Mix64(0x9e3779b97f4a7c15ull), 0xe220a8397b1dcdafull);  // SplitMix64's first output
  EXPECT_EQ(NameKey("a"), Mix64(0xaf63dc4c8601ec8cull));           // FNV-1a 64 of "a"
  EXPECT_EQ(NameKey("foobar"), Mix64(0x85944171f73967e8ull));
  EXPECT_EQ(NameKey(""), Mix64(0xcbf29ce484222325ull));
}

TEST(Layouts, SplitLayoutAndLocalShape) {
  const ShardLayout gated = *SplitLayout({2 * 8192, 2048}, 0, 3, 4, 2);
  ASSERT_EQ(gated.pieces.size(), 2u);
  EXPECT_EQ(gated.pieces[0].start, 3 * 2048);
  EXPECT_EQ(gated.pieces[0].length, 2048);
  EXPECT_EQ(gated.pieces[1].start, 8192 + 3 * 2048);
  EXPECT_EQ(*LocalShape(gated), (std::vector<int64_t>{4096, 2048}));
  const ShardLayout row = *SplitLayout({768, 3072}, 1, 1, 2);
  EXPECT_EQ(*LocalShape(row), (std::vector<int64_t>{768, 1536}));
  EXPECT_EQ(*LocalNumel(WholeLayout({7, 3, 2})), 42);
  EXPECT_EQ(*LocalNumel(WholeLayout({})), 1);  // a scalar

  EXPECT_THAT(SplitLayout({10, 4}, 0, 0, 4).status().message(), HasSubstr("not divisible"));
  EXPECT_THAT(SplitLayout({10, 4}, 2, 0, 1).status().message(), HasSubstr("dim must be in"));
  EXPECT_THAT(SplitLayout({10, 4}, 0, 2, 2).status().message(), HasSubstr("rank must be in"));
  EXPECT_THAT(SplitLayout({10, 4}, 0, 0, 1, 0).status().message(), HasSubstr("stride"));
}

// (f) Malformed layouts, sizes and specs are INVALID_ARGUMENT with a message naming the field.
TEST(FillShard, RejectsInvalidInput) {
  struct Case {
    ShardLayout layout;
    int64_t out_numel;
    InitSpec spec;
    DType dtype;
    const char* message;
  };
  const InitSpec normal = InitSpec::Normal(0.02);
  const Case cases[] = {
      {{{4, 6}, 2, {{0, 3}}}, 12, normal, DType::kFloat32, "layout.partition_dim must be in"},
      {{{4, 6}, -2, {}}, 24, normal, DType::kFloat32, "layout.partition_dim must be in"},
      {{{4, 6}, -1, {{0, 4}}}, 24, normal, DType::kFloat32, "layout.pieces must be empty"},
      {{{4, 6}, 1, {{-1, 3}}}, 12, normal, DType::kFloat32, "layout.pieces[0]"},
      {{{4, 6}, 1, {{4, 3}}}, 12, normal, DType::kFloat32, "layout.pieces[0]"},
      {{{4, 6}, 1, {{0, 2}, {5, 2}}}, 16, normal, DType::kFloat32, "layout.pieces[1]"},
      {{{4, 6}, 1, {{0, -1}}}, 0, normal, DType::kFloat32, "layout.pieces[0]"},
      {{{4, 6}, 1, {{0, 3}, {2, 2}}}, 20, normal, DType::kFloat32, "layout.pieces overlap"},
      {{{4, -6}, -1, {}}, 24, normal, DType::kFloat32, "layout.canonical_shape[1]"},
      {{{int64_t{1} << 40, int64_t{1} << 40}, -1, {}},
       1,
       normal,
       DType::kFloat32,
       "more than 2^62"},
      {{{4, 6}, 0, {{1, 2}}}, 13, normal, DType::kFloat32, "out_numel must equal"},
      {{{4, 6}, -1, {}},
       23,
       normal,
       DType::kFloat32,
       "out_numel must equal the shard's element "
       "count 24"},
      {{{4}, -1, {}}, 4, InitSpec::Normal(-1), DType::kFloat32, "spec.std"},
      {{{4}, -1, {}}, 4, InitSpec::Normal(NAN), DType::kFloat32, "spec.std"},
      {{{4}, -1, {}}, 4, InitSpec::Normal(1, INFINITY), DType::kFloat32, "spec.mean"},
      {{{4}, -1, {}}, 4, InitSpec::Normal(20000), DType::kFloat16, "overflows float16"},
      {{{4}, -1, {}}, 4, InitSpec::Constant(1e5), DType::kFloat16, "spec.value"},
      {{{4}, -1, {}}, 4, InitSpec::Constant(1e39), DType::kFloat32, "spec.value"},
      {{{4}, -1, {}}, 4, InitSpec::Uniform(2, 1), DType::kFloat32, "low <= high"},
      {{{4}, -1, {}}, 4, InitSpec::Uniform(-7e4, 0), DType::kFloat16, "overflows float16"},
  };
  std::vector<float> buf(64);
  for (const Case& c : cases) {
    absl::Status s = FillShard(1, "w", c.spec, c.layout, c.dtype, buf.data(), c.out_numel);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
  absl::Status s = FillShard(1, "w", normal, WholeLayout({4}), DType::kFloat32, nullptr, 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("out must not be null"));
  // An empty shard is fine, even without a buffer.
  EXPECT_TRUE(
      FillShard(1, "w", normal, ShardLayout{{4, 6}, 1, {{2, 0}}}, DType::kFloat32, nullptr, 0)
          .ok());
  // Fills that were rejected wrote nothing.
  for (float v : buf) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace gptb::init
