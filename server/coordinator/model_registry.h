#ifndef GPTB_SERVER_COORDINATOR_MODEL_REGISTRY_H_
#define GPTB_SERVER_COORDINATOR_MODEL_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "gptbuilder/v1/model.pb.h"

namespace gptb::coordinator {

// The models the coordinator knows and their state machine:
//
//   BUILDING ──► READY ──► RELEASING ──► (removed)
//      │  ╲        │           ▲
//      │   ╲       ▼           │
//      │    ╲──► FAILED ───────┘          RECOVERING ──► READY | FAILED | RELEASING
//      └────────────────────────►RELEASING
//
// Every change bumps the model's version so watchers wake up; per-rank progress is folded into
// the model's BuildProgress and kept as a bounded log of rank events. Not thread-safe: the
// Coordinator guards it with its mutex.
class ModelRegistry {
 public:
  using Model = gptbuilder::v1::Model;

  // Adds a model (BUILDING or RECOVERING); ALREADY_EXISTS when the name is taken.
  absl::Status Add(Model model, const std::string& request_id, absl::Time now);
  void Remove(const std::string& name);

  const Model* Find(const std::string& name) const;
  // For edits outside the state machine (placement of a recovering model); bumps the version.
  Model* Mutable(const std::string& name);
  const std::string* RequestId(const std::string& name) const;
  std::vector<Model> List() const;
  std::map<Model::State, int> CountByState() const;

  // Applies an allowed transition (see above); FAILED_PRECONDITION for any other, leaving the
  // model as it was. Transitions to the current state are allowed and only update the reason.
  absl::Status Transition(const std::string& name, Model::State to, const std::string& reason,
                          absl::Time now);
  static bool Allowed(Model::State from, Model::State to);

  // Folds one rank's progress into the model (ignored unless BUILDING).
  void UpdateRank(const std::string& name, const gptbuilder::v1::RankProgress& progress,
                  absl::Time now);
  // Records a coordinator-side phase's duration (validate, plan, rendezvous).
  void SetPhaseSeconds(const std::string& name, const std::string& phase, double seconds);
  void SetHeldBytes(const std::string& name, int64_t bytes);

  // A counter that changes whenever the model does (0 for an unknown model).
  uint64_t Version(const std::string& name) const;
  // The model's rank events with a sequence number >= *cursor; advances the cursor.
  std::vector<gptbuilder::v1::RankProgress> RankEventsSince(const std::string& name,
                                                            uint64_t* cursor) const;

  static constexpr size_t kMaxRankEvents = 4096;

 private:
  struct Entry {
    Model model;
    std::string request_id;
    std::vector<gptbuilder::v1::RankProgress> ranks;  // latest per rank
    std::deque<gptbuilder::v1::RankProgress> rank_events;
    uint64_t first_event_seq = 0;  // sequence number of rank_events.front()
    uint64_t version = 1;
  };
  static void Aggregate(Entry* entry);

  std::map<std::string, Entry> models_;
};

// The lower-case name of a state for metrics and tables ("building", "ready", ...).
const char* ModelStateName(gptbuilder::v1::Model::State state);
// The progress-bar key of a phase ("process_groups", ...), "" for unspecified.
const char* PhaseKey(gptbuilder::v1::BuildPhase phase);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_MODEL_REGISTRY_H_
