#ifndef GPTB_SERVER_COMMON_METRIC_NAMES_H_
#define GPTB_SERVER_COMMON_METRIC_NAMES_H_

// Every metric the daemons export on /metrics, with its labels. Dashboards and alert rules are
// written against these names; change them only with the dashboards. Naming follows Prometheus:
// the gptb_ prefix, base units (seconds, bytes), _total for counters, histograms for durations,
// and no per-request, per-model-name or per-tensor labels.

namespace gptb::metrics {

// ---- Both daemons ------------------------------------------------------------------------------
// gauge 1 {version, role="coordinator"|"worker", backend="gloo"|"nccl"}
inline constexpr char kBuildInfo[] = "gptb_build_info";
// counter {grpc_service, grpc_method, grpc_type}: RPCs started.
inline constexpr char kGrpcStarted[] = "grpc_server_started_total";
// counter {grpc_service, grpc_method, grpc_type, grpc_code}: RPCs completed, by status code.
inline constexpr char kGrpcHandled[] = "grpc_server_handled_total";
// histogram {grpc_service, grpc_method, grpc_type}: seconds from receipt to status.
inline constexpr char kGrpcHandlingSeconds[] = "grpc_server_handling_seconds";
// gauge: resident set size of the daemon (VmRSS).
inline constexpr char kProcessResidentMemory[] = "process_resident_memory_bytes";
// gauge: Unix time the daemon started.
inline constexpr char kProcessStartTime[] = "process_start_time_seconds";
// counter: user + system CPU seconds.
inline constexpr char kProcessCpuSeconds[] = "process_cpu_seconds_total";

// ---- Coordinator ---------------------------------------------------------------------------
// histogram {phase = validate|plan|rendezvous|process_groups|construct|init|wrap}: seconds per
// build; rank phases take the slowest rank.
inline constexpr char kBuildPhaseSeconds[] = "gptb_build_phase_duration_seconds";
// histogram {result = ready|failed|cancelled}: seconds from BuildModel to the end of the build.
inline constexpr char kBuildSeconds[] = "gptb_build_duration_seconds";
// counter {result = ready|failed|cancelled}
inline constexpr char kBuilds[] = "gptb_builds_total";
// counter {code}: BuildModel requests rejected before anything was allocated
// (INVALID_ARGUMENT, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ALREADY_EXISTS).
inline constexpr char kBuildsRejected[] = "gptb_build_rejections_total";
// gauge {state = building|ready|failed|releasing|recovering}
inline constexpr char kModels[] = "gptb_models";
// gauge {state = ready|lost}
inline constexpr char kWorkers[] = "gptb_workers";
// gauge {state = free|used}: slots over all registered workers.
inline constexpr char kSlots[] = "gptb_slots";
// gauge {worker}: seconds since the worker's last heartbeat.
inline constexpr char kWorkerHeartbeatAge[] = "gptb_worker_heartbeat_age_seconds";
// counter: workers that stopped heart-beating within the timeout.
inline constexpr char kWorkersLost[] = "gptb_workers_lost_total";
// histogram: seconds per train step of a model, over its slowest rank.
inline constexpr char kTrainStepSeconds[] = "gptb_train_step_duration_seconds";
// counter {result = ok|failed|rejected}: train steps by outcome (rejected: a bad request that
// left the model untouched).
inline constexpr char kTrainSteps[] = "gptb_train_steps_total";
// counter: tokens trained on (global batch tokens of every successful step).
inline constexpr char kTrainTokens[] = "gptb_train_tokens_total";
// gauge: the last successful step's throughput (global batch tokens per second).
inline constexpr char kTrainTokensPerSecond[] = "gptb_train_tokens_per_second";
// gauge: the last successful step's LM loss.
inline constexpr char kTrainLoss[] = "gptb_train_loss";
// counter {result = ok|failed}: SaveCheckpoint calls.
inline constexpr char kCheckpointSaves[] = "gptb_checkpoint_saves_total";
// histogram: seconds per successful checkpoint save.
inline constexpr char kCheckpointSaveSeconds[] = "gptb_checkpoint_save_duration_seconds";
// counter: bytes written by successful checkpoint saves (over all ranks).
inline constexpr char kCheckpointSaveBytes[] = "gptb_checkpoint_save_bytes_total";

// ---- Worker --------------------------------------------------------------------------------
// gauge: parameters (elements) held over every rank of this worker.
inline constexpr char kHeldParameters[] = "gptb_worker_held_parameters";
// gauge {kind = parameters|gradients}: bytes held over every rank of this worker.
inline constexpr char kHeldBytes[] = "gptb_worker_held_bytes";
// gauge: models this worker holds ranks of.
inline constexpr char kHeldModels[] = "gptb_worker_held_models";
// gauge {state = free|building|holding}: this worker's slots.
inline constexpr char kWorkerSlots[] = "gptb_worker_slots";
// histogram {phase = process_groups|construct|init|wrap}: seconds per rank.
inline constexpr char kRankPhaseSeconds[] = "gptb_rank_build_phase_duration_seconds";
// counter {result = ready|failed|cancelled}: rank builds finished on this worker.
inline constexpr char kRankBuilds[] = "gptb_rank_builds_total";
// counter: ranks released (by ReleaseModel, a failed build or cancellation).
inline constexpr char kRanksReleased[] = "gptb_ranks_released_total";
// gauge: 1 while registered with the coordinator (its last heartbeat succeeded), else 0.
inline constexpr char kWorkerRegistered[] = "gptb_worker_registered";

}  // namespace gptb::metrics

#endif  // GPTB_SERVER_COMMON_METRIC_NAMES_H_
