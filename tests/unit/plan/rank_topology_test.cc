#include "core/plan/rank_topology.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

using Groups = std::vector<std::vector<int>>;

RankTopology Make(int world, int tp, int pp, int ep = 1, int etp = -1, int cp = 1,
                  const std::string& order = "tp-cp-ep-dp-pp") {
  RankTopology::Options o;
  o.world_size = world;
  o.tensor_model_parallel_size = tp;
  o.pipeline_model_parallel_size = pp;
  o.context_parallel_size = cp;
  o.expert_model_parallel_size = ep;
  o.expert_tensor_parallel_size = etp < 0 ? tp : etp;
  o.order = order;
  absl::StatusOr<RankTopology> t = RankTopology::Create(o);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// Spec §5 worked example: world=8, t=2, p=2 (dp=2), default order.
TEST(RankTopology, WorldEightTpTwoPpTwo) {
  RankTopology t = Make(8, 2, 2);
  EXPECT_EQ(t.dp(), 2);
  EXPECT_EQ(t.AllGroups(GroupKind::kTp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kDp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kPp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kEmbd), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kPosEmbd), (Groups{{0}, {1}, {2}, {3}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kMp), (Groups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  // Rank-local views agree with the full lists; middle ranks hold no position embedding.
  EXPECT_EQ(t.Group(GroupKind::kDp, 5), (std::vector<int>{5, 7}));
  EXPECT_EQ(t.Group(GroupKind::kPosEmbd, 4), std::vector<int>{});
  EXPECT_EQ(t.Group(GroupKind::kEmbd, 6), (std::vector<int>{2, 6}));
  const RankCoords c = t.Coords(6);
  EXPECT_EQ(c.tp, 0);
  EXPECT_EQ(c.dp, 1);
  EXPECT_EQ(c.pp, 1);
}

TEST(RankTopology, ExpertGridWithExpertTpEqualToTp) {
  // Same world with ep=2, t_e=2: edp=1; EP [0,2] [1,3] [4,6] [5,7]; expert-TP = TP.
  RankTopology t = Make(8, 2, 2, 2, 2);
  EXPECT_EQ(t.edp(), 1);
  EXPECT_EQ(t.AllGroups(GroupKind::kEp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kExptTp), t.AllGroups(GroupKind::kTp));
  EXPECT_EQ(t.Coords(3).ep, 1);
}

TEST(RankTopology, ExpertGridWithExpertTpOne) {
  // ep=2, t_e=1: EP [0,1] [2,3] [4,5] [6,7]; expert-DP [0,2] [1,3] [4,6] [5,7].
  RankTopology t = Make(8, 2, 2, 2, 1);
  EXPECT_EQ(t.AllGroups(GroupKind::kEp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kExptDp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
}

TEST(RankTopology, EveryRankIsInExactlyOneGroupOfEachKind) {
  RankTopology t = Make(16, 2, 2, 2, 1, 2);
  for (GroupKind kind : kAllGroupKinds) {
    if (kind == GroupKind::kEmbd || kind == GroupKind::kPosEmbd) continue;
    std::vector<int> seen(16, 0);
    for (const auto& group : t.AllGroups(kind)) {
      for (int r : group) ++seen[r];
      for (int r : group) EXPECT_EQ(t.Group(kind, r), group) << GroupName(kind);
    }
    for (int count : seen) EXPECT_EQ(count, 1) << GroupName(kind);
  }
}

TEST(RankTopology, PpBeforeDpOrder) {
  // "tp-cp-ep-pp-dp": pp varies faster than dp.
  RankTopology t = Make(8, 2, 2, 1, -1, 1, "tp-cp-ep-pp-dp");
  EXPECT_EQ(t.AllGroups(GroupKind::kPp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(t.AllGroups(GroupKind::kDp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(RankTopology, RejectsWorldsThatDoNotDivide) {
  RankTopology::Options o;
  o.world_size = 6;
  o.tensor_model_parallel_size = 4;
  absl::StatusOr<RankTopology> t = RankTopology::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("not a multiple"));
  o.world_size = 8;
  o.tensor_model_parallel_size = 2;
  o.expert_model_parallel_size = 3;
  o.expert_tensor_parallel_size = 2;
  EXPECT_FALSE(RankTopology::Create(o).ok());
  o.expert_model_parallel_size = 1;
  o.order = "tp-dp-xx";
  EXPECT_FALSE(RankTopology::Create(o).ok());
}

}  // namespace
}  // namespace gptb::plan
