#ifndef GPTB_CORE_PLAN_RANK_TOPOLOGY_H_
#define GPTB_CORE_PLAN_RANK_TOPOLOGY_H_

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace gptb::plan {

// Megatron's RankGenerator: an N-D grid of ranks whose dimensions are listed in `order` from the
// fastest-varying (stride 1) to the slowest. Global rank = sum(index_k * stride_k), stride_k =
// product of the sizes of the dims left of k. A group for a token like "tp-dp" is the set of
// ranks that share every index outside the token; inside a group ranks are ordered by the token
// dims, leftmost fastest; groups are ordered by the other dims, leftmost fastest.
class RankGrid {
 public:
  // `sizes` holds the size of tp, cp, ep, dp, pp. Dims of size 1 missing from `order` are
  // appended; a missing dim of size > 1 is an error, as is an unknown or repeated name.
  static absl::StatusOr<RankGrid> Create(int tp, int cp, int ep, int dp, int pp,
                                         const std::string& order);

  int world_size() const { return world_size_; }
  // Index of `rank` along dimension `dim` ("tp", "cp", "ep", "dp" or "pp").
  int Coord(int rank, const std::string& dim) const;
  // The group of `token` that contains `rank`, in Megatron's member order.
  std::vector<int> GroupOf(int rank, const std::string& token) const;
  // Every group of `token`, in Megatron's order (get_ranks(token)).
  std::vector<std::vector<int>> Groups(const std::string& token) const;

 private:
  std::vector<bool> Mask(const std::string& token) const;
  int DimIndex(const std::string& dim) const;

  std::vector<std::string> names_;
  std::vector<int> sizes_;
  std::vector<int> strides_;
  int world_size_ = 1;
};

// The process groups a rank belongs to (Megatron's ProcessGroupCollection fields).
enum class GroupKind {
  kTp,       // decoder "tp"
  kPp,       // decoder "pp"
  kDp,       // decoder "dp"
  kCp,       // decoder "cp"
  kDpCp,     // decoder "dp-cp"
  kTpCp,     // decoder "tp-cp"
  kMp,       // decoder "tp-pp" (model parallel)
  kTpDpCp,   // decoder "tp-dp-cp"
  kTpDp,     // decoder "tp-dp"
  kEp,       // expert "ep"
  kExptTp,   // expert "tp"
  kExptDp,   // expert "dp"
  kTpEp,     // expert "tp-ep"
  kTpEpPp,   // expert "tp-ep-pp"
  kEmbd,     // first and last rank of each pp group
  kPosEmbd,  // first rank of each pp group
};
inline constexpr std::array<GroupKind, 16> kAllGroupKinds = {
    GroupKind::kTp,   GroupKind::kPp,     GroupKind::kDp,     GroupKind::kCp,
    GroupKind::kDpCp, GroupKind::kTpCp,   GroupKind::kMp,     GroupKind::kTpDpCp,
    GroupKind::kTpDp, GroupKind::kEp,     GroupKind::kExptTp, GroupKind::kExptDp,
    GroupKind::kTpEp, GroupKind::kTpEpPp, GroupKind::kEmbd,   GroupKind::kPosEmbd};

// The ProcessGroupCollection field name ("tp", "dp_cp", "expt_tp", "embd", ...).
const char* GroupName(GroupKind kind);

// A rank's coordinates on the decoder grid and on the expert grid.
struct RankCoords {
  int rank = 0;
  int tp = 0, cp = 0, dp = 0, pp = 0;  // decoder grid
  int etp = 0, ep = 0, edp = 0;        // expert grid
};

// Megatron's initialize_model_parallel topology for one world: the decoder grid
// (tp, cp, ep=1, dp, pp) and the expert grid (etp, cp=1, ep, edp, pp) over the same order.
class RankTopology {
 public:
  struct Options {
    int world_size = 1;
    int tensor_model_parallel_size = 1;
    int pipeline_model_parallel_size = 1;
    int context_parallel_size = 1;
    int expert_model_parallel_size = 1;
    int expert_tensor_parallel_size = 1;
    std::string order = "tp-cp-ep-dp-pp";
  };
  // INVALID_ARGUMENT when the world does not divide into the grids, or the order is bad.
  static absl::StatusOr<RankTopology> Create(const Options& options);

  int world_size() const { return options_.world_size; }
  int tp() const { return options_.tensor_model_parallel_size; }
  int pp() const { return options_.pipeline_model_parallel_size; }
  int cp() const { return options_.context_parallel_size; }
  int ep() const { return options_.expert_model_parallel_size; }
  int etp() const { return options_.expert_tensor_parallel_size; }
  int dp() const { return dp_; }
  int edp() const { return edp_; }
  const std::string& order() const { return options_.order; }

  RankCoords Coords(int rank) const;
  // The group of `kind` containing `rank`; empty when the rank belongs to none (an embedding
  // group of a middle pipeline rank).
  std::vector<int> Group(GroupKind kind, int rank) const;
  // Every group of `kind`.
  std::vector<std::vector<int>> AllGroups(GroupKind kind) const;

 private:
  RankTopology(Options options, RankGrid decoder, RankGrid expert, int dp, int edp)
      : options_(std::move(options)),
        decoder_(std::move(decoder)),
        expert_(std::move(expert)),
        dp_(dp),
        edp_(edp) {}

  Options options_;
  RankGrid decoder_;
  RankGrid expert_;
  int dp_;
  int edp_;
};

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_RANK_TOPOLOGY_H_
