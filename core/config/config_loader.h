#ifndef GPTB_CORE_CONFIG_CONFIG_LOADER_H_
#define GPTB_CORE_CONFIG_CONFIG_LOADER_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/config/loaded_config.h"

namespace gptb::config {

enum class ConfigFormat { kAuto, kYaml, kJson, kTextProto };

// By name: "yaml", "json", "textproto", and "" or "auto" for kAuto; nullopt for anything else.
std::optional<ConfigFormat> ConfigFormatByName(std::string_view name);

// Bounds on a YAML or JSON document, aliases expanded (LIMIT_EXCEEDED beyond them), so that a
// short text cannot make the loader do unbounded work (config text arrives over the wire): a
// real config has a few hundred values and nests a handful of levels (a custom layer spec tree a
// few more).
inline constexpr int kMaxConfigValues = 20000;
inline constexpr int kMaxConfigDepth = 64;
// `--set`-style overrides sent with a config text (ConfigText.overrides; the text itself is
// bounded by kMaxConfigTextBytes in core/config/limits.h).
inline constexpr int kMaxConfigOverrides = 1000;

// By extension: .yaml/.yml, .json, .textproto/.txtpb/.pbtxt; kAuto for anything else.
ConfigFormat FormatFromPath(const std::string& path);

// By content: JSON when the first non-blank, non-comment character is '{'; text proto when some
// line opens a message as `name {` (or `name <`); YAML otherwise.
ConfigFormat DetectFormat(std::string_view text);

// Loads a model config as written by a user: GPTModelConfig fields at the top level, the
// TransformerConfig under `transformer:`, and the optional `ddp:` (DistributedDataParallelConfig)
// and `build:` (BuildOptions) sections. YAML and JSON go through one reflection-based converter
// (core/config/message_tree.h, which documents the value rules); text proto is the
// GPTModelConfig text format with `ddp { ... }` / `build { ... }` allowed at the top. A JSON or
// YAML document with a top-level `model_type` is a Hugging Face config.json and is imported
// (core/config/hf_import.h).
//
// The result is not finalized (see Finalize / FinalizeLoaded). Problems in the document are
// INVALID_ARGUMENT with one BadRequest violation each (syntax errors name the source and the
// line); an unreadable file is NOT_FOUND.
absl::StatusOr<LoadedConfig> LoadConfigFile(const std::string& path);

// The same from text; `source_name` is used in messages (e.g. the file name).
absl::StatusOr<LoadedConfig> LoadConfigText(std::string_view text,
                                            ConfigFormat format = ConfigFormat::kAuto,
                                            const std::string& source_name = "config");

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_CONFIG_LOADER_H_
