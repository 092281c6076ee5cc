#include "core/config/suggest.h"

#include "gtest/gtest.h"

namespace gptb::config {
namespace {

TEST(EditDistance, Levenshtein) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("num_layer", "num_layers"), 1u);
  EXPECT_EQ(EditDistance("hiden_size", "hidden_size"), 1u);
}

TEST(ClosestName, SuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> names = {"num_layers", "hidden_size", "normalization"};
  EXPECT_EQ(ClosestName("num_layer", names), "num_layers");
  EXPECT_EQ(ClosestName("normalisation", names), "normalization");
  EXPECT_EQ(ClosestName("NUM_LAYERS", names), "num_layers");  // case-only difference
  EXPECT_EQ(ClosestName("vocab", names), std::nullopt);
  EXPECT_EQ(ClosestName("x", {}), std::nullopt);
  EXPECT_EQ(DidYouMean("hiden_size", names), " Did you mean 'hidden_size'?");
  EXPECT_EQ(DidYouMean("zzz", names), "");
}

}  // namespace
}  // namespace gptb::config
