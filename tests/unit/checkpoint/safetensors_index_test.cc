// Shard planning, the model.safetensors.index.json file, and sharded round trips.

#include "core/checkpoint/safetensors_index.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/checkpoint/sharded_safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/checkpoint/safetensors_test_util.h"

namespace gptb::checkpoint {
namespace {

using ::testing::ElementsAre;
using testing::ExpectError;
using testing::Pattern;
using testing::TempDir;
using Code = absl::StatusCode;

std::vector<std::string> Names(const ShardPlan& shard) {
  std::vector<std::string> names;
  for (const TensorSpec& t : shard.tensors) names.push_back(t.name);
  return names;
}

TEST(ShardFileName, FollowsHuggingFace) {
  EXPECT_EQ(ShardFileName("model", 1, 3), "model-00001-of-00003.safetensors");
  EXPECT_EQ(ShardFileName("model", 12, 123), "model-00012-of-00123.safetensors");
  EXPECT_EQ(ShardFileName("model", 1, 1), "model.safetensors");
}

TEST(PlanShards, FillsShardsInOrderUpToTheBound) {
  // Bytes: a 40, b 40, c 16, d 100 (over the bound), e 8.
  const std::vector<TensorSpec> tensors = {{"a", DType::kFloat32, {10}},
                                           {"b", DType::kFloat32, {10}},
                                           {"c", DType::kBFloat16, {8}},
                                           {"d", DType::kFloat32, {25}},
                                           {"e", DType::kInt64, {1}}};
  auto shards = PlanShards(tensors, 96);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_EQ(shards->size(), 3u);
  EXPECT_THAT(Names((*shards)[0]), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Names((*shards)[1]), ElementsAre("d"));  // larger than the bound: on its own
  EXPECT_THAT(Names((*shards)[2]), ElementsAre("e"));
  EXPECT_EQ((*shards)[0].data_bytes, 96u);
  EXPECT_EQ((*shards)[1].data_bytes, 100u);
  EXPECT_EQ((*shards)[2].file_name, "model-00003-of-00003.safetensors");

  auto one = PlanShards(tensors, 1000, "consolidated");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].file_name, "consolidated.safetensors");
  EXPECT_EQ((*one)[0].data_bytes, 204u);
}

TEST(PlanShards, RejectsBadInput) {
  ExpectError(PlanShards({{"a", DType::kFloat32, {1}}}, 0).status(), Code::kInvalidArgument,
              {"max_shard_bytes"});
  ExpectError(PlanShards({{"a", DType::kFloat32, {1}}, {"a", DType::kFloat32, {2}}}, 8).status(),
              Code::kInvalidArgument, {"'a' is listed twice"});
  ExpectError(PlanShards({{"a", DType::kFloat32, {-1}}}, 8).status(), Code::kInvalidArgument,
              {"'a'", "shape[0] is -1"});
}

TEST(SafetensorsIndex, SerializesLikeTransformersAndParsesBack) {
  SafetensorsIndex index;
  index.total_size = 1234;
  index.metadata["format"] = "pt";
  index.weight_map = {{"b", "model-00002-of-00002.safetensors"},
                      {"a", "model-00001-of-00002.safetensors"}};
  const std::string text = SerializeIndex(index);
  const nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["metadata"]["total_size"], 1234);  // a number, as Hugging Face writes it
  EXPECT_EQ(json["metadata"]["format"], "pt");
  EXPECT_EQ(json["weight_map"]["a"], "model-00001-of-00002.safetensors");
  auto back = ParseIndex(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->total_size, index.total_size);
  EXPECT_EQ(back->metadata, index.metadata);
  EXPECT_EQ(back->weight_map, index.weight_map);
}

TEST(SafetensorsIndex, ParseRejectsMalformedIndexes) {
  ExpectError(ParseIndex("{").status(), Code::kInvalidArgument, {"not valid JSON"});
  ExpectError(ParseIndex("[]").status(), Code::kInvalidArgument, {"JSON array"});
  ExpectError(ParseIndex(R"({"metadata": {}})").status(), Code::kInvalidArgument,
              {"no \"weight_map\""});
  ExpectError(ParseIndex(R"({"weight_map": {"a": 3}})").status(), Code::kInvalidArgument,
              {"weight_map['a'] is a JSON number"});
  for (const char* bad : {"../secret.safetensors", "/etc/passwd", "", "..", "sub/x.safetensors"}) {
    ExpectError(ParseIndex(nlohmann::json{{"weight_map", {{"a", bad}}}}.dump()).status(),
                Code::kInvalidArgument, {"weight_map['a']", "plain file names"});
  }
  ExpectError(ParseIndex(R"({"metadata": {"total_size": -5}, "weight_map": {}})").status(),
              Code::kInvalidArgument, {"total_size is a JSON number", "non-negative integer"});
  // Non-string metadata that is not total_size is kept as JSON text.
  auto other = ParseIndex(R"({"metadata": {"total_parameters": 7}, "weight_map": {}})");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->metadata.at("total_parameters"), "7");
  EXPECT_FALSE(other->total_size.has_value());
}

// A checkpoint planned into three shards, written by threads through one ShardedSafetensorsWriter
// and a second writer opened on the existing files, then read back through the index.
TEST(ShardedSafetensors, RoundTripThroughTheIndex) {
  TempDir dir;
  const std::vector<TensorSpec> tensors = {{"embedding.weight", DType::kFloat32, {16, 8}},
                                           {"layers.0.qkv.weight", DType::kBFloat16, {24, 8}},
                                           {"layers.0.qkv.bias", DType::kBFloat16, {24}},
                                           {"layers.1.qkv.weight", DType::kBFloat16, {24, 8}},
                                           {"final_norm.weight", DType::kFloat32, {8}}};
  std::map<std::string, std::vector<unsigned char>> data;
  uint32_t seed = 1;
  for (const TensorSpec& t : tensors) data[t.name] = Pattern(*TensorBytes(t), seed++);
  auto shards = PlanShards(tensors, 512);
  ASSERT_TRUE(shards.ok());
  ASSERT_EQ(shards->size(), 3u);
  const std::map<std::string, std::string> file_metadata = {{"format", "pt"}};
  auto writer = ShardedSafetensorsWriter::Create(dir.path(), *shards, file_metadata,
                                                 {{"producer", "gptbuilder"}});
  ASSERT_TRUE(writer.ok()) << writer.status();
  auto second = ShardedSafetensorsWriter::OpenExisting(dir.path(), *shards, file_metadata);
  ASSERT_TRUE(second.ok()) << second.status();
  // Rows [0, 12) by the first writer, rows [12, 24) / the rest by the second.
  for (const TensorSpec& t : tensors) {
    const auto& bytes = data[t.name];
    const int64_t half = t.shape[0] / 2;
    const size_t half_bytes = bytes.size() / t.shape[0] * half;
    ASSERT_TRUE((*writer)->WriteSlice(t.name, 0, 0, half, bytes.data()).ok());
    ASSERT_TRUE(
        (*second)->WriteSlice(t.name, 0, half, t.shape[0] - half, bytes.data() + half_bytes).ok());
  }
  ASSERT_TRUE((*second)->Finish().ok());
  ASSERT_TRUE((*writer)->Finish().ok());

  auto index = ReadIndexFile(dir.File(std::string(kIndexFileName)));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->total_size, 512u + 384u + 48u + 384u + 32u);
  EXPECT_EQ(index->metadata.at("producer"), "gptbuilder");
  EXPECT_EQ(index->weight_map.at("embedding.weight"), "model-00001-of-00003.safetensors");
  EXPECT_EQ(index->weight_map.at("final_norm.weight"), "model-00003-of-00003.safetensors");

  for (const std::string& path : {dir.path(), dir.File(std::string(kIndexFileName))}) {
    auto reader = ShardedSafetensorsReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(reader->get()->shards().size(), 3u);
    EXPECT_EQ(reader->get()->num_tensors(), tensors.size());
    for (const TensorSpec& t : tensors) {
      std::vector<unsigned char> back(data[t.name].size());
      ASSERT_TRUE((*reader)->ReadTensor(t.name, back.data()).ok());
      EXPECT_EQ(back, data[t.name]) << t.name;
      auto location = (*reader)->Find(t.name);
      ASSERT_TRUE(location.ok());
      EXPECT_EQ(location->shard->metadata(), file_metadata);
    }
    std::vector<unsigned char> cols(24 * 2 * 2);
    ASSERT_TRUE((*reader)->ReadSlice("layers.1.qkv.weight", 1, 4, 2, cols.data()).ok());
    for (int r = 0; r < 24; ++r) {
      EXPECT_EQ(
          0, std::memcmp(cols.data() + r * 4, data["layers.1.qkv.weight"].data() + r * 16 + 8, 4));
    }
    ExpectError((*reader)->ReadTensor("nope", cols.data()), Code::kNotFound, {"'nope'"});
  }
}

TEST(ShardedSafetensors, SingleFileCheckpointNeedsNoIndex) {
  TempDir dir;
  const std::vector<TensorSpec> tensors = {{"a", DType::kFloat32, {4}}};
  auto shards = PlanShards(tensors, 1 << 20);
  ASSERT_TRUE(shards.ok());
  auto writer = ShardedSafetensorsWriter::Create(dir.path(), *shards, {});
  ASSERT_TRUE(writer.ok());
  const float a[4] = {1, 2, 3, 4};
  ASSERT_TRUE((*writer)->WriteTensor("a", a).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_FALSE(std::filesystem::exists(dir.File(std::string(kIndexFileName))));
  auto reader = ShardedSafetensorsReader::Open(dir.path());
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->index().weight_map.at("a"), "model.safetensors");
  EXPECT_EQ((*reader)->index().total_size, 16u);
  float back[4];
  ASSERT_TRUE((*reader)->ReadTensor("a", back).ok());
  EXPECT_EQ(std::memcmp(a, back, sizeof(a)), 0);
}

TEST(ShardedSafetensors, IndexAndShardsMustAgree) {
  TempDir dir;
  const std::vector<TensorSpec> tensors = {{"a", DType::kFloat32, {4}},
                                           {"b", DType::kFloat32, {4}}};
  auto shards = PlanShards(tensors, 16);
  ASSERT_TRUE(shards.ok());
  ASSERT_EQ(shards->size(), 2u);
  ASSERT_TRUE(ShardedSafetensorsWriter::Create(dir.path(), *shards, {}).ok());
  const std::string index_path = dir.File(std::string(kIndexFileName));

  SafetensorsIndex index = MakeIndex(*shards);
  index.weight_map["ghost"] = (*shards)[0].file_name;
  ASSERT_TRUE(WriteIndexFile(index_path, index).ok());
  ExpectError(ShardedSafetensorsReader::Open(dir.path()).status(), Code::kDataLoss,
              {"maps tensor 'ghost' to model-00001-of-00002.safetensors, which has no such"});

  // b listed in the shard that holds only a.
  index = MakeIndex(*shards);
  index.weight_map["b"] = (*shards)[0].file_name;
  ASSERT_TRUE(WriteIndexFile(index_path, index).ok());
  ExpectError(ShardedSafetensorsReader::Open(dir.path()).status(), Code::kDataLoss,
              {"'b'", "which has no such tensor"});

  index = MakeIndex(*shards);
  index.weight_map["a"] = (*shards)[1].file_name;
  index.weight_map["b"] = (*shards)[1].file_name;
  index.weight_map["c"] = (*shards)[0].file_name;
  ASSERT_TRUE(WriteIndexFile(index_path, index).ok());
  ExpectError(ShardedSafetensorsReader::Open(dir.path()).status(), Code::kInvalidArgument,
              {"shard model-00001-of-00002.safetensors holds tensor 'a', which the index maps to "
               "model-00002-of-00002.safetensors"});

  index = MakeIndex(*shards);
  index.weight_map["a"] = "missing.safetensors";
  ASSERT_TRUE(WriteIndexFile(index_path, index).ok());
  ExpectError(ShardedSafetensorsReader::Open(dir.path()).status(), Code::kNotFound,
              {"missing.safetensors"});

  TempDir empty;
  ExpectError(ShardedSafetensorsReader::Open(empty.path()).status(), Code::kNotFound,
              {"neither model.safetensors.index.json nor model.safetensors"});
}

}  // namespace
}  // namespace gptb::checkpoint
