// Checkpoint paths that never touch other data (issue 13): a save's staging directory is fresh
// and exclusive, publishing never replaces anything but a checkpoint gptbuilder saved, paths
// through '..' or outside a root are refused, crashed saves are cleaned, and reading never
// blocks on a FIFO or echoes what a file holds.

#include "core/checkpoint/checkpoint_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/checkpoint/checkpoint_reader.h"
#include "core/checkpoint/posix_file.h"
#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/sharded_safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "SECRET-CONTENT-0123456789";

class CheckpointDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("gptb_ckdir_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
    fs::create_directories(root_);
    root_ = fs::canonical(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Path(const std::string& name) const { return (root_ / name).string(); }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // A one-file checkpoint as a gptbuilder save leaves it, staged and published at `path`.
  absl::Status Save(const std::string& path, bool overwrite, const std::string& root = "") {
    absl::StatusOr<SaveTarget> target = ResolveSaveTarget(path, root, true);
    if (!target.ok()) return target.status();
    const uint64_t token = NewSaveToken();
    absl::StatusOr<StagingDirectory> staging = StagingDirectory::Create(*target, token);
    if (!staging.ok()) return staging.status();
    absl::StatusOr<std::vector<ShardPlan>> shards =
        PlanShards({{"w", DType::kFloat32, {2}}}, 1 << 20);
    if (!shards.ok()) return shards.status();
    WriterOptions options;
    options.exclusive = true;
    auto writer = ShardedSafetensorsWriter::Create(staging->path(), *shards,
                                                   {{kWriterKey, kWriterName}}, {}, options);
    if (!writer.ok()) return writer.status();
    const float data[2] = {1, 2};
    if (absl::Status s = (*writer)->WriteTensor("w", data); !s.ok()) return s;
    if (absl::Status s = (*writer)->Finish(false); !s.ok()) return s;
    writer->reset();
    if (absl::Status s = staging->RemoveLockFile(); !s.ok()) return s;
    absl::Status published = PublishStaging(staging->path(), *target, overwrite, token, false);
    if (!published.ok()) (void)staging->Remove();
    return published;
  }

  int Entries(const fs::path& dir) const {
    int n = 0;
    for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
    return n;
  }

  fs::path root_;
};

TEST_F(CheckpointDirectoryTest, PathsThroughDotDotAreRefusedAndCreateNothing) {
  const absl::Status s = Save(Path("x/../ck"), false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'..'"));
  EXPECT_FALSE(fs::exists(Path("x")));
  EXPECT_FALSE(fs::exists(Path("ck")));
  EXPECT_FALSE(CheckCheckpointPath("relative/ck").ok());
  EXPECT_FALSE(CheckCheckpointPath("/a//b").ok());
  EXPECT_FALSE(CheckCheckpointPath("/a/./b").ok());
  EXPECT_FALSE(CheckCheckpointPath("/").ok());
  EXPECT_TRUE(CheckCheckpointPath("/a/b/").ok());
}

TEST_F(CheckpointDirectoryTest, ASaveCreatesMissingParentsAndLeavesOnlyTheCheckpoint) {
  ASSERT_TRUE(Save(Path("runs/a/ck"), false).ok());
  EXPECT_TRUE(fs::exists(Path("runs/a/ck/model.safetensors")));
  EXPECT_EQ(Entries(Path("runs/a")), 1);     // no staging or lock left behind
  EXPECT_EQ(Entries(Path("runs/a/ck")), 1);  // model.safetensors only
}

TEST_F(CheckpointDirectoryTest, WithoutOverwriteNothingIsReplacedAndNeighboursStay) {
  fs::create_directories(Path("data"));
  Write(Path("data/keep.txt"), "mine");
  fs::create_directories(Path("ck.partial"));  // an unrelated directory a save used to remove
  Write(Path("ck.partial/keep.txt"), "mine too");
  Write(Path("ck.old"), "and this");
  const absl::Status s = Save(Path("data"), false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(Save(Path("ck"), false).ok());
  EXPECT_EQ(Read(Path("data/keep.txt")), "mine");
  EXPECT_EQ(Read(Path("ck.partial/keep.txt")), "mine too");
  EXPECT_EQ(Read(Path("ck.old")), "and this");
  EXPECT_EQ(Save(Path("ck"), false).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(CheckpointDirectoryTest, OverwriteReplacesOnlyACheckpointGptbuilderSaved) {
  // An ordinary directory and an ordinary file are refused, untouched.
  fs::create_directories(Path("data"));
  Write(Path("data/keep.txt"), "mine");
  absl::Status s = Save(Path("data"), true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("keep.txt"));
  EXPECT_EQ(Read(Path("data/keep.txt")), "mine");
  Write(Path("file"), "mine");
  EXPECT_EQ(Save(Path("file"), true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read(Path("file")), "mine");
  // A symbolic link to a checkpoint is not replaced either (nor what it points to).
  ASSERT_TRUE(Save(Path("real"), false).ok());
  fs::create_directory_symlink(Path("real"), Path("link"));
  EXPECT_EQ(Save(Path("link"), true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::is_symlink(Path("link")));
  // A safetensors file someone else wrote (no gptbuilder writer key) is not ours.
  fs::create_directories(Path("theirs"));
  ASSERT_TRUE(SafetensorsWriter::Create(Path("theirs/model.safetensors"),
                                        {{"w", DType::kFloat32, {1}}}, {{"format", "pt"}})
                  .ok());
  EXPECT_EQ(Save(Path("theirs"), true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(Path("theirs/model.safetensors")));
  // A checkpoint gptbuilder saved is replaced, and nothing else is left behind.
  ASSERT_TRUE(Save(Path("ck"), false).ok());
  ASSERT_TRUE(Save(Path("ck"), true).ok());
  EXPECT_EQ(Entries(Path("ck")), 1);
  // ... unless someone added a file of their own to it.
  Write(Path("ck/notes.txt"), "mine");
  EXPECT_EQ(Save(Path("ck"), true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read(Path("ck/notes.txt")), "mine");
  int stray = 0;
  for (const auto& e : fs::directory_iterator(root_)) {
    stray += e.path().filename().string().find(".gptb-") != std::string::npos;
  }
  EXPECT_EQ(stray, 0);
}

TEST_F(CheckpointDirectoryTest, TheStagingDirectoryIsExclusive) {
  absl::StatusOr<SaveTarget> target = ResolveSaveTarget(Path("ck"), "", true);
  ASSERT_TRUE(target.ok());
  // Something already at the staging name (planted, or a token collision) is never reused.
  fs::create_directories(target->StagingPath(42));
  Write(target->StagingPath(42) + "/model.safetensors", "planted");
  EXPECT_FALSE(StagingDirectory::Create(*target, 42).ok());
  EXPECT_EQ(Read(target->StagingPath(42) + "/model.safetensors"), "planted");
}

TEST_F(CheckpointDirectoryTest, ACrashedSavesPartialIsCleanedARunningOneIsNot) {
  absl::StatusOr<SaveTarget> target = ResolveSaveTarget(Path("ck"), "", true);
  ASSERT_TRUE(target.ok());
  {
    // A save that "crashed": its lock is released with its process (here: its object).
    absl::StatusOr<StagingDirectory> crashed = StagingDirectory::Create(*target, 1);
    ASSERT_TRUE(crashed.ok());
    Write(crashed->path() + "/model.safetensors", std::string(1 << 16, 'x'));
  }
  absl::StatusOr<StagingDirectory> running = StagingDirectory::Create(*target, 2);
  ASSERT_TRUE(running.ok());
  // Not ours at all: no lock file.
  fs::create_directories(target->StagingPath(3));
  EXPECT_EQ(CleanStaleSaves(root_.string()), 1);
  EXPECT_FALSE(fs::exists(target->StagingPath(1)));
  EXPECT_TRUE(fs::exists(target->StagingPath(2)));
  EXPECT_TRUE(fs::exists(target->StagingPath(3)));
  // The start-up sweep of a root finds them below it too.
  absl::StatusOr<SaveTarget> deep = ResolveSaveTarget(Path("a/b/ck"), "", true);
  ASSERT_TRUE(deep.ok());
  { ASSERT_TRUE(StagingDirectory::Create(*deep, 4).ok()); }
  EXPECT_EQ(CleanStaleSavesUnder(root_.string()), 1);
  EXPECT_FALSE(fs::exists(deep->StagingPath(4)));
}

TEST_F(CheckpointDirectoryTest, AnInterruptedReplacementIsRestored) {
  ASSERT_TRUE(Save(Path("ck"), false).ok());
  absl::StatusOr<SaveTarget> target = ResolveSaveTarget(Path("ck"), "", false);
  ASSERT_TRUE(target.ok());
  // Crashed between moving the old checkpoint aside and moving the new one in.
  fs::rename(Path("ck"), target->SiblingPath(kOldInfix, 9));
  EXPECT_EQ(CleanStaleSaves(root_.string()), 1);
  EXPECT_TRUE(fs::exists(Path("ck/model.safetensors")));
}

TEST_F(CheckpointDirectoryTest, ARootConfinesSavesAndLoadsAfterSymlinks) {
  const std::string root = Path("root");
  fs::create_directories(root);
  fs::create_directories(Path("outside"));
  fs::create_directory_symlink(Path("outside"), root + "/escape");
  absl::Status s = Save(root + "/escape/ck", false, root);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--checkpoint-root"));
  EXPECT_FALSE(fs::exists(Path("outside/ck")));
  EXPECT_EQ(Save(Path("elsewhere"), false, root).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(Path("elsewhere")));
  ASSERT_TRUE(Save(root + "/ck", false, root).ok());
  // Reads: lexically outside, or inside but resolving outside.
  ASSERT_TRUE(Save(Path("outside/ck"), false).ok());
  EXPECT_EQ(CheckReadPath("/etc/shadow", root).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckReadPath(root + "/escape/ck", root).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckReadPath(root + "/ck", root).ok());
  CheckpointOpenOptions open;
  open.root = root;
  EXPECT_EQ(CheckpointReader::Open(root + "/escape/ck", open).status().code(),
            absl::StatusCode::kPermissionDenied);
  // A file inside linking out is refused when opened.
  fs::create_directories(root + "/sneaky");
  fs::create_symlink(Path("outside/ck/model.safetensors"), root + "/sneaky/model.safetensors");
  EXPECT_EQ(CheckpointReader::Open(root + "/sneaky", open).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointDirectoryTest, AFifoIsRefusedWithoutBlocking) {
  const std::string fifo = Path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int> fd = OpenRegularFileForRead(fifo);
  EXPECT_FALSE(fd.ok());
  EXPECT_THAT(std::string(fd.status().message()), HasSubstr("not a regular file"));
  // A directory whose model.safetensors is a FIFO, read as a checkpoint.
  fs::create_directories(Path("ck"));
  ASSERT_EQ(::mkfifo(Path("ck/model.safetensors").c_str(), 0600), 0);
  EXPECT_FALSE(CheckpointReader::Open(Path("ck")).ok());
  fs::create_directories(Path("hf"));
  ASSERT_EQ(::mkfifo(Path("hf/model.safetensors.index.json").c_str(), 0600), 0);
  EXPECT_FALSE(CheckpointReader::Open(Path("hf")).ok());
  // No timing assertion: a blocking open would hang this test until ctest's timeout.
  (void)start;
}

TEST_F(CheckpointDirectoryTest, ErrorsNeverEchoWhatAFileHolds) {
  // As if load_from named /etc/shadow: text whose first bytes decode to some header length.
  const std::string text = std::string(kSecret) + ":$6$salt$hash:19000:0:99999:7:::\n";
  Write(Path("shadow"), text);
  absl::StatusOr<std::unique_ptr<CheckpointReader>> r = CheckpointReader::Open(Path("shadow"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("SECRET")));
  // The same bytes after a small valid header length: a JSON parse error.
  std::string file(8, '\0');
  file[0] = static_cast<char>(text.size());
  file += text;
  Write(Path("bad.safetensors"), file);
  r = CheckpointReader::Open(Path("bad.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("SECRET")));
  // An index that is not JSON, and one whose values are not file names.
  fs::create_directories(Path("idx"));
  Write(Path("idx/model.safetensors.index.json"), text);
  r = CheckpointReader::Open(Path("idx"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("SECRET")));
  Write(Path("idx/model.safetensors.index.json"),
        std::string("{\"weight_map\": {\"a\": [\"") + kSecret + "\"]}}");
  r = CheckpointReader::Open(Path("idx"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("SECRET")));
}

}  // namespace
}  // namespace gptb::checkpoint
