#ifndef GPTB_CLIENTS_CLI_MODEL_FORMAT_H_
#define GPTB_CLIENTS_CLI_MODEL_FORMAT_H_

#include <string>

#include "gptbuilder/v1/coordinator.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::cli {

// `gptb describe --format json`: DESIGN.md's contract, the `gptb plan --format json` shape read
// from the workers: padded_vocab_size, world_size, stages (core/plan StageToJson: every key a
// plan's stage has, each parameter with its checksum as 16 hex digits), plus ranks (where each
// rank runs, its stage indices and bytes), model, state and inconsistent_stages.
nlohmann::json DescribeToJson(const gptbuilder::v1::DescribeModelResponse& described);
std::string DescribeToTable(const gptbuilder::v1::DescribeModelResponse& described);

std::string ModelsToTable(const gptbuilder::v1::ListModelsResponse& models);
std::string WorkersToTable(const gptbuilder::v1::ListWorkersResponse& workers);
// One model: state, reason, placement and progress, for people.
std::string ModelToText(const gptbuilder::v1::Model& model);
// Any message as JSON with the proto field names (models, workers, operations).
std::string MessageToJson(const google::protobuf::Message& message, bool multiline = true);

// "READY", "BUILDING", ...
std::string StateName(gptbuilder::v1::Model::State state);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_MODEL_FORMAT_H_
