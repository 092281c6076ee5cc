// libFuzzer target for the safetensors header parser and reader (built with clang,
// -fsanitize=fuzzer,address,undefined). Each input is treated as a whole file and as an index.
// Beyond "no crash, no sanitizer report" it checks properties that must hold for every input the
// reader accepts, aborting (a reported crash) when one does not:
//   - every tensor lies inside the input, and the ranges are disjoint;
//   - ReadSlice along every dim equals an element-by-element gather from ReadTensor;
//   - the positioned-read reader (over a memfd) accepts exactly the inputs the in-memory reader
//     accepts, with the same status code, and reads the same bytes;
//   - writing the same tensors again (LayoutHeader) gives a header that parses back to them.
// Random bytes rarely describe a consistent tensor of an interesting shape, so inputs also drive
// a structured case: its first bytes pick a dtype and a shape of rank 1-4, a file of that
// tensor is built with LayoutHeader from the remaining bytes, every slice of it is read back
// against the gather oracle, and the tensor is rewritten slice by slice through
// SafetensorsWriter (into a memfd, by pwrite or through a mapping) and must read back whole.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/checkpoint/safetensors_header.h"
#include "core/checkpoint/safetensors_index.h"
#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"

namespace gptb::checkpoint {
namespace {

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

// The slice [start, start + length) along dim, gathered one element at a time from `full`.
std::vector<unsigned char> Gather(const std::vector<unsigned char>& full, const TensorInfo& t,
                                  int dim, int64_t start, int64_t length) {
  const size_t item = DTypeSize(t.dtype);
  std::vector<int64_t> sub = t.shape;
  sub[dim] = length;
  uint64_t n = 1;
  for (int64_t d : sub) n *= static_cast<uint64_t>(d);
  std::vector<unsigned char> out(n * item);
  std::vector<int64_t> index(sub.size());
  for (uint64_t e = 0; e < n; ++e) {
    uint64_t rest = e;
    for (int d = static_cast<int>(sub.size()) - 1; d >= 0; --d) {
      index[d] = static_cast<int64_t>(rest % static_cast<uint64_t>(sub[d]));
      rest /= static_cast<uint64_t>(sub[d]);
    }
    index[dim] += start;
    uint64_t flat = 0;
    for (size_t d = 0; d < sub.size(); ++d) flat = flat * t.shape[d] + index[d];
    std::memcpy(out.data() + e * item, full.data() + flat * item, item);
  }
  return out;
}

void CheckReader(const SafetensorsReader& reader, size_t size) {
  uint64_t previous_end = 0;
  for (const TensorInfo& t : reader.tensors()) {
    Require(t.file_offset >= reader.header().data_offset, "tensor before the data section");
    Require(t.file_offset + t.nbytes() <= size, "tensor past the end of the input");
    Require(t.data_begin >= previous_end, "tensors overlap or are out of order");
    previous_end = t.data_end;
    Require(t.numel() * DTypeSize(t.dtype) == t.nbytes(), "nbytes != numel * item size");

    std::vector<unsigned char> full(t.nbytes());
    Require(reader.ReadTensor(t.name, full.data()).ok(), "ReadTensor failed on a valid tensor");
    if (t.numel() > 1024) continue;  // keep the gather oracle cheap
    for (int dim = 0; dim < static_cast<int>(t.shape.size()); ++dim) {
      const int64_t extent = t.shape[dim];
      // Every (start, length) for short dims, a few for long ones.
      const int64_t step = extent <= 8 ? 1 : extent / 3;
      for (int64_t start = 0; start <= extent; start += step) {
        for (int64_t length : {int64_t{1}, extent - start}) {
          if (length > extent - start) continue;
          auto bytes = reader.SliceBytes(t.name, dim, start, length);
          Require(bytes.ok(), "SliceBytes failed on an in-range slice");
          std::vector<unsigned char> slice(*bytes);
          Require(reader.ReadSlice(t.name, dim, start, length, slice.data()).ok(),
                  "ReadSlice failed on an in-range slice");
          Require(slice == Gather(full, t, dim, start, length), "ReadSlice != gather");
        }
        std::vector<unsigned char> sink(full.size() + 1);
        Require(!reader.ReadSlice(t.name, dim, start, extent - start + 1, sink.data()).ok(),
                "ReadSlice accepted a slice past the end of the dim");
      }
    }
  }
}

void CheckRelayout(const SafetensorsReader& reader) {
  std::vector<TensorSpec> specs;
  for (const TensorInfo& t : reader.tensors()) {
    if (t.name.empty()) return;  // the reader accepts it, the writer refuses it
    specs.push_back({t.name, t.dtype, t.shape});
  }
  auto layout = LayoutHeader(specs, reader.metadata());
  if (!layout.ok()) return;  // e.g. a header that only fits under the cap when compact
  auto parsed = ParseHeader(std::string_view(layout->bytes).substr(8), layout->file_size);
  Require(parsed.ok(), "a header written by LayoutHeader does not parse");
  Require(parsed->tensors.size() == specs.size(), "relayout lost tensors");
  Require(parsed->metadata == reader.metadata(), "relayout changed the metadata");
  Require(layout->header.data_offset % 8 == 0, "data section not 8-aligned");
}

// Writes `bytes` into a new memfd; returns its /proc path, or "" (and fd -1) on failure.
std::string MemFile(const void* bytes, size_t size, int* fd) {
  *fd = ::memfd_create("fuzz", MFD_CLOEXEC);
  if (*fd < 0) return "";
  const auto* p = static_cast<const unsigned char*>(bytes);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(*fd, p + done, size - done);
    if (n <= 0) {
      ::close(*fd);
      *fd = -1;
      return "";
    }
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(*fd);
}

void CheckPreadAgrees(const uint8_t* data, size_t size, const HeaderOptions& options,
                      const absl::StatusOr<std::unique_ptr<SafetensorsReader>>& in_memory) {
  int fd = -1;
  const std::string path = MemFile(data, size, &fd);
  if (path.empty()) return;
  auto reader = SafetensorsReader::Open(path, ReaderOptions{ReadMode::kPread, options, {}});
  Require(reader.ok() == in_memory.ok(), "pread and in-memory readers disagree");
  if (reader.ok()) {
    for (const TensorInfo& t : (*reader)->tensors()) {
      std::vector<unsigned char> a(t.nbytes()), b(t.nbytes());
      Require((*reader)->ReadTensor(t.name, a.data()).ok(), "pread ReadTensor failed");
      Require((*in_memory)->ReadTensor(t.name, b.data()).ok(), "memory ReadTensor failed");
      Require(a == b, "pread and in-memory bytes differ");
    }
  } else {
    Require(reader.status().code() == in_memory.status().code(),
            "pread and in-memory readers give different codes");
  }
  ::close(fd);
}

void StructuredCase(const uint8_t* data, size_t size) {
  if (size < 6) return;
  TensorSpec spec;
  spec.name = "t";
  spec.dtype = static_cast<DType>(data[0] % (static_cast<int>(DType::kComplex64) + 1));
  const int rank = data[1] % 4 + 1;
  for (int d = 0; d < rank; ++d) spec.shape.push_back(data[2 + d] % 6);  // 0..5, zeros included
  auto layout = LayoutHeader({spec}, {});
  Require(layout.ok(), "LayoutHeader refused a small tensor");
  const TensorInfo& info = layout->header.tensors[0];
  std::vector<unsigned char> full(info.nbytes());
  const size_t n = size - 6;
  for (size_t i = 0; i < full.size(); ++i) {
    full[i] = n > 0 ? data[6 + i % n] : static_cast<unsigned char>(i);
  }
  std::string file = layout->bytes;
  file.append(reinterpret_cast<const char*>(full.data()), full.size());
  Require(file.size() == layout->file_size, "LayoutHeader file_size is wrong");
  auto reader = SafetensorsReader::FromBuffer(file.data(), file.size());
  Require(reader.ok(), "a LayoutHeader file does not open");
  CheckReader(**reader, file.size());

  // Rewrite the tensor through the writer: pieces along one dim, cut where the input says.
  const int dim = data[5] % rank;
  int fd = -1;
  const std::string path = MemFile(nullptr, 0, &fd);
  if (path.empty()) return;
  const WriteMode mode = data[4] & 0x80 ? WriteMode::kMmap : WriteMode::kPwrite;
  auto writer = SafetensorsWriter::Create(path, {spec}, {}, {Preallocation::kFallocate, mode});
  Require(writer.ok(), "SafetensorsWriter::Create failed on a memfd");
  const int64_t extent = spec.shape[dim];
  int64_t start = 0;
  size_t cursor = 6;
  while (start < extent) {
    int64_t length = 1 + (cursor < size ? data[cursor++] : 0) % (extent - start);
    std::vector<unsigned char> piece = Gather(full, info, dim, start, length);
    Require((*writer)->WriteSlice("t", dim, start, length, piece.data()).ok(),
            "WriteSlice failed on an in-range slice");
    start += length;
  }
  if (extent == 0) Require((*writer)->WriteTensor("t", full.data()).ok(), "empty WriteTensor");
  Require((*writer)->Finish(/*sync=*/false).ok(), "Finish failed");
  auto back = SafetensorsReader::Open(path, {ReadMode::kPread, {}, {}});
  Require(back.ok(), "the writer's file does not open");
  std::vector<unsigned char> whole(info.nbytes());
  Require((*back)->ReadTensor("t", whole.data()).ok(), "ReadTensor of the writer's file failed");
  Require(whole == full, "slices written along a dim do not make up the tensor");
  ::close(fd);
}

}  // namespace
}  // namespace gptb::checkpoint

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gptb::checkpoint;
  // One input in four also runs the (much slower) structured case, so that most of the time
  // goes to the raw header parser.
  if (size > 0 && data[size - 1] % 4 == 0) StructuredCase(data, size);
  for (bool strict : {true, false}) {
    HeaderOptions options;
    options.max_header_bytes = 1 << 20;
    options.require_full_coverage = strict;
    auto reader = SafetensorsReader::FromBuffer(data, size, options);
    if (reader.ok()) {
      CheckReader(**reader, size);
      if (strict) CheckRelayout(**reader);
    } else {
      Require(!reader.status().message().empty(), "an error without a message");
    }
    if (strict) CheckPreadAgrees(data, size, options, reader);
  }
  auto index = ParseIndex(std::string_view(reinterpret_cast<const char*>(data), size));
  if (index.ok()) {
    for (const auto& [name, file] : index->weight_map) {
      Require(!file.empty() && file.find('/') == std::string::npos && file != "..",
              "index accepted a shard path outside its directory");
    }
  }
  return 0;
}
