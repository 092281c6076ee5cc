#include "core/checkpoint/checkpoint_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/posix_file.h"
#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/safetensors_reader.h"
#include "core/config/violations.h"

namespace gptb::checkpoint {
namespace {

constexpr size_t kMaxPathBytes = 4096;

// Debian's Abseil has its own string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Join(const std::string& directory, std::string_view name) {
  return directory == "/" ? absl::StrCat("/", A(name)) : absl::StrCat(directory, "/", A(name));
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// realpath(3) as a status.
absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (::realpath(path.c_str(), buffer) == nullptr) return FileError(errno, "resolving", path);
  return std::string(buffer);
}

absl::Status OutsideRoot(const std::string& path, const std::string& root) {
  return absl::PermissionDeniedError(
      absl::StrCat(Excerpt(path, 512), " is outside the checkpoint root ", root,
                   " (--checkpoint-root); checkpoints are read and written only inside it"));
}

// The directory's entries (no "." or ".."), at most kMaxScannedEntries.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return FileError(errno, "listing", path);
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (name == "." || name == "..") continue;
    if (static_cast<int>(names.size()) >= kMaxScannedEntries) break;
    names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

// lstat(2): the entry itself, never what a link points to.
bool LinkStat(const std::string& path, struct stat* st) { return ::lstat(path.c_str(), st) == 0; }

// Removes the regular files (and links) directly inside `path`, then `path`. Never recurses: a
// directory a save made never holds directories, so finding one means it is not ours to empty.
absl::Status RemoveFlatDirectory(const std::string& path) {
  const int dir_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return FileError(errno, "opening", path);
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(path);
  if (names.ok()) {
    for (const std::string& name : *names) {
      struct stat st;
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) continue;
      ::unlinkat(dir_fd, name.c_str(), 0);
    }
  }
  ::close(dir_fd);
  if (::rmdir(path.c_str()) != 0) return FileError(errno, "removing", path);
  return absl::OkStatus();
}

// rename(2) that never replaces: renameat2(RENAME_NOREPLACE) where the filesystem supports it,
// else a check then rename (a directory can only replace an empty directory, so the window can
// at worst remove an empty directory someone made in between).
int RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  struct stat st;
  if (LinkStat(to, &st)) {
    errno = EEXIST;
    return -1;
  }
  return std::rename(from.c_str(), to.c_str());
}

void SyncDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse directory fds
  ::fsync(fd);
  ::close(fd);
}

bool IsShardFileName(std::string_view name) {
  // model-00001-of-00003.safetensors
  if (name.size() != std::string_view("model-00001-of-00003.safetensors").size()) return false;
  if (!absl::StartsWith(A(name), "model-") || !absl::EndsWith(A(name), ".safetensors")) {
    return false;
  }
  if (name.substr(11, 4) != "-of-") return false;
  for (size_t i : {6, 7, 8, 9, 10, 15, 16, 17, 18, 19}) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

bool IsCheckpointFileName(std::string_view name) {
  return name == kSingleFileName || name == kIndexFileName || name == "config.json" ||
         IsShardFileName(name);
}

absl::Status NotReplaceable(const std::string& path, const std::string& why) {
  return absl::FailedPreconditionError(absl::StrCat(
      Excerpt(path, 512), " is not a checkpoint gptbuilder saved (", why,
      "); overwrite replaces only such a checkpoint, so it was left as it is: choose another "
      "path or remove it yourself"));
}

// The save token in a sibling name `.<name><infix><16 hex>`, and the name.
bool ParseSibling(std::string_view entry, std::string_view infix, std::string* name,
                  std::string* token) {
  if (entry.empty() || entry.front() != '.') return false;
  const size_t at = entry.rfind(infix);
  if (at == std::string_view::npos || at < 2) return false;
  const std::string_view hex = entry.substr(at + infix.size());
  if (hex.size() != 16) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  *name = std::string(entry.substr(1, at - 1));
  *token = std::string(hex);
  return true;
}

// Whether the save whose staging directory is `staging` still runs (someone holds its lock).
// A staging directory without a lock file is about to be published (or was): running.
bool SaveRunning(const std::string& staging) {
  const std::string lock = Join(staging, kSaveLockFile);
  const int fd = ::open(lock.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

}  // namespace

uint64_t NewSaveToken() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t token = 0;
  while (token == 0) token = rng() & ((uint64_t{1} << 62) - 1);
  return token;
}

std::string SaveTarget::SiblingPath(std::string_view infix, uint64_t token) const {
  return Join(parent, absl::StrCat(".", name, A(infix), absl::Hex(token, absl::kZeroPad16)));
}

absl::Status CheckCheckpointPath(std::string_view path, std::string_view field) {
  auto invalid = [&](std::string_view why) {
    config::Violations violations;
    violations.Add(std::string(field), "INVALID_PATH",
                   absl::StrCat("'", Excerpt(path, 256), "' ", A(why)));
    return violations.ToStatus();
  };
  if (path.empty() || path.front() != '/') return invalid("is not an absolute path");
  if (path.size() > kMaxPathBytes) {
    return invalid(absl::StrCat("is longer than ", kMaxPathBytes, " bytes"));
  }
  if (path.find('\0') != std::string_view::npos) return invalid("contains a NUL byte");
  std::string_view rest = path.substr(1);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return invalid("names the root directory, not a checkpoint");
  for (absl::string_view part : absl::StrSplit(A(rest), '/')) {
    if (part.empty()) return invalid("has an empty component ('//')");
    if (part == "." || part == "..") {
      return invalid(
          "has a '.' or '..' component; name the checkpoint by its plain absolute path (a path "
          "through '..' depends on what its earlier components are, and saving would create them)");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckReadPath(const std::string& path, const std::string& root) {
  if (absl::Status s = CheckCheckpointPath(path, "load_from"); !s.ok()) return s;
  if (root.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> resolved_root = ResolveRoot(root);
  if (!resolved_root.ok()) return resolved_root.status();
  const std::string clean = StripTrailingSlashes(path);
  if (!IsWithin(clean, StripTrailingSlashes(root)) && !IsWithin(clean, *resolved_root)) {
    return OutsideRoot(path, root);
  }
  // The longest prefix that exists, resolved, must stay inside (a missing rest cannot escape).
  std::string prefix = clean;
  while (true) {
    absl::StatusOr<std::string> real = RealPath(prefix);
    if (real.ok()) {
      if (!IsWithin(*real, *resolved_root)) return OutsideRoot(path, root);
      return absl::OkStatus();
    }
    const size_t slash = prefix.rfind('/');
    if (slash == std::string::npos || slash == 0) return absl::OkStatus();
    prefix.resize(slash);
  }
}

absl::StatusOr<SaveTarget> ResolveSaveTarget(const std::string& requested, const std::string& root,
                                             bool create_parents) {
  if (absl::Status s = CheckCheckpointPath(requested); !s.ok()) return s;
  const std::string path = StripTrailingSlashes(requested);
  const size_t slash = path.rfind('/');
  SaveTarget target;
  target.name = path.substr(slash + 1);
  const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  if (absl::StrContains(target.name, A(kPartialInfix)) ||
      absl::StrContains(target.name, A(kOldInfix))) {
    config::Violations violations;
    violations.Add("path", "INVALID_PATH",
                   absl::StrCat("the checkpoint name '", Excerpt(target.name, 128), "' contains '",
                                A(kPartialInfix), "' or '", A(kOldInfix),
                                "', which name gptbuilder's own working directories"));
    return violations.ToStatus();
  }
  std::string resolved_root;
  if (!root.empty()) {
    absl::StatusOr<std::string> r = ResolveRoot(root);
    if (!r.ok()) return r.status();
    resolved_root = *r;
    if (!IsWithin(path, StripTrailingSlashes(root)) && !IsWithin(path, resolved_root)) {
      return OutsideRoot(path, root);
    }
  }
  // The longest existing prefix of the parent, then the components to create below it.
  std::string existing = parent;
  std::vector<std::string> missing;
  absl::StatusOr<std::string> real = RealPath(existing);
  while (!real.ok()) {
    if (real.status().code() != absl::StatusCode::kNotFound || existing == "/") {
      return real.status();
    }
    const size_t cut = existing.rfind('/');
    missing.push_back(existing.substr(cut + 1));
    existing = cut == 0 ? "/" : existing.substr(0, cut);
    real = RealPath(existing);
  }
  if (!resolved_root.empty() && !IsWithin(*real, resolved_root)) return OutsideRoot(path, root);
  if (missing.empty()) {
    struct stat st;
    if (::stat(real->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(Excerpt(parent, 512), " is not a directory"));
    }
    target.parent = *real;
    return target;
  }
  if (!create_parents) {
    return absl::NotFoundError(
        absl::StrCat("the directory ", Excerpt(parent, 512), " does not exist"));
  }
  int fd = ::open(real->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "opening", *real);
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdirat(fd, it->c_str(), 0755) != 0 && errno != EEXIST) {
      const int error = errno;
      ::close(fd);
      return FileError(error, "creating", Join(existing, *it));
    }
    const int next = ::openat(fd, it->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int error = errno;
    ::close(fd);
    existing = Join(existing, *it);
    if (next < 0) return FileError(error, "opening the new directory", existing);
    fd = next;
  }
  absl::StatusOr<std::string> opened = OpenedPath(fd);
  ::close(fd);
  if (!opened.ok()) return opened.status();
  if (!resolved_root.empty() && !IsWithin(*opened, resolved_root)) return OutsideRoot(path, root);
  target.parent = *opened;
  return target;
}

absl::StatusOr<StagingDirectory> StagingDirectory::Create(const SaveTarget& target,
                                                          uint64_t token) {
  const std::string path = target.StagingPath(token);
  if (::mkdir(path.c_str(), 0755) != 0) return FileError(errno, "creating", path);
  const std::string lock = Join(path, kSaveLockFile);
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const absl::Status status = FileError(errno, "locking", lock);
    if (fd >= 0) ::close(fd);
    (void)RemoveFlatDirectory(path);
    return status;
  }
  return StagingDirectory(path, fd);
}

StagingDirectory::StagingDirectory(StagingDirectory&& other) noexcept
    : path_(std::move(other.path_)), lock_fd_(std::exchange(other.lock_fd_, -1)) {}

StagingDirectory::~StagingDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status StagingDirectory::RemoveLockFile() {
  const std::string lock = Join(path_, kSaveLockFile);
  if (::unlink(lock.c_str()) != 0 && errno != ENOENT) return FileError(errno, "removing", lock);
  return absl::OkStatus();
}

absl::Status StagingDirectory::Remove() { return RemoveFlatDirectory(path_); }

absl::StatusOr<std::vector<std::string>> ReplaceableCheckpointFiles(const std::string& path) {
  struct stat st;
  if (!LinkStat(path, &st)) return FileError(errno, "examining", path);
  if (S_ISLNK(st.st_mode)) return NotReplaceable(path, "it is a symbolic link");
  if (!S_ISDIR(st.st_mode)) return NotReplaceable(path, "it is not a directory");
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(path);
  if (!names.ok()) return names.status();
  std::vector<std::string> foreign;
  std::set<std::string> shards;
  bool has_index = false, has_single = false;
  for (const std::string& name : *names) {
    struct stat entry;
    if (!IsCheckpointFileName(name) || !LinkStat(Join(path, name), &entry) ||
        !S_ISREG(entry.st_mode)) {
      foreign.push_back(absl::StrCat("'", Excerpt(name, 64), "'"));
      continue;
    }
    if (name == kIndexFileName) has_index = true;
    if (name == kSingleFileName) has_single = true;
    if (IsShardFileName(name)) shards.insert(name);
  }
  if (!foreign.empty()) {
    if (foreign.size() > 3) {
      const size_t more = foreign.size() - 3;
      foreign.resize(3);
      foreign.push_back(absl::StrCat("and ", more, " more"));
    }
    return NotReplaceable(path, absl::StrCat("it holds ", absl::StrJoin(foreign, ", "),
                                             ", which a gptbuilder save does not write"));
  }
  std::string first;
  if (has_index) {
    absl::StatusOr<SafetensorsIndex> index = ReadIndexFile(Join(path, kIndexFileName));
    if (!index.ok()) return NotReplaceable(path, "its index does not read");
    std::set<std::string> indexed;
    for (const auto& [tensor, file] : index->weight_map) indexed.insert(file);
    if (indexed != shards || has_single) {
      return NotReplaceable(path, "its files are not the ones its index names");
    }
    if (shards.empty()) return NotReplaceable(path, "its index names no files");
    first = *shards.begin();
  } else {
    if (!has_single || !shards.empty()) {
      return NotReplaceable(path, "it has no model.safetensors");
    }
    first = std::string(kSingleFileName);
  }
  ReaderOptions options;
  options.mode = ReadMode::kPread;
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(Join(path, first), options);
  if (!reader.ok()) return NotReplaceable(path, "its safetensors files do not read");
  const std::map<std::string, std::string>& metadata = (*reader)->metadata();
  const auto value = [&](const char* key) {
    auto it = metadata.find(key);
    return it == metadata.end() ? std::string() : it->second;
  };
  if (value(kWriterKey) != kWriterName && value(kFormatKey) != kCanonicalFormatName) {
    return NotReplaceable(path, "its safetensors metadata does not name gptbuilder as the writer");
  }
  return *std::move(names);
}

absl::Status PublishStaging(const std::string& staging, const SaveTarget& target, bool overwrite,
                            uint64_t token, bool sync) {
  const std::string final_path = target.path();
  auto already_exists = [&] {
    return absl::AlreadyExistsError(absl::StrCat(
        Excerpt(final_path, 512),
        " already exists; choose another path, or set overwrite to replace a checkpoint "
        "gptbuilder saved there"));
  };
  if (RenameNoReplace(staging, final_path) == 0) {
    if (sync) SyncDirectory(target.parent);
    return absl::OkStatus();
  }
  if (errno != EEXIST && errno != ENOTEMPTY) {
    return FileError(errno, absl::StrCat("moving the checkpoint into place from ", staging, " to"),
                     final_path);
  }
  if (!overwrite) return already_exists();
  absl::StatusOr<std::vector<std::string>> files = ReplaceableCheckpointFiles(final_path);
  if (!files.ok()) return files.status();
  const std::string old = target.SiblingPath(kOldInfix, token);
  if (RenameNoReplace(final_path, old) != 0) {
    return FileError(errno, "moving the previous checkpoint aside from", final_path);
  }
  if (RenameNoReplace(staging, final_path) != 0) {
    const absl::Status status = FileError(errno, "moving the checkpoint into", final_path);
    (void)RenameNoReplace(old, final_path);
    return status;
  }
  if (sync) SyncDirectory(target.parent);
  // The previous checkpoint's verified files, by name: unlinkat never follows a link, and a
  // directory that appeared meanwhile is not removed.
  const int old_fd = ::open(old.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (old_fd >= 0) {
    for (const std::string& name : *files) ::unlinkat(old_fd, name.c_str(), 0);
    ::close(old_fd);
    ::rmdir(old.c_str());
  }
  return absl::OkStatus();
}

int CleanStaleSaves(const std::string& directory) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(directory);
  if (!names.ok()) return 0;
  int cleaned = 0;
  for (const std::string& entry : *names) {
    std::string name, token;
    const std::string path = Join(directory, entry);
    struct stat st;
    if (ParseSibling(entry, kPartialInfix, &name, &token)) {
      if (!LinkStat(path, &st) || !S_ISDIR(st.st_mode)) continue;
      // A lock file nobody holds: the save that made it is gone.
      const std::string lock = Join(path, kSaveLockFile);
      const int fd = ::open(lock.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && RemoveFlatDirectory(path).ok()) ++cleaned;
      ::close(fd);
    } else if (ParseSibling(entry, kOldInfix, &name, &token)) {
      if (!LinkStat(path, &st) || !S_ISDIR(st.st_mode)) continue;
      // A replacement in flight still holds its partial's lock.
      const std::string partial = Join(directory, absl::StrCat(".", name, A(kPartialInfix), token));
      struct stat partial_st;
      if (LinkStat(partial, &partial_st) && SaveRunning(partial)) continue;
      const std::string final_path = Join(directory, name);
      struct stat existing;
      if (!LinkStat(final_path, &existing)) {
        // Interrupted between moving the old checkpoint aside and the new one in: put it back.
        if (RenameNoReplace(path, final_path) == 0) ++cleaned;
        continue;
      }
      absl::StatusOr<std::vector<std::string>> files = ReplaceableCheckpointFiles(path);
      if (!files.ok()) continue;
      const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;
      for (const std::string& file : *files) ::unlinkat(fd, file.c_str(), 0);
      ::close(fd);
      if (::rmdir(path.c_str()) == 0) ++cleaned;
    }
  }
  return cleaned;
}

int CleanStaleSavesUnder(const std::string& root, int max_depth, int max_directories) {
  int cleaned = 0, visited = 0;
  std::deque<std::pair<std::string, int>> queue = {{root, 0}};
  while (!queue.empty() && visited < max_directories) {
    auto [directory, depth] = queue.front();
    queue.pop_front();
    ++visited;
    cleaned += CleanStaleSaves(directory);
    if (depth >= max_depth) continue;
    absl::StatusOr<std::vector<std::string>> names = ListDirectory(directory);
    if (!names.ok()) continue;
    for (const std::string& entry : *names) {
      std::string name, token;
      if (ParseSibling(entry, kPartialInfix, &name, &token) ||
          ParseSibling(entry, kOldInfix, &name, &token)) {
        continue;
      }
      const std::string path = Join(directory, entry);
      struct stat st;
      if (LinkStat(path, &st) && S_ISDIR(st.st_mode)) queue.push_back({path, depth + 1});
    }
  }
  return cleaned;
}

}  // namespace gptb::checkpoint
