#ifndef GPTB_CORE_CHECKPOINT_CHECKPOINT_DIRECTORY_H_
#define GPTB_CORE_CHECKPOINT_CHECKPOINT_DIRECTORY_H_

// Where a service reads and writes checkpoints at paths its clients name, so that a save never
// touches data it did not create and a load reads nothing outside what it is allowed to.
//
// A save writes into a fresh sibling of its target, `.<name>.gptb-partial-<token>`, created
// exclusively (mkdir fails on any existing name) with a lock file whose flock(2) the writer holds
// for the whole save. Once every rank wrote its slices the sibling is renamed to the target,
// refusing to replace anything (RENAME_NOREPLACE) unless the save asked to overwrite; then only an
// existing *gptbuilder checkpoint* is replaced: a directory that holds nothing but the files a
// save writes, whose safetensors metadata says gptbuilder wrote them. The old checkpoint is moved
// to `.<name>.gptb-old-<token>` first and its verified files removed after the new one is in
// place. A save that crashed leaves its partial with a lock nobody holds: the next save into the
// same directory (or a worker starting with a checkpoint root) removes it.
//
// With a checkpoint root, every path must resolve inside it after symlinks; files are opened so
// that a FIFO or device cannot block (core/checkpoint/posix_file.h).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gptb::checkpoint {

inline constexpr std::string_view kPartialInfix = ".gptb-partial-";
inline constexpr std::string_view kOldInfix = ".gptb-old-";
inline constexpr std::string_view kSaveLockFile = ".gptb-save.lock";
// Every safetensors file a save writes carries it (next to the canonical format's gptb_format).
inline constexpr char kWriterKey[] = "gptb_writer";
inline constexpr char kWriterName[] = "gptbuilder";
// Most entries a directory scan looks at (a stale-save sweep, a replaceable-checkpoint check).
inline constexpr int kMaxScannedEntries = 100000;

// A path as a client may give it: absolute, at most 4096 bytes, no NUL, and no empty, "." or ".."
// component (a trailing '/' is allowed): `x/../ck` would resolve through `x`, and creating the
// missing parents of such a path would create `x`. INVALID_ARGUMENT naming `field`.
absl::Status CheckCheckpointPath(std::string_view path, std::string_view field = "path");

// For reading: `path` (checked as above) must resolve inside `root` when one is set. A path not
// even lexically inside the root is refused without looking at the filesystem (so nothing is
// learnt about files outside it). PERMISSION_DENIED naming the root otherwise.
absl::Status CheckReadPath(const std::string& path, const std::string& root);

// Where a save's checkpoint goes.
struct SaveTarget {
  std::string parent;  // the parent directory, symlinks resolved
  std::string name;    // the checkpoint's own directory name
  std::string path() const { return parent == "/" ? "/" + name : parent + "/" + name; }
  std::string SiblingPath(std::string_view infix, uint64_t token) const;
  std::string StagingPath(uint64_t token) const { return SiblingPath(kPartialInfix, token); }
};

// Resolves a save's `path` (CheckCheckpointPath): its parent must resolve inside `root` when one
// is set. With `create_parents`, missing parent directories are created one at a time, each
// opened without following symlinks right after, so nothing is created through a link that
// appears meanwhile and nothing outside the root.
absl::StatusOr<SaveTarget> ResolveSaveTarget(const std::string& path, const std::string& root,
                                             bool create_parents);

// A save's staging directory, created exclusively, holding the lock that marks the save as
// running until Release (or the process ends).
class StagingDirectory {
 public:
  static absl::StatusOr<StagingDirectory> Create(const SaveTarget& target, uint64_t token);
  StagingDirectory(StagingDirectory&& other) noexcept;
  StagingDirectory& operator=(StagingDirectory&& other) = delete;
  StagingDirectory(const StagingDirectory&) = delete;
  ~StagingDirectory();

  const std::string& path() const { return path_; }
  // Removes the lock file (before the directory becomes the checkpoint); the lock itself is
  // kept until destruction.
  absl::Status RemoveLockFile();
  // Removes what the save wrote (the regular files directly inside; it never makes more) and the
  // directory itself.
  absl::Status Remove();

 private:
  StagingDirectory(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}
  std::string path_;
  int lock_fd_ = -1;
};

// The entries of `path` when it is a checkpoint a gptbuilder save may replace: a directory (not
// a link) holding only regular files a save writes (model.safetensors, or
// model.safetensors.index.json and exactly the shards it names; config.json), whose first
// safetensors file's metadata names gptbuilder as the writer. FAILED_PRECONDITION saying what
// disqualifies it otherwise; NOT_FOUND when nothing is there.
absl::StatusOr<std::vector<std::string>> ReplaceableCheckpointFiles(const std::string& path);

// Makes `staging` the checkpoint at target.path(). Without `overwrite`, ALREADY_EXISTS when
// anything is there. With it, an existing ReplaceableCheckpointFiles directory is swapped out
// (and its files removed); anything else is FAILED_PRECONDITION and left alone.
absl::Status PublishStaging(const std::string& staging, const SaveTarget& target, bool overwrite,
                            uint64_t token, bool sync);

// Removes, in `directory`, partials of saves that no longer run (their lock is free), and
// restores or removes what an interrupted replacement left. Best effort: returns how many
// entries it cleaned.
int CleanStaleSaves(const std::string& directory);

// CleanStaleSaves in `root` and the directories below it, at most `max_depth` levels down and
// `max_directories` directories in all, never following symlinks (a worker's start-up sweep of
// its checkpoint root).
int CleanStaleSavesUnder(const std::string& root, int max_depth = 4, int max_directories = 10000);

// A fresh random token for sibling names.
uint64_t NewSaveToken();

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_CHECKPOINT_DIRECTORY_H_
