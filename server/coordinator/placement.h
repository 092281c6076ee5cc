#ifndef GPTB_SERVER_COORDINATOR_PLACEMENT_H_
#define GPTB_SERVER_COORDINATOR_PLACEMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/model.pb.h"

namespace gptb::coordinator {

struct SlotCapacity {
  int index = 0;
  std::string device;
  int64_t memory_bytes = 0;
  bool free = true;
};

// One live worker's slots, free or not.
struct WorkerCapacity {
  std::string worker;
  std::vector<SlotCapacity> slots;
};

struct PlacementRequest {
  // Every rank in exactly one group: the tensor-parallel groups, which stay inside one worker
  // whenever one has room (their collectives are the chattiest).
  std::vector<std::vector<int>> tp_groups;
  // Model-state bytes each rank allocates (parameters + gradient buffers), indexed by rank.
  std::vector<int64_t> rank_bytes;
  // BuildModelRequest.device: "cpu", "cuda", or "" (cuda when enough CUDA slots are registered).
  std::string device;
};

// Assigns each rank to a free slot whose memory budget holds it, before anything is allocated.
// Every rank goes on a slot of the one device type the request names (or chooses, see
// PlacementRequest::device); slots of other types are not considered.
//   INVALID_ARGUMENT (BadRequest on `device`): a device type other than cpu, cuda or "".
//   FAILED_PRECONDITION (PreconditionFailure, reason NOT_ENOUGH_SLOTS): fewer slots of the
//     device type are registered on live workers than there are ranks (for cuda: none at all
//     when no worker has a CUDA device and build).
//   RESOURCE_EXHAUSTED (QuotaFailure): a rank is larger than every slot's budget
//     (RANK_TOO_LARGE), or the free slots cannot hold the ranks (NOT_ENOUGH_FREE_SLOTS,
//     NOT_ENOUGH_SLOT_MEMORY).
// TP groups are placed in order, each on the worker with the fewest free slots that can hold all
// of it (best fit, ties by worker order); a group no worker can hold is spread over the workers
// with the most room. Within a worker a rank takes the smallest free slot that holds it.
// The result is sorted by rank.
absl::StatusOr<std::vector<gptbuilder::v1::RankPlacement>> PlaceRanks(
    const PlacementRequest& request, const std::vector<WorkerCapacity>& workers);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_PLACEMENT_H_
