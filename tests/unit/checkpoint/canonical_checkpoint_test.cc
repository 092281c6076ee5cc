// Layout-independent checkpoints (ranks as threads over Gloo): a model saved from one parallel
// layout and loaded into another holds bit-identical canonical weights; vocabulary padding
// differences; config mismatches; corrupt, truncated and incomplete files.
#include <filesystem>
#include <fstream>

#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/sharded_safetensors.h"
#include "core/init/checksum.h"
#include "gmock/gmock.h"
#include "tests/unit/checkpoint/checkpoint_harness.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;
using testing::BuildWith;
using testing::BuiltWorld;
using testing::Canonical;
using testing::Finalized;
using testing::GoldenConfig;
using testing::Layout;
using testing::LayoutName;
using testing::WorldSize;

struct Case {
  std::string golden;
  Layout save;
  std::vector<Layout> loads;
};

// Builds `golden` in `layout` with `seed`, loading from `load_from` when set.
BuiltWorld Build(const std::string& golden, const Layout& layout, int64_t seed,
                 const std::string& load_from = "",
                 const std::function<void(gptbuilder::v1::GPTModelConfig&)>& edit = {}) {
  gptbuilder::v1::GPTModelConfig c = GoldenConfig(golden, layout);
  if (edit) edit(c);
  const int world = WorldSize(c);
  return BuildWith(Finalized(c, world), world, [&](model::RankBuildOptions& o) {
    o.build.set_seed(seed);
    o.load_from = load_from;
  });
}

void ExpectAllOk(const BuiltWorld& built, const std::string& what) {
  for (size_t r = 0; r < built.statuses.size(); ++r) {
    EXPECT_TRUE(built.statuses[r].ok()) << what << " rank " << r << ": " << built.statuses[r];
  }
}

void ExpectSaved(const std::vector<absl::StatusOr<SaveStats>>& results, const std::string& what) {
  for (size_t r = 0; r < results.size(); ++r) {
    EXPECT_TRUE(results[r].ok()) << what << " rank " << r << ": " << results[r].status();
  }
}

// Checksums of every tensor's stored bytes, by name.
std::map<std::string, uint64_t> FileChecksums(const std::string& path) {
  std::map<std::string, uint64_t> sums;
  auto reader = ShardedSafetensorsReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return sums;
  for (const auto& shard : (*reader)->shards()) {
    for (const TensorInfo& t : shard->tensors()) {
      std::vector<unsigned char> bytes(t.nbytes());
      EXPECT_TRUE(shard->ReadTensor(t.name, bytes.data()).ok());
      sums[t.name] = init::Checksum(bytes.data(), bytes.size());
    }
  }
  return sums;
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.golden << " saved at " << LayoutName(c.save);
}

class LayoutChangeTest : public ::testing::TestWithParam<Case> {};

TEST_P(LayoutChangeTest, LoadedWeightsAreBitIdenticalInEveryLayout) {
  const Case& c = GetParam();
  const std::string dir = testing::TempDir("layout_" + c.golden + "_" + LayoutName(c.save));
  BuiltWorld source = Build(c.golden, c.save, /*seed=*/1234);
  ASSERT_TRUE(source.ok());
  const std::map<std::string, torch::Tensor> expected = Canonical(source.world);
  ExpectSaved(testing::SaveWorld(source.world, dir), "save " + LayoutName(c.save));
  ASSERT_FALSE(HasFailure());
  source = BuiltWorld();

  // The stored tensors are the canonical ones, whatever layout wrote them.
  const std::map<std::string, uint64_t> stored = FileChecksums(dir);
  ASSERT_EQ(stored.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    const torch::Tensor contiguous = tensor.contiguous();
    EXPECT_EQ(stored.at(name),
              init::Checksum(contiguous.data_ptr(), contiguous.numel() * contiguous.element_size()))
        << name;
  }
  for (const Layout& load : c.loads) {
    // A different seed: anything the load missed would show.
    BuiltWorld loaded = Build(c.golden, load, /*seed=*/99, dir);
    ExpectAllOk(loaded, "load " + LayoutName(load));
    if (!loaded.ok()) continue;
    testing::ExpectSameCanonical(expected, Canonical(loaded.world),
                                 LayoutName(c.save) + " -> " + LayoutName(load));
    // Saving again from the new layout reproduces the same stored bytes.
    const std::string again = dir + "_again_" + LayoutName(load);
    ExpectSaved(testing::SaveWorld(loaded.world, again), "resave " + LayoutName(load));
    EXPECT_EQ(FileChecksums(again), stored) << LayoutName(load);
    fs::remove_all(again);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, LayoutChangeTest,
    ::testing::Values(
        // GPT-2-like (tied, learned positions, biases): pipeline copy of the embedding.
        Case{"A_tp1_pp1", {2, 2, 0, 1}, {{1, 1, 0, 1}, {1, 2, 0, 1}, {2, 1, 0, 1}}},
        Case{"A_tp1_pp1", {2, 2, 2, 1}, {{1, 1, 0, 1}, {2, 2, 0, 1}}},
        // Llama-like: GQA qkv groups and gated fc1 split over TP.
        Case{"B_tp1_pp1", {2, 2, 0, 1}, {{1, 1, 0, 1}, {2, 2, 2, 1}}},
        Case{"B_tp1_pp1", {1, 1, 0, 1}, {{2, 2, 0, 1}, {2, 1, 0, 1}}},
        // MoE: experts split over EP (and expert TP).
        Case{"D_tp1_pp1_ep1", {2, 2, 0, 2}, {{1, 1, 0, 1}, {1, 1, 0, 2}}},
        Case{"D_tp1_pp1_ep1", {1, 1, 0, 1}, {{2, 2, 0, 2}, {1, 2, 2, 2}}}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return info.param.golden.substr(0, 1) + "_" + LayoutName(info.param.save);
    });

TEST(CanonicalCheckpoint, DataParallelReplicasWriteEachSliceOnce) {
  // tp=2 with dp=2 (world 4): replicas hold the same slices; one of them writes each.
  gptbuilder::v1::GPTModelConfig c = GoldenConfig("B_tp1_pp1", {2, 1, 0, 1});
  BuiltWorld built = BuildWith(Finalized(c, 4), 4);
  ASSERT_TRUE(built.ok());
  const std::string dir = testing::TempDir("dp_replicas");
  auto results = testing::SaveWorld(built.world, dir);
  ExpectSaved(results, "save dp2");
  uint64_t total = 0;
  for (const auto& r : results) total += r.ok() ? r->bytes_written : 0;
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(total, *(*reader)->index().total_size);
  // Ranks 2 and 3 are replicas of 0 and 1: they share the writing.
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok());
    EXPECT_GT(r->bytes_written, total / 8);
  }
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, ShardedFilesWithIndexLoad) {
  BuiltWorld built = Build("B_tp1_pp1", {2, 2, 0, 1}, 5);
  ASSERT_TRUE(built.ok());
  const std::string dir = testing::TempDir("sharded");
  SaveOptions options;
  options.max_shard_bytes = 200'000;  // the 1024 x 64 fp32 embedding alone is 262 KB
  options.threads = 3;
  auto results = testing::SaveWorld(built.world, dir, options);
  ExpectSaved(results, "sharded save");
  ASSERT_TRUE(results[0].ok());
  EXPECT_GT(results[0]->files, 2);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  BuiltWorld loaded = Build("B_tp1_pp1", {1, 1, 0, 1}, 6, dir);
  ExpectAllOk(loaded, "load sharded");
  if (loaded.ok()) {
    testing::ExpectSameCanonical(Canonical(built.world), Canonical(loaded.world), "sharded");
  }
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, MetadataDescribesTheModel) {
  BuiltWorld built = Build("D_tp1_pp1_ep1", {1, 2, 0, 2}, 5);
  ASSERT_TRUE(built.ok());
  const std::string dir = testing::TempDir("metadata");
  SaveOptions options;
  options.metadata = {{"source", "unit test"}};
  ExpectSaved(testing::SaveWorld(built.world, dir, options), "save");
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok());
  const auto& metadata = (*reader)->shards()[0]->metadata();
  EXPECT_EQ(metadata.at("format"), "pt");
  EXPECT_EQ(metadata.at(kFormatKey), kCanonicalFormatName);
  EXPECT_EQ(metadata.at(kFormatVersionKey), "1");
  EXPECT_EQ(metadata.at(kSourceLayoutKey), "world=4 tp=1 pp=2 vp=1 cp=1 ep=2 etp=1");
  EXPECT_EQ(metadata.at("source"), "unit test");
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> stored = StoredConfig(metadata, dir);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->SerializeAsString(), built.world.ranks[0]->plan().config().SerializeAsString());
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, Bf16ModelsSaveBf16AndLoadIntoFp32) {
  auto bf16 = [](gptbuilder::v1::GPTModelConfig& c) {
    c.mutable_transformer()->set_bf16(true);
    c.mutable_transformer()->set_params_dtype("bfloat16");
  };
  BuiltWorld built = Build("B_tp1_pp1", {2, 1, 0, 1}, 8, "", bf16);
  ASSERT_TRUE(built.ok());
  const std::string dir = testing::TempDir("bf16");
  ExpectSaved(testing::SaveWorld(built.world, dir), "save bf16");
  auto reader = ShardedSafetensorsReader::Open(dir);
  ASSERT_TRUE(reader.ok());
  for (const auto& shard : (*reader)->shards()) {
    for (const TensorInfo& t : shard->tensors()) EXPECT_EQ(t.dtype, DType::kBFloat16) << t.name;
  }
  // Same architecture in fp32: the values are the bf16 ones, widened exactly.
  BuiltWorld fp32 = Build("B_tp1_pp1", {1, 1, 0, 1}, 9, dir);
  ExpectAllOk(fp32, "load bf16 into fp32");
  if (fp32.ok()) {
    std::map<std::string, torch::Tensor> widened;
    for (const auto& [name, t] : Canonical(built.world)) widened[name] = t.to(torch::kFloat32);
    testing::ExpectSameCanonical(widened, Canonical(fp32.world), "bf16 -> fp32");
  }
  fs::remove_all(dir);
}

// make_vocab_size_divisible_by 128 pads 1000 to 1024 rows; 576 at tp=2 pads to 1152.
void Pad1152(gptbuilder::v1::GPTModelConfig& c) { c.set_make_vocab_size_divisible_by(576); }

TEST(CanonicalCheckpoint, VocabularyPaddedFurtherGetsBuilderInitialisedRows) {
  BuiltWorld small = Build("B_tp1_pp1", {1, 1, 0, 1}, 11);
  ASSERT_TRUE(small.ok());
  const std::string dir = testing::TempDir("vocab_1024");
  ExpectSaved(testing::SaveWorld(small.world, dir), "save 1024");
  // The reference: the 1152-row model built from seed 22, as the builder initialises it.
  BuiltWorld fresh = Build("B_tp1_pp1", {2, 1, 0, 1}, 22, "", Pad1152);
  BuiltWorld large = Build("B_tp1_pp1", {2, 1, 0, 1}, 22, dir, Pad1152);
  ExpectAllOk(large, "load 1024 into 1152");
  ASSERT_TRUE(large.ok() && fresh.ok());
  auto saved = Canonical(small.world), loaded = Canonical(large.world),
       init = Canonical(fresh.world);
  for (const char* name : {"embedding.word_embeddings.weight", "output_layer.weight"}) {
    ASSERT_EQ(loaded.at(name).size(0), 1152);
    EXPECT_TRUE(torch::equal(loaded.at(name).narrow(0, 0, 1024), saved.at(name))) << name;
    EXPECT_TRUE(
        torch::equal(loaded.at(name).narrow(0, 1024, 128), init.at(name).narrow(0, 1024, 128)))
        << name << ": padding rows differ from the builder's";
  }
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, VocabularyPaddedLessDropsPaddingRows) {
  BuiltWorld large = Build("B_tp1_pp1", {2, 1, 0, 1}, 12, "", Pad1152);
  ASSERT_TRUE(large.ok());
  const std::string dir = testing::TempDir("vocab_1152");
  ExpectSaved(testing::SaveWorld(large.world, dir), "save 1152");
  BuiltWorld small = Build("B_tp1_pp1", {2, 2, 0, 1}, 13, dir);
  ExpectAllOk(small, "load 1152 into 1024");
  ASSERT_TRUE(small.ok());
  auto saved = Canonical(large.world), loaded = Canonical(small.world);
  for (const char* name : {"embedding.word_embeddings.weight", "output_layer.weight"}) {
    ASSERT_EQ(loaded.at(name).size(0), 1024);
    EXPECT_TRUE(torch::equal(loaded.at(name), saved.at(name).narrow(0, 0, 1024))) << name;
  }
  fs::remove_all(dir);
}

class SavedCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::TempDir("saved_b"));
    BuiltWorld built = Build("B_tp1_pp1", {1, 1, 0, 1}, 3);
    ASSERT_TRUE(built.ok());
    ExpectSaved(testing::SaveWorld(built.world, *dir_), "save");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  // A copy of the checkpoint to damage.
  std::string Copy(const std::string& name) {
    const std::string copy = testing::TempDir(name);
    fs::copy(*dir_, copy, fs::copy_options::recursive);
    return copy + "/model.safetensors";
  }
  // Every rank of a tp=2 build from `path` fails; returns rank 0's status.
  absl::Status LoadFails(const std::string& path,
                         const std::function<void(gptbuilder::v1::GPTModelConfig&)>& edit = {}) {
    BuiltWorld built = Build("B_tp1_pp1", {2, 1, 0, 1}, 4, path, edit);
    for (size_t r = 0; r < built.statuses.size(); ++r) {
      EXPECT_FALSE(built.statuses[r].ok()) << "rank " << r << " built from " << path;
    }
    return built.statuses[0];
  }
  static std::string* dir_;
};
std::string* SavedCheckpoint::dir_ = nullptr;

TEST_F(SavedCheckpoint, ArchitectureMismatchNamesEveryField) {
  absl::Status s = LoadFails(*dir_, [](gptbuilder::v1::GPTModelConfig& c) {
    c.mutable_transformer()->set_num_layers(2);
    c.mutable_transformer()->set_ffn_hidden_size(128);
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.num_layers"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.ffn_hidden_size"));
}

TEST_F(SavedCheckpoint, NumericFieldsAreCheckedUnlessNotStrict) {
  auto eps = [](gptbuilder::v1::GPTModelConfig& c) {
    c.mutable_transformer()->set_layernorm_epsilon(1e-3);
  };
  absl::Status s = LoadFails(*dir_, eps);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.layernorm_epsilon"));
  gptbuilder::v1::GPTModelConfig c = GoldenConfig("B_tp1_pp1", {1, 1, 0, 1});
  eps(c);
  BuiltWorld loose = BuildWith(Finalized(c, 1), 1, [&](model::RankBuildOptions& o) {
    o.load_from = *dir_;
    o.load.strict_config = false;
  });
  ExpectAllOk(loose, "non-strict load");
}

TEST_F(SavedCheckpoint, TruncatedFileIsDataLoss) {
  const std::string file = Copy("truncated");
  fs::resize_file(file, fs::file_size(file) - 100);
  absl::Status s = LoadFails(file);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("model.safetensors"));
}

TEST_F(SavedCheckpoint, CorruptHeaderIsRejected) {
  const std::string file = Copy("corrupt");
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(9);
    f.write("#", 1);  // inside the JSON header
  }
  absl::Status s = LoadFails(file);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("model.safetensors"));
}

TEST_F(SavedCheckpoint, MissingPathIsNotFound) {
  absl::Status s = LoadFails(*dir_ + "_nowhere");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

TEST_F(SavedCheckpoint, OtherSafetensorsAreNotCheckpoints) {
  // A safetensors file without gptbuilder metadata and no config.json next to it.
  const std::string dir = testing::TempDir("foreign");
  fs::create_directories(dir);
  auto writer = SafetensorsWriter::Create(dir + "/model.safetensors", {{"x", DType::kFloat32, {2}}},
                                          {{"format", "pt"}});
  ASSERT_TRUE(writer.ok());
  float x[2] = {1, 2};
  ASSERT_TRUE((*writer)->WriteTensor("x", x).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  absl::Status s = LoadFails(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("neither a gptbuilder checkpoint"));
}

TEST(CanonicalCheckpoint, SavingOverAnExistingCheckpointNeedsOverwrite) {
  BuiltWorld built = Build("A_tp1_pp1", {1, 2, 0, 1}, 5);
  ASSERT_TRUE(built.ok());
  const std::string dir = testing::TempDir("overwrite");
  ExpectSaved(testing::SaveWorld(built.world, dir), "first save");
  auto again = testing::SaveWorld(built.world, dir);
  EXPECT_EQ(again[0].status().code(), absl::StatusCode::kAlreadyExists) << again[0].status();
  EXPECT_EQ(again[1].status().code(), absl::StatusCode::kAborted) << again[1].status();
  SaveOptions overwrite;
  overwrite.overwrite = true;
  ExpectSaved(testing::SaveWorld(built.world, dir + "/", overwrite), "overwrite");  // same path
  EXPECT_FALSE(fs::exists(dir + ".old"));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, LoadCheckpointIntoABuiltModel) {
  BuiltWorld source = Build("D_tp1_pp1_ep1", {1, 1, 0, 2}, 31);
  ASSERT_TRUE(source.ok());
  const std::string dir = testing::TempDir("load_built");
  ExpectSaved(testing::SaveWorld(source.world, dir), "save");
  BuiltWorld target = Build("D_tp1_pp1_ep1", {2, 1, 0, 2}, 32);
  ASSERT_TRUE(target.ok());
  testing::OnEveryRank(4, [&](int r) {
    absl::StatusOr<LoadStats> stats = LoadCheckpoint(*target.world.ranks[r], dir);
    EXPECT_TRUE(stats.ok()) << stats.status();
    // Each rank reads exactly the bytes of the slices it holds, nothing more.
    if (stats.ok()) {
      EXPECT_EQ(stats->bytes_read, static_cast<uint64_t>(target.world.ranks[r]->parameter_bytes()));
    }
  });
  testing::ExpectSameCanonical(Canonical(source.world), Canonical(target.world), "LoadCheckpoint");
  fs::remove_all(dir);
}

TEST(CanonicalCheckpoint, FsdpShardedModelsSave) {
  gptbuilder::v1::GPTModelConfig c = GoldenConfig("B_tp1_pp1", {1, 1, 0, 1});
  BuiltWorld plain =
      BuildWith(Finalized(c, 2), 2, [](model::RankBuildOptions& o) { o.build.set_seed(41); });
  BuiltWorld fsdp = BuildWith(Finalized(c, 2), 2, [](model::RankBuildOptions& o) {
    o.build.set_seed(41);
    o.build.set_use_megatron_fsdp(true);
  });
  ASSERT_TRUE(plain.ok() && fsdp.ok());
  ASSERT_NE(fsdp.world.ranks[0]->fsdp(0), nullptr);
  const std::string dir = testing::TempDir("fsdp");
  ExpectSaved(testing::SaveWorld(fsdp.world, dir), "fsdp save");
  EXPECT_FALSE(fsdp.world.ranks[0]->fsdp(0)->gathered());
  BuiltWorld loaded = Build("B_tp1_pp1", {1, 1, 0, 1}, 42, dir);
  ExpectAllOk(loaded, "load fsdp save");
  if (loaded.ok()) {
    testing::ExpectSameCanonical(Canonical(plain.world), Canonical(loaded.world), "fsdp");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gptb::checkpoint
