// Batch sources: Megatron indexed datasets written by an independent numpy writer
// (write_indexed_dataset.py), every class of corrupt index, explicit and synthetic batches.
#include "core/train/data.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::train {
namespace {

using ::testing::HasSubstr;

const char kScript[] = GPTB_SOURCE_DIR "/tests/unit/train/write_indexed_dataset.py";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gptb_data_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes <prefix>.bin/.idx with the project environment's numpy; fails the test if the script
// fails.
void WriteWithNumpy(const std::string& prefix, const std::string& dtype,
                    const std::string& sequences, const std::string& documents = "") {
  std::string command = std::string(GPTB_PYTHON) + " " + kScript + " '" + prefix + "' " + dtype +
                        " '" + sequences + "'";
  if (!documents.empty()) command += " '" + documents + "'";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void Poke(std::string& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

TEST(IndexedDatasetTest, ReadsEveryIntegerTypeWrittenByNumpy) {
  TempDir dir;
  const std::vector<std::vector<int64_t>> sequences = {{5, 0, 7}, {}, {100, 101}, {3}};
  const std::string json = "[[5,0,7],[],[100,101],[3]]";
  for (const char* dtype : {"uint8", "int8", "int16", "int32", "int64", "uint16"}) {
    const std::string prefix = dir.File(std::string("ds_") + dtype);
    WriteWithNumpy(prefix, dtype, json);
    auto ds = IndexedDataset::Open(prefix);
    ASSERT_TRUE(ds.ok()) << dtype << ": " << ds.status();
    EXPECT_STREQ(TokenDTypeName((*ds)->dtype()), dtype);
    ASSERT_EQ((*ds)->num_sequences(), 4);
    EXPECT_EQ((*ds)->num_tokens(), 6);
    EXPECT_EQ((*ds)->document_indices(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
    for (int i = 0; i < 4; ++i) {
      auto seq = (*ds)->Sequence(i);
      ASSERT_TRUE(seq.ok()) << seq.status();
      EXPECT_EQ(*seq, sequences[i]) << dtype << " sequence " << i;
    }
    std::vector<int64_t> stream(6);
    ASSERT_TRUE((*ds)->ReadStream(0, 6, stream.data()).ok());
    EXPECT_EQ(stream, (std::vector<int64_t>{5, 0, 7, 100, 101, 3}));
    std::vector<int64_t> middle(3);
    ASSERT_TRUE((*ds)->ReadStream(2, 3, middle.data()).ok());  // across the empty sequence
    EXPECT_EQ(middle, (std::vector<int64_t>{7, 100, 101}));
    EXPECT_EQ((*ds)->ReadStream(4, 3, middle.data()).code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ((*ds)->Sequence(4).status().code(), absl::StatusCode::kOutOfRange);
  }
}

TEST(IndexedDatasetTest, LargeIdsSurviveTheirType) {
  TempDir dir;
  const std::string prefix = dir.File("wide");
  WriteWithNumpy(prefix, "uint16", "[[65535, 40000, 1]]");
  auto ds = IndexedDataset::Open(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(*(*ds)->Sequence(0), (std::vector<int64_t>{65535, 40000, 1}));
  const std::string prefix64 = dir.File("wide64");
  WriteWithNumpy(prefix64, "int64", "[[5000000000]]");
  auto ds64 = IndexedDataset::Open(prefix64);
  ASSERT_TRUE(ds64.ok()) << ds64.status();
  EXPECT_EQ(*(*ds64)->Sequence(0), (std::vector<int64_t>{5000000000LL}));
}

// Each corruption of a valid index (int32 ids, sequences [[1,2,3],[4,5]]) and its message.
TEST(IndexedDatasetTest, RejectsCorruptIndexFiles) {
  TempDir dir;
  const std::string good = dir.File("good");
  WriteWithNumpy(good, "int32", "[[1,2,3],[4,5]]");
  ASSERT_TRUE(IndexedDataset::Open(good).ok());
  const std::string idx = ReadAll(good + ".idx");
  const std::string bin = ReadAll(good + ".bin");
  // Layout: header 0..8, version 9..16, dtype 17, sequences 18..25, documents 26..33,
  // lengths 34.., pointers 42.., document indices 58...
  struct Case {
    const char* name;
    std::string idx;
    std::string bin;
    const char* message;
  };
  std::vector<Case> cases;
  auto with = [&](auto mutate) {
    std::string copy = idx;
    mutate(copy);
    return copy;
  };
  cases.push_back({"empty", "", bin, "needs at least"});
  cases.push_back({"truncated header", idx.substr(0, 20), bin, "needs at least"});
  cases.push_back({"magic", with([](std::string& s) { s[0] = 'X'; }), bin, "header"});
  cases.push_back(
      {"version", with([](std::string& s) { Poke<uint64_t>(s, 9, 2); }), bin, "version"});
  cases.push_back({"dtype code 0", with([](std::string& s) { s[17] = 0; }), bin, "dtype code"});
  cases.push_back({"dtype code 9", with([](std::string& s) { s[17] = 9; }), bin, "dtype code"});
  cases.push_back({"float ids", with([](std::string& s) { s[17] = 7; }), bin, "integer type"});
  cases.push_back({"huge sequence count",
                   with([](std::string& s) { Poke<uint64_t>(s, 18, uint64_t{1} << 62); }), bin,
                   "need more than"});
  cases.push_back({"huge document count",
                   with([](std::string& s) { Poke<uint64_t>(s, 26, ~uint64_t{0}); }), bin,
                   "need more than"});
  cases.push_back({"truncated arrays", idx.substr(0, idx.size() - 8), bin, "need more than"});
  cases.push_back({"trailing bytes", idx + "abc", bin, "after the document indices"});
  cases.push_back(
      {"negative length", with([](std::string& s) { Poke<int32_t>(s, 34, -1); }), bin, "negative"});
  cases.push_back({"length past the end", with([](std::string& s) { Poke<int32_t>(s, 38, 3); }),
                   bin, "lies outside"});
  cases.push_back({"pointer past the end",
                   with([](std::string& s) { Poke<int64_t>(s, 50, 1 << 20); }), bin,
                   "lies outside"});
  cases.push_back({"negative pointer", with([](std::string& s) { Poke<int64_t>(s, 42, -4); }), bin,
                   "lies outside"});
  cases.push_back({"short bin", idx, bin.substr(0, bin.size() - 1), "lies outside"});
  cases.push_back({"document indices decrease", with([](std::string& s) {
                     Poke<int64_t>(s, 66, 0);
                     Poke<int64_t>(s, 58, 1);
                   }),
                   bin, "document_indices"});
  cases.push_back({"document index past the sequences",
                   with([](std::string& s) { Poke<int64_t>(s, 74, 3); }), bin, "document_indices"});
  for (const Case& c : cases) {
    const std::string prefix = dir.File("bad");
    WriteAll(prefix + ".idx", c.idx);
    WriteAll(prefix + ".bin", c.bin);
    auto ds = IndexedDataset::Open(prefix);
    ASSERT_FALSE(ds.ok()) << c.name;
    EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(ds.status().message()), HasSubstr(c.message)) << c.name;
    EXPECT_THAT(std::string(ds.status().message()), HasSubstr(prefix)) << c.name;
  }
  // Missing files: a bad request (every rank refuses it before communicating; the model stays
  // READY), naming the file.
  std::filesystem::remove(dir.File("bad.bin"));
  WriteAll(dir.File("bad.idx"), idx);
  EXPECT_EQ(IndexedDataset::Open(dir.File("bad")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(IndexedDataset::Open(dir.File("bad")).status().message()),
              HasSubstr("bad.bin"));
  EXPECT_EQ(IndexedDataset::Open(dir.File("absent")).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A FIFO is refused at once instead of blocking the rank's thread in open().
  ASSERT_EQ(::mkfifo(dir.File("fifo.idx").c_str(), 0600), 0);
  EXPECT_THAT(std::string(IndexedDataset::Open(dir.File("fifo")).status().message()),
              HasSubstr("not a regular file"));
}

TEST(IndexedDatasetTest, AcceptsSequenceModes) {
  TempDir dir;
  const std::string prefix = dir.File("modes");
  WriteWithNumpy(prefix, "int32", "[[1,2],[3]]");
  WriteAll(prefix + ".idx", ReadAll(prefix + ".idx") + std::string("\x00\x01", 2));
  auto ds = IndexedDataset::Open(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->num_tokens(), 3);
}

gptbuilder::v1::TrainBatch Tokens(const std::vector<int64_t>& ids) {
  gptbuilder::v1::TrainBatch batch;
  for (int64_t id : ids) batch.mutable_tokens()->add_ids(id);
  return batch;
}

TEST(BatchSourceTest, ExplicitTokensAreCheckedForCountAndRange) {
  auto source = BatchSource::Create(Tokens({1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(source.ok());
  auto ids = source->GlobalBatch(0, {2, 2}, 10);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  auto wrong_count = source->GlobalBatch(0, {2, 3}, 10);
  EXPECT_EQ(wrong_count.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong_count.status().message()), HasSubstr("needs 8"));
  auto out_of_range = source->GlobalBatch(0, {2, 2}, 6);
  EXPECT_EQ(out_of_range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out_of_range.status().message()), HasSubstr("[0, 6)"));
  auto negative = BatchSource::Create(Tokens({0, -1}))->GlobalBatch(0, {1, 1}, 10);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchSource::Create(gptbuilder::v1::TrainBatch()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BatchSourceTest, SyntheticBatchesDependOnSeedAndIterationOnly) {
  gptbuilder::v1::TrainBatch spec;
  spec.set_synthetic_seed(42);
  auto a = BatchSource::Create(spec);
  auto b = BatchSource::Create(spec);
  const BatchShape shape{4, 16};
  auto a0 = a->GlobalBatch(0, shape, 50);
  auto b0 = b->GlobalBatch(0, shape, 50);
  auto a1 = a->GlobalBatch(1, shape, 50);
  ASSERT_TRUE(a0.ok() && b0.ok() && a1.ok());
  EXPECT_EQ(*a0, *b0);
  EXPECT_NE(*a0, *a1);
  spec.set_synthetic_seed(43);
  EXPECT_NE(*BatchSource::Create(spec)->GlobalBatch(0, shape, 50), *a0);
  // Roughly uniform over the vocabulary.
  auto big = a->GlobalBatch(3, {64, 255}, 8);
  std::vector<int> counts(8, 0);
  for (int64_t id : *big) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 8);
    ++counts[id];
  }
  for (int c : counts) EXPECT_NEAR(c, 64 * 256 / 8, 300);
}

TEST(BatchSourceTest, DatasetSamplesStrideOverTheTokenStreamAndWrap) {
  TempDir dir;
  const std::string prefix = dir.File("corpus");
  // Stream 0..19 over three documents.
  WriteWithNumpy(prefix, "uint16", "[[0,1,2,3,4,5,6],[7,8,9,10,11,12],[13,14,15,16,17,18,19]]");
  gptbuilder::v1::TrainBatch spec;
  spec.set_data_path(prefix);
  auto source = BatchSource::Create(spec);
  ASSERT_TRUE(source.ok()) << source.status();
  // seq 4: samples are [0..4], [4..8], [8..12], [12..16] ((20 - 1) / 4 = 4 samples).
  auto first = source->GlobalBatch(0, {3, 4}, 100);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, (std::vector<int64_t>{0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12}));
  auto second = source->GlobalBatch(1, {3, 4}, 100);  // samples 3, 0, 1
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, (std::vector<int64_t>{12, 13, 14, 15, 16, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8}));
  EXPECT_EQ(source->GlobalBatch(2, {1, 4}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);  // ids >= vocabulary
  EXPECT_EQ(source->GlobalBatch(0, {1, 20}, 100).status().code(),
            absl::StatusCode::kInvalidArgument);  // 20 tokens cannot fill 21
  spec.set_data_path(dir.File("missing"));
  EXPECT_EQ(BatchSource::Create(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gptb::train
