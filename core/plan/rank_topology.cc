#include "core/plan/rank_topology.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gptb::plan {

absl::StatusOr<RankGrid> RankGrid::Create(int tp, int cp, int ep, int dp, int pp,
                                          const std::string& order) {
  const std::vector<std::pair<std::string, int>> known = {
      {"tp", tp}, {"cp", cp}, {"ep", ep}, {"dp", dp}, {"pp", pp}};
  RankGrid grid;
  for (absl::string_view token : absl::StrSplit(order, '-')) {
    std::string name(token);
    auto it =
        std::find_if(known.begin(), known.end(), [&](const auto& k) { return k.first == name; });
    if (it == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "order '", order, "' has an unknown dimension '", name, "'; use tp, cp, ep, dp and pp"));
    }
    if (std::find(grid.names_.begin(), grid.names_.end(), name) != grid.names_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("order '", order, "' names '", name, "' twice"));
    }
    grid.names_.push_back(name);
    grid.sizes_.push_back(it->second);
  }
  for (const auto& [name, size] : known) {
    if (std::find(grid.names_.begin(), grid.names_.end(), name) != grid.names_.end()) continue;
    if (size != 1) {
      return absl::InvalidArgumentError(absl::StrCat("the size of ", name, " is ", size,
                                                     " but order '", order, "' does not name it"));
    }
    grid.names_.push_back(name);
    grid.sizes_.push_back(1);
  }
  int stride = 1;
  for (int size : grid.sizes_) {
    if (size <= 0) return absl::InvalidArgumentError("parallel sizes must be positive");
    grid.strides_.push_back(stride);
    stride *= size;
  }
  grid.world_size_ = stride;
  return grid;
}

int RankGrid::DimIndex(const std::string& dim) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == dim) return static_cast<int>(i);
  }
  return -1;
}

int RankGrid::Coord(int rank, const std::string& dim) const {
  const int i = DimIndex(dim);
  if (i < 0) return 0;
  return (rank / strides_[i]) % sizes_[i];
}

std::vector<bool> RankGrid::Mask(const std::string& token) const {
  std::vector<bool> mask(names_.size(), false);
  for (absl::string_view part : absl::StrSplit(token, '-')) {
    const int i = DimIndex(std::string(part));
    if (i >= 0) mask[i] = true;
  }
  return mask;
}

std::vector<int> RankGrid::GroupOf(int rank, const std::string& token) const {
  const std::vector<bool> mask = Mask(token);
  // Base: the rank with every masked index zeroed; members enumerate masked indices.
  int base = rank;
  int group_size = 1;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (mask[i]) {
      base -= ((rank / strides_[i]) % sizes_[i]) * strides_[i];
      group_size *= sizes_[i];
    }
  }
  std::vector<int> members;
  members.reserve(group_size);
  for (int j = 0; j < group_size; ++j) {
    int rest = j;
    int r = base;
    for (size_t i = 0; i < names_.size(); ++i) {
      if (!mask[i]) continue;
      r += (rest % sizes_[i]) * strides_[i];
      rest /= sizes_[i];
    }
    members.push_back(r);
  }
  return members;
}

std::vector<std::vector<int>> RankGrid::Groups(const std::string& token) const {
  const std::vector<bool> mask = Mask(token);
  int num_groups = 1;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (!mask[i]) num_groups *= sizes_[i];
  }
  std::vector<std::vector<int>> groups;
  groups.reserve(num_groups);
  for (int g = 0; g < num_groups; ++g) {
    int rest = g;
    int base = 0;
    for (size_t i = 0; i < names_.size(); ++i) {
      if (mask[i]) continue;
      base += (rest % sizes_[i]) * strides_[i];
      rest /= sizes_[i];
    }
    groups.push_back(GroupOf(base, token));
  }
  return groups;
}

const char* GroupName(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTp:
      return "tp";
    case GroupKind::kPp:
      return "pp";
    case GroupKind::kDp:
      return "dp";
    case GroupKind::kCp:
      return "cp";
    case GroupKind::kDpCp:
      return "dp_cp";
    case GroupKind::kTpCp:
      return "tp_cp";
    case GroupKind::kMp:
      return "mp";
    case GroupKind::kTpDpCp:
      return "tp_dp_cp";
    case GroupKind::kTpDp:
      return "tp_dp";
    case GroupKind::kEp:
      return "ep";
    case GroupKind::kExptTp:
      return "expt_tp";
    case GroupKind::kExptDp:
      return "expt_dp";
    case GroupKind::kTpEp:
      return "tp_ep";
    case GroupKind::kTpEpPp:
      return "tp_ep_pp";
    case GroupKind::kEmbd:
      return "embd";
    case GroupKind::kPosEmbd:
      return "pos_embd";
  }
  return "?";
}

absl::StatusOr<RankTopology> RankTopology::Create(const Options& o) {
  const int world = o.world_size;
  const int t = o.tensor_model_parallel_size, p = o.pipeline_model_parallel_size,
            c = o.context_parallel_size, e = o.expert_model_parallel_size,
            et = o.expert_tensor_parallel_size;
  if (world <= 0 || t <= 0 || p <= 0 || c <= 0 || e <= 0 || et <= 0) {
    return absl::InvalidArgumentError("world size and parallel sizes must be positive");
  }
  const long model = static_cast<long>(t) * p * c;
  if (world % model != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("world size ", world,
                     " is not a multiple of tensor_model_parallel_size * "
                     "pipeline_model_parallel_size * context_parallel_size = ",
                     model));
  }
  const long expert_model = static_cast<long>(et) * e * p;
  if (world % expert_model != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("world size ", world,
                     " is not a multiple of expert_tensor_parallel_size * "
                     "expert_model_parallel_size * pipeline_model_parallel_size = ",
                     expert_model));
  }
  const int dp = static_cast<int>(world / model);
  const int edp = static_cast<int>(world / expert_model);
  absl::StatusOr<RankGrid> decoder = RankGrid::Create(t, c, 1, dp, p, o.order);
  if (!decoder.ok()) return decoder.status();
  absl::StatusOr<RankGrid> expert = RankGrid::Create(et, 1, e, edp, p, o.order);
  if (!expert.ok()) return expert.status();
  const bool pp_last = o.order.size() >= 2 && o.order.compare(o.order.size() - 2, 2, "pp") == 0;
  if (!pp_last && p > 1 && edp != dp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "with order '", o.order, "' (not ending in pp) the expert data-parallel size (", edp,
        ") must equal the data-parallel size (", dp, ")"));
  }
  if (decoder->Groups("pp") != expert->Groups("pp")) {
    return absl::InvalidArgumentError(
        absl::StrCat("order '", o.order,
                     "' gives different pipeline groups for the dense and the expert grids"));
  }
  return RankTopology(o, *std::move(decoder), *std::move(expert), dp, edp);
}

RankCoords RankTopology::Coords(int rank) const {
  RankCoords c;
  c.rank = rank;
  c.tp = decoder_.Coord(rank, "tp");
  c.cp = decoder_.Coord(rank, "cp");
  c.dp = decoder_.Coord(rank, "dp");
  c.pp = decoder_.Coord(rank, "pp");
  c.etp = expert_.Coord(rank, "tp");
  c.ep = expert_.Coord(rank, "ep");
  c.edp = expert_.Coord(rank, "dp");
  return c;
}

std::vector<int> RankTopology::Group(GroupKind kind, int rank) const {
  switch (kind) {
    case GroupKind::kTp:
      return decoder_.GroupOf(rank, "tp");
    case GroupKind::kPp:
      return decoder_.GroupOf(rank, "pp");
    case GroupKind::kDp:
      return decoder_.GroupOf(rank, "dp");
    case GroupKind::kCp:
      return decoder_.GroupOf(rank, "cp");
    case GroupKind::kDpCp:
      return decoder_.GroupOf(rank, "dp-cp");
    case GroupKind::kTpCp:
      return decoder_.GroupOf(rank, "tp-cp");
    case GroupKind::kMp:
      return decoder_.GroupOf(rank, "tp-pp");
    case GroupKind::kTpDpCp:
      return decoder_.GroupOf(rank, "tp-dp-cp");
    case GroupKind::kTpDp:
      return decoder_.GroupOf(rank, "tp-dp");
    case GroupKind::kEp:
      return expert_.GroupOf(rank, "ep");
    case GroupKind::kExptTp:
      return expert_.GroupOf(rank, "tp");
    case GroupKind::kExptDp:
      return expert_.GroupOf(rank, "dp");
    case GroupKind::kTpEp:
      return expert_.GroupOf(rank, "tp-ep");
    case GroupKind::kTpEpPp:
      return expert_.GroupOf(rank, "tp-ep-pp");
    case GroupKind::kEmbd:
    case GroupKind::kPosEmbd: {
      const std::vector<int> pp = decoder_.GroupOf(rank, "pp");
      std::vector<int> members = {pp.front()};
      if (kind == GroupKind::kEmbd && pp.size() > 1) members.push_back(pp.back());
      if (std::find(members.begin(), members.end(), rank) == members.end()) return {};
      return members;
    }
  }
  return {};
}

std::vector<std::vector<int>> RankTopology::AllGroups(GroupKind kind) const {
  switch (kind) {
    case GroupKind::kEp:
      return expert_.Groups("ep");
    case GroupKind::kExptTp:
      return expert_.Groups("tp");
    case GroupKind::kExptDp:
      return expert_.Groups("dp");
    case GroupKind::kTpEp:
      return expert_.Groups("tp-ep");
    case GroupKind::kTpEpPp:
      return expert_.Groups("tp-ep-pp");
    case GroupKind::kEmbd:
    case GroupKind::kPosEmbd: {
      std::vector<std::vector<int>> groups;
      for (const std::vector<int>& pp : decoder_.Groups("pp")) {
        std::vector<int> members = {pp.front()};
        if (kind == GroupKind::kEmbd && pp.size() > 1) members.push_back(pp.back());
        groups.push_back(members);
      }
      return groups;
    }
    default: {
      // Decoder tokens: map through Group on each group's first member.
      static const std::pair<GroupKind, const char*> tokens[] = {
          {GroupKind::kTp, "tp"},    {GroupKind::kPp, "pp"},           {GroupKind::kDp, "dp"},
          {GroupKind::kCp, "cp"},    {GroupKind::kDpCp, "dp-cp"},      {GroupKind::kTpCp, "tp-cp"},
          {GroupKind::kMp, "tp-pp"}, {GroupKind::kTpDpCp, "tp-dp-cp"}, {GroupKind::kTpDp, "tp-dp"}};
      for (const auto& [k, token] : tokens) {
        if (k == kind) return decoder_.Groups(token);
      }
      return {};
    }
  }
}

}  // namespace gptb::plan
