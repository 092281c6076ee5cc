// Writes the fuzzer's seed corpus: small valid safetensors files from the real writer, covering
// every dtype family, scalars, empty tensors, 1-3 dims and metadata, plus an index file.
// Usage: make_seed_corpus OUT_DIR

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/safetensors_writer.h"

using namespace gptb::checkpoint;
using gptb::DType;

namespace {

bool WriteFile(const std::string& path, const std::vector<TensorSpec>& specs,
               const std::map<std::string, std::string>& metadata) {
  auto writer = SafetensorsWriter::Create(path, specs, metadata);
  if (!writer.ok()) {
    std::fprintf(stderr, "%s\n", writer.status().ToString().c_str());
    return false;
  }
  unsigned char value = 1;
  for (const TensorInfo& t : (*writer)->tensors()) {
    std::vector<unsigned char> bytes(t.nbytes());
    for (unsigned char& b : bytes) b = value++;
    if (!(*writer)->WriteTensor(t.name, bytes.data()).ok()) return false;
  }
  return (*writer)->Finish(/*sync=*/false).ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const std::vector<std::vector<TensorSpec>> files = {
      {},
      {{"w", DType::kFloat32, {2, 3}}},
      {{"a", DType::kBFloat16, {3, 2, 2}}, {"b", DType::kFloat16, {4}}},
      {{"s", DType::kFloat64, {}}, {"e", DType::kInt64, {0, 5}}, {"m", DType::kBool, {3}}},
      {{"x", DType::kInt32, {2, 2}},
       {"y", DType::kInt16, {1}},
       {"z", DType::kInt8, {5}},
       {"u", DType::kUInt8, {2, 1, 3}},
       {"f8", DType::kFloat8E5M2, {2}}},
      {{"layers.0.self_attention.linear_qkv.weight", DType::kBFloat16, {6, 4}},
       {"layers.0.self_attention.linear_qkv.bias", DType::kBFloat16, {6}}},
  };
  int i = 0;
  for (const auto& specs : files) {
    std::map<std::string, std::string> metadata;
    if (i % 2 == 1) metadata = {{"format", "pt"}};
    if (!WriteFile(dir + "/seed" + std::to_string(i++) + ".safetensors", specs, metadata)) return 1;
  }
  auto shards = PlanShards(files[4], 8);
  if (!shards.ok()) return 1;
  std::ofstream(dir + "/index.json") << SerializeIndex(MakeIndex(*shards, {{"k", "v"}}));
  return 0;
}
