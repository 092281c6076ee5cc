// Pipeline orders: Megatron's orders for known cases, and a simulation of every rank (sends
// never wait, receives wait for their data) that proves the orders cannot deadlock.
#include "core/train/pipeline_order.h"

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::train {
namespace {

std::string Join(const std::vector<PipelineOp>& ops) {
  std::string out;
  for (const PipelineOp& op : ops) {
    if (!out.empty()) out += ' ';
    out += ToString(op);
  }
  return out;
}

std::vector<PipelineOp> Order(int pp, int rank, int chunks, int m, int group = 0) {
  absl::StatusOr<std::vector<PipelineOp>> ops = PipelineOrder({pp, rank, chunks, m, group});
  EXPECT_TRUE(ops.ok()) << ops.status();
  return ops.ok() ? *ops : std::vector<PipelineOp>();
}

TEST(PipelineOrderTest, NoPipeliningAlternatesForwardAndBackward) {
  EXPECT_EQ(Join(Order(1, 0, 1, 3)), "F0.0 B0.0 F0.1 B0.1 F0.2 B0.2");
}

TEST(PipelineOrderTest, OneForwardOneBackwardWarmsUpByDistanceToTheEnd) {
  // Megatron's 1F1B, pp = 4, 6 micro-batches.
  EXPECT_EQ(Join(Order(4, 0, 1, 6)), "F0.0 F0.1 F0.2 F0.3 B0.0 F0.4 B0.1 F0.5 B0.2 B0.3 B0.4 B0.5");
  EXPECT_EQ(Join(Order(4, 2, 1, 6)), "F0.0 F0.1 B0.0 F0.2 B0.1 F0.3 B0.2 F0.4 B0.3 F0.5 B0.4 B0.5");
  EXPECT_EQ(Join(Order(4, 3, 1, 6)), "F0.0 B0.0 F0.1 B0.1 F0.2 B0.2 F0.3 B0.3 F0.4 B0.4 F0.5 B0.5");
  // Fewer micro-batches than stages: all forwards first.
  EXPECT_EQ(Join(Order(4, 0, 1, 2)), "F0.0 F0.1 B0.0 B0.1");
}

TEST(PipelineOrderTest, InterleavedFollowsMegatronsScheduleTable) {
  // pp 2, 2 chunks, 4 micro-batches, groups of 2: forwards (0,c0) (1,c0) (0,c1) (1,c1) (2,c0)...
  // rank 0 warms up 2 * (2 - 0 - 1) + (2 - 1) * 2 = 4 forwards.
  EXPECT_EQ(Join(Order(2, 0, 2, 4)),
            "F0.0 F0.1 F1.0 F1.1 F0.2 B1.0 F0.3 B1.1 F1.2 B0.0 F1.3 B0.1 B1.2 B1.3 B0.2 B0.3");
  EXPECT_EQ(Join(Order(2, 1, 2, 4)),
            "F0.0 F0.1 F1.0 B1.0 F1.1 B1.1 F0.2 B0.0 F0.3 B0.1 F1.2 B1.2 F1.3 B1.3 B0.2 B0.3");
  // Megatron's docstring example, PP2 N3 M5: the last group holds the remaining 2.
  const std::vector<PipelineOp> ops = Order(2, 1, 2, 5, 3);
  std::vector<PipelineOp> forwards;
  for (const PipelineOp& op : ops) {
    if (op.forward) forwards.push_back(op);
  }
  EXPECT_EQ(Join(forwards), "F0.0 F0.1 F0.2 F1.0 F1.1 F1.2 F0.3 F0.4 F1.3 F1.4");
}

TEST(PipelineOrderTest, RejectsBadShapes) {
  EXPECT_FALSE(PipelineOrder({0, 0, 1, 1, 0}).ok());
  EXPECT_FALSE(PipelineOrder({2, 2, 1, 1, 0}).ok());
  EXPECT_FALSE(PipelineOrder({2, 0, 1, 0, 0}).ok());
  EXPECT_FALSE(PipelineOrder({1, 0, 2, 4, 0}).ok());  // chunks without a pipeline
  auto few = PipelineOrder({4, 0, 2, 3, 0});          // interleaved needs M >= pp
  ASSERT_FALSE(few.ok());
  EXPECT_THAT(std::string(few.status().message()), ::testing::HasSubstr("at least 4"));
  EXPECT_FALSE(PipelineOrder({2, 0, 2, 4, 5}).ok());  // group larger than M
  auto stalls = PipelineOrder({4, 0, 2, 5, 4});       // last group of 1 < pp
  ASSERT_FALSE(stalls.ok());
  EXPECT_THAT(std::string(stalls.status().message()), ::testing::HasSubstr("last group of 1"));
  EXPECT_TRUE(PipelineOrder({2, 0, 2, 5, 3}).ok());  // last group of 2 == pp
}

// Runs every rank's order with non-blocking sends and blocking receives; returns false on a
// deadlock (no rank can take its next op while some have ops left).
bool Simulate(int pp, int chunks, int m, int group, std::string* trace) {
  const int stages = pp * chunks;
  std::vector<std::vector<PipelineOp>> orders;
  for (int r = 0; r < pp; ++r) orders.push_back(Order(pp, r, chunks, m, group));
  std::set<std::tuple<bool, int, int>> done;  // (forward, virtual stage, micro-batch)
  std::vector<size_t> next(pp, 0);
  size_t remaining = 0;
  for (const auto& o : orders) remaining += o.size();
  while (remaining > 0) {
    bool progress = false;
    for (int r = 0; r < pp; ++r) {
      while (next[r] < orders[r].size()) {
        const PipelineOp& op = orders[r][next[r]];
        const int vs = op.chunk * pp + r;
        const bool ready = op.forward
                               ? (vs == 0 || done.count({true, vs - 1, op.microbatch}))
                               : (done.count({true, vs, op.microbatch}) &&
                                  (vs == stages - 1 || done.count({false, vs + 1, op.microbatch})));
        if (!ready) break;
        done.insert({op.forward, vs, op.microbatch});
        ++next[r];
        --remaining;
        progress = true;
      }
    }
    if (!progress) {
      for (int r = 0; r < pp; ++r) {
        *trace += "rank " + std::to_string(r) + " waits at " +
                  (next[r] < orders[r].size() ? ToString(orders[r][next[r]]) : "end") + "; ";
      }
      return false;
    }
  }
  return true;
}

TEST(PipelineOrderTest, EveryRankRunsEachOpOnceAndNoOrderDeadlocks) {
  for (int pp = 1; pp <= 5; ++pp) {
    for (int chunks = 1; chunks <= (pp > 1 ? 4 : 1); ++chunks) {
      for (int m = 1; m <= 12; ++m) {
        std::vector<int> groups = {0};
        if (chunks > 1) {
          if (m < pp) continue;
          for (int g = pp + 1; g <= m; ++g) groups.push_back(g);
        }
        for (int group : groups) {
          const int size = group > 0 ? group : pp;
          if (chunks > 1 && m % size > 0 && m % size < pp) {
            EXPECT_FALSE(PipelineOrder({pp, 0, chunks, m, group}).ok());
            continue;
          }
          SCOPED_TRACE("pp " + std::to_string(pp) + " chunks " + std::to_string(chunks) + " m " +
                       std::to_string(m) + " group " + std::to_string(group));
          for (int r = 0; r < pp; ++r) {
            std::map<std::tuple<bool, int, int>, int> seen;
            std::set<std::pair<int, int>> forwarded;
            for (const PipelineOp& op : Order(pp, r, chunks, m, group)) {
              ++seen[{op.forward, op.chunk, op.microbatch}];
              if (op.forward) forwarded.insert({op.chunk, op.microbatch});
              if (!op.forward) {
                EXPECT_TRUE(forwarded.count({op.chunk, op.microbatch}))
                    << "backward before forward";
              }
            }
            EXPECT_EQ(seen.size(), static_cast<size_t>(2 * chunks * m));
            for (const auto& [key, count] : seen) EXPECT_EQ(count, 1);
          }
          std::string trace;
          EXPECT_TRUE(Simulate(pp, chunks, m, group, &trace)) << trace;
        }
      }
    }
  }
}

}  // namespace
}  // namespace gptb::train
