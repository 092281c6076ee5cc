// Write and read throughput of the safetensors writer/reader on a GPT-sized set of fp32 tensors
// (default: 24 layers, hidden 2048, ffn 8192, vocab 50304, seq 2048, tied embeddings: 1.31B
// parameters, 5.25 GB), against the disk's sequential speed measured in the same run on the same
// number of bytes: dd (bs=16M, conv=fdatasync for writes; buffered and O_DIRECT reads) and a plain
// single-threaded write()/read() loop over the same bytes.
//
// Cold reads: the file's pages are dropped from the page cache with posix_fadvise(DONTNEED) after
// an fdatasync (no root needed), and the fraction still resident is measured with mincore() and
// printed before every cold read. On a VM the host may still cache the disk image; the figures
// then measure the virtual disk as the guest sees it. Warm reads (file in the page cache) are
// printed separately and labelled as such.
//
// Usage: safetensors_bench [--dir DIR] [--layers N] [--hidden H] [--ffn F] [--vocab V]
//                          [--threads T] [--tp P] [--reps R]

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint/safetensors_reader.h"
#include "core/checkpoint/safetensors_writer.h"

namespace {

using gptb::DType;
using gptb::checkpoint::Preallocation;
using gptb::checkpoint::ReadMode;
using gptb::checkpoint::SafetensorsReader;
using gptb::checkpoint::SafetensorsWriter;
using gptb::checkpoint::TensorSpec;
using gptb::checkpoint::WriteMode;

struct Options {
  std::string dir = "/tmp";
  int layers = 24;
  int64_t hidden = 2048;
  int64_t ffn = 8192;
  int64_t vocab = 50304;
  int64_t seq = 2048;
  int threads = 4;
  int tp = 4;
  int reps = 3;
};

// How a tensor is split over tensor-parallel ranks when they load it (Megatron's layout):
// column-parallel weights along dim 0, row-parallel weights along dim 1, the rest replicated.
enum class Split { kDim0, kDim1, kReplicated };

struct BenchTensor {
  TensorSpec spec;
  Split split;
};

std::vector<BenchTensor> GptTensors(const Options& o) {
  std::vector<BenchTensor> t;
  auto add = [&](std::string name, std::vector<int64_t> shape, Split split) {
    t.push_back({{std::move(name), DType::kFloat32, std::move(shape)}, split});
  };
  add("embedding.word_embeddings.weight", {o.vocab, o.hidden}, Split::kDim0);
  add("embedding.position_embeddings.weight", {o.seq, o.hidden}, Split::kReplicated);
  for (int l = 0; l < o.layers; ++l) {
    const std::string p = "decoder.layers." + std::to_string(l) + ".";
    add(p + "self_attention.linear_qkv.layer_norm_weight", {o.hidden}, Split::kReplicated);
    add(p + "self_attention.linear_qkv.layer_norm_bias", {o.hidden}, Split::kReplicated);
    add(p + "self_attention.linear_qkv.weight", {3 * o.hidden, o.hidden}, Split::kDim0);
    add(p + "self_attention.linear_qkv.bias", {3 * o.hidden}, Split::kDim0);
    add(p + "self_attention.linear_proj.weight", {o.hidden, o.hidden}, Split::kDim1);
    add(p + "self_attention.linear_proj.bias", {o.hidden}, Split::kReplicated);
    add(p + "mlp.linear_fc1.layer_norm_weight", {o.hidden}, Split::kReplicated);
    add(p + "mlp.linear_fc1.layer_norm_bias", {o.hidden}, Split::kReplicated);
    add(p + "mlp.linear_fc1.weight", {o.ffn, o.hidden}, Split::kDim0);
    add(p + "mlp.linear_fc1.bias", {o.ffn}, Split::kDim0);
    add(p + "mlp.linear_fc2.weight", {o.hidden, o.ffn}, Split::kDim1);
    add(p + "mlp.linear_fc2.bias", {o.hidden}, Split::kReplicated);
  }
  add("decoder.final_layernorm.weight", {o.hidden}, Split::kReplicated);
  add("decoder.final_layernorm.bias", {o.hidden}, Split::kReplicated);
  return t;
}

uint64_t Bytes(const TensorSpec& s) {
  uint64_t n = 4;
  for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
  return n;
}

double Seconds(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "safetensors_bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(const absl::Status& status) {
  if (!status.ok()) Die(status.ToString());
}

// Flushes the file and drops its pages from the page cache.
void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Fraction of the file's pages in the page cache.
double Resident(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  struct stat st;
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) Die("mmap " + path);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  ::mincore(map, size, vec.data());
  ::munmap(map, size);
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return vec.empty() ? 0.0 : static_cast<double>(resident) / vec.size();
}

void RunShell(const std::string& command) {
  if (std::system(command.c_str()) != 0) Die("failed: " + command);
}

// Runs f(t) on `threads` threads and waits.
void Parallel(int threads, const std::function<void(int)>& f) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(f, t);
  for (std::thread& th : pool) th.join();
}

// Rank r's piece [start, length) of a dim of extent e over p ranks.
std::pair<int64_t, int64_t> Piece(int64_t e, int p, int r) {
  const int64_t start = e * r / p, end = e * (r + 1) / p;
  return {start, end - start};
}

// Throughput samples per measurement, over the repetitions, in first-run order.
class Results {
 public:
  void Add(const std::string& what, double gbps, double cached) {
    auto it =
        std::find_if(rows_.begin(), rows_.end(), [&](const Row& r) { return r.what == what; });
    if (it == rows_.end()) {
      rows_.push_back({what, {}, 0.0});
      it = rows_.end() - 1;
    }
    it->samples.push_back(gbps);
    it->max_cached = std::max(it->max_cached, cached);
    std::printf("    %-66s %7.2f GB/s%s\n", what.c_str(), gbps,
                cached >= 0 ? (" (" + Fixed(100 * cached, 1) + "% cached before)").c_str() : "");
    std::fflush(stdout);
  }
  double Median(const std::string& what) const {
    for (const Row& r : rows_) {
      if (r.what == what) return MedianOf(r.samples);
    }
    return 0;
  }
  // One line per measurement: median, range, and the ratio to the named baselines' medians.
  void PrintTable(const std::string& title, const std::vector<std::string>& names,
                  const std::string& dd, const std::string& best_label, double best) const {
    std::printf("%s\n", title.c_str());
    for (const std::string& name : names) {
      for (const Row& r : rows_) {
        if (r.what != name) continue;
        auto [lo, hi] = std::minmax_element(r.samples.begin(), r.samples.end());
        const double m = MedianOf(r.samples);
        std::string ratio;
        if (!dd.empty() && name != dd) {
          ratio = Fixed(100 * m / Median(dd), 0) + "% of dd, " + Fixed(100 * m / best, 0) +
                  "% of " + best_label;
        }
        std::printf("  %-66s %6.2f GB/s [%5.2f-%5.2f]  %s\n", name.c_str(), m, *lo, *hi,
                    ratio.c_str());
      }
    }
  }

 private:
  struct Row {
    std::string what;
    std::vector<double> samples;
    double max_cached;
  };
  static std::string Fixed(double v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
    return buf;
  }
  static double MedianOf(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty()      ? 0
           : v.size() % 2 ? v[v.size() / 2]
                          : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  std::vector<Row> rows_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--dir")
      o.dir = v;
    else if (flag == "--layers")
      o.layers = std::atoi(v);
    else if (flag == "--hidden")
      o.hidden = std::atoll(v);
    else if (flag == "--ffn")
      o.ffn = std::atoll(v);
    else if (flag == "--vocab")
      o.vocab = std::atoll(v);
    else if (flag == "--threads")
      o.threads = std::atoi(v);
    else if (flag == "--tp")
      o.tp = std::atoi(v);
    else if (flag == "--reps")
      o.reps = std::atoi(v);
    else
      Die("unknown flag " + flag);
  }
  const std::vector<BenchTensor> tensors = GptTensors(o);
  std::vector<TensorSpec> specs;
  uint64_t total = 0, largest = 0, params = 0;
  for (const BenchTensor& t : tensors) {
    specs.push_back(t.spec);
    total += Bytes(t.spec);
    params += Bytes(t.spec) / 4;
    largest = std::max(largest, Bytes(t.spec));
  }
  struct statvfs vfs;
  if (::statvfs(o.dir.c_str(), &vfs) != 0) Die("statvfs " + o.dir);
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free_bytes < total + (uint64_t{1} << 30)) {
    Die("not enough space in " + o.dir + " for " + std::to_string(total) +
        " bytes; pass a smaller --layers/--hidden or another --dir");
  }
  const std::string path = o.dir + "/gptb_safetensors_bench." + std::to_string(::getpid());
  const double gb = total / 1e9;
  std::printf(
      "safetensors_bench: %.3fB fp32 parameters in %zu tensors, %.2f GB (%d layers, hidden %ld, "
      "ffn %ld, vocab %ld), %d threads, TP %d, %d repetitions, file %s (%.0f GB free), %u CPUs\n",
      params / 1e9, tensors.size(), gb, o.layers, static_cast<long>(o.hidden),
      static_cast<long>(o.ffn), static_cast<long>(o.vocab), o.threads, o.tp, o.reps, path.c_str(),
      free_bytes / 1e9, std::thread::hardware_concurrency());

  // Source bytes: one incompressible buffer as large as the largest tensor, shared by all.
  std::vector<unsigned char> source(largest);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= source.size(); i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(&source[i], &x, 8);
  }
  const uint64_t chunk = uint64_t{16} << 20;
  const uint64_t count = (total + chunk - 1) / chunk;
  std::vector<unsigned char> sink(chunk);
  Results results;
  const char* kDdWrite = "dd write, bs=16M, conv=fdatasync";
  const char* kLoopWrite = "write() loop, 16 MiB, same bytes, 1 thread, +fdatasync";
  const char* kDdRead = "dd read, cold, buffered, bs=16M";
  const char* kDdDirect = "dd read, cold, O_DIRECT, bs=16M";
  const char* kLoopRead = "read() loop, 16 MiB, cold, buffered, 1 thread";
  const std::string threads = std::to_string(o.threads) + " threads";
  const std::string tp = "TP=" + std::to_string(o.tp);

  // A cold measurement: drop the file's pages, record how much stayed cached, time f.
  auto cold = [&](const std::string& what, const std::string& file, double bytes,
                  const std::function<void()>& f) {
    DropCache(file);
    const double cached = Resident(file);
    results.Add(what, bytes / 1e9 / Seconds(f), cached);
  };
  auto verify = [&](const std::string& file) {  // every tensor as written (untimed)
    auto reader = SafetensorsReader::Open(file);
    Check(reader.status());
    for (const TensorSpec& s : specs) {
      auto data = (*reader)->Data(s.name);
      Check(data.status());
      if (std::memcmp(*data, source.data(), Bytes(s)) != 0) Die("read-back mismatch: " + s.name);
    }
  };
  // Whole tensors dealt round-robin to threads.
  auto write_whole = [&](WriteMode mode) {
    auto writer = SafetensorsWriter::Create(path, specs, {{"format", "pt"}},
                                            {Preallocation::kFallocate, mode});
    Check(writer.status());
    if ((*writer)->mode() != mode) Die("the writer fell back from the requested mode");
    Parallel(o.threads, [&](int t) {
      for (size_t i = t; i < specs.size(); i += o.threads) {
        Check((*writer)->WriteTensor(specs[i].name, source.data()));
      }
    });
    Check((*writer)->Finish(/*sync=*/true));
  };
  // TP ranks writing their own pieces: dim-0 / dim-1 slices, replicated tensors by rank 0.
  auto write_tp = [&](WriteMode mode) {
    auto writer = SafetensorsWriter::Create(path, specs, {{"format", "pt"}},
                                            {Preallocation::kFallocate, mode});
    Check(writer.status());
    Parallel(o.tp, [&](int rank) {
      for (const BenchTensor& t : tensors) {
        if (t.split == Split::kReplicated) {
          if (rank == 0) Check((*writer)->WriteTensor(t.spec.name, source.data()));
          continue;
        }
        const int dim = t.split == Split::kDim0 ? 0 : 1;
        auto [start, length] = Piece(t.spec.shape[dim], o.tp, rank);
        Check((*writer)->WriteSlice(t.spec.name, dim, start, length, source.data()));
      }
    });
    Check((*writer)->Finish(/*sync=*/true));
  };
  auto read_whole = [&](ReadMode mode) {
    auto reader = SafetensorsReader::Open(path, {mode, {}, {}});
    Check(reader.status());
    Parallel(o.threads, [&](int t) {
      std::vector<unsigned char> buffer(largest);
      for (size_t i = t; i < specs.size(); i += o.threads) {
        Check((*reader)->ReadTensor(specs[i].name, buffer.data()));
      }
    });
  };
  // TP ranks loading their pieces; replicated tensors are read by every rank.
  uint64_t tp_read_bytes = 0;
  for (int rank = 0; rank < o.tp; ++rank) {
    for (const BenchTensor& t : tensors) {
      if (t.split == Split::kReplicated) {
        tp_read_bytes += Bytes(t.spec);
      } else {
        const int dim = t.split == Split::kDim0 ? 0 : 1;
        tp_read_bytes +=
            Bytes(t.spec) / t.spec.shape[dim] * Piece(t.spec.shape[dim], o.tp, rank).second;
      }
    }
  }
  auto read_tp = [&](ReadMode mode) {
    auto reader = SafetensorsReader::Open(path, {mode, {}, {}});
    Check(reader.status());
    Parallel(o.tp, [&](int rank) {
      std::vector<unsigned char> buffer(largest);
      for (const BenchTensor& t : tensors) {
        if (t.split == Split::kReplicated) {
          Check((*reader)->ReadTensor(t.spec.name, buffer.data()));
          continue;
        }
        const int dim = t.split == Split::kDim0 ? 0 : 1;
        auto [start, length] = Piece(t.spec.shape[dim], o.tp, rank);
        Check((*reader)->ReadSlice(t.spec.name, dim, start, length, buffer.data()));
      }
    });
  };

  std::vector<std::string> writes = {kDdWrite, kLoopWrite};
  std::vector<std::string> reads = {kDdRead, kDdDirect, kLoopRead};
  for (int rep = 1; rep <= o.reps; ++rep) {
    std::printf("  repetition %d of %d\n", rep, o.reps);
    // Baselines on the same number of bytes.
    const std::string dd_path = path + ".dd";
    results.Add(kDdWrite, gb / Seconds([&] {
                            RunShell("dd if=/dev/zero of=" + dd_path + " bs=16M count=" +
                                     std::to_string(count) + " conv=fdatasync status=none");
                          }),
                -1);
    cold(kDdRead, dd_path, total,
         [&] { RunShell("dd if=" + dd_path + " of=/dev/null bs=16M status=none"); });
    cold(kDdDirect, dd_path, total,
         [&] { RunShell("dd if=" + dd_path + " of=/dev/null bs=16M iflag=direct status=none"); });
    ::unlink(dd_path.c_str());
    const std::string seq_path = path + ".seq";
    results.Add(kLoopWrite, gb / Seconds([&] {
                              int fd = ::open(seq_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
                              for (uint64_t done = 0; done < total;) {
                                const uint64_t off = done % largest;
                                const uint64_t n = std::min({chunk, total - done, largest - off});
                                ssize_t w = ::write(fd, source.data() + off, n);
                                if (w <= 0) Die("write");
                                done += static_cast<uint64_t>(w);
                              }
                              ::fdatasync(fd);
                              ::close(fd);
                            }),
                -1);
    cold(kLoopRead, seq_path, total, [&] {
      int fd = ::open(seq_path.c_str(), O_RDONLY);
      while (::read(fd, sink.data(), chunk) > 0) {
      }
      ::close(fd);
    });
    ::unlink(seq_path.c_str());

    // safetensors writes, each file checked; the pwrite-written file is then read.
    for (WriteMode mode : {WriteMode::kMmap, WriteMode::kPwrite}) {
      const std::string m = mode == WriteMode::kPwrite ? "pwrite" : "mmap";
      const std::string what = "write, " + m + ", whole tensors, " + threads + ", +fdatasync";
      results.Add(what, gb / Seconds([&] { write_whole(mode); }), -1);
      verify(path);
      if (rep == 1) writes.push_back(what);
    }
    for (ReadMode mode : {ReadMode::kPread, ReadMode::kMmap}) {
      const std::string m = mode == ReadMode::kPread ? "pread" : "mmap";
      const std::string whole = "read, cold, " + m + ", whole tensors, " + threads;
      const std::string shards = "read, cold, " + m + ", " + tp + " shards (dim 0 / strided dim 1)";
      cold(whole, path, total, [&] { read_whole(mode); });
      cold(shards, path, tp_read_bytes, [&] { read_tp(mode); });
      if (rep == 1) reads.insert(reads.end(), {whole, shards});
    }
    for (ReadMode mode : {ReadMode::kPread, ReadMode::kMmap}) {
      const std::string what = std::string("read, warm (page cache), ") +
                               (mode == ReadMode::kPread ? "pread" : "mmap") + ", whole tensors, " +
                               threads;
      read_whole(mode);  // all of it cached
      results.Add(what, gb / Seconds([&] { read_whole(mode); }), Resident(path));
      if (rep == 1) reads.push_back(what);
    }
    ::unlink(path.c_str());
    for (WriteMode mode : {WriteMode::kMmap, WriteMode::kPwrite}) {
      const std::string what = "write, " +
                               std::string(mode == WriteMode::kPwrite ? "pwrite" : "mmap") + ", " +
                               tp + " ranks' own slices (dim 0 / strided dim 1), +fdatasync";
      results.Add(what, gb / Seconds([&] { write_tp(mode); }), -1);
      ::unlink(path.c_str());
      if (rep == 1) writes.push_back(what);
    }
  }

  const double best_write = std::max(results.Median(kDdWrite), results.Median(kLoopWrite));
  const double best_read =
      std::max({results.Median(kDdRead), results.Median(kDdDirect), results.Median(kLoopRead)});
  std::printf(
      "\nmedian of %d repetitions [min-max]; %.2f GB per write; TP shard reads move %.2f GB\n",
      o.reps, gb, tp_read_bytes / 1e9);
  results.PrintTable("writes:", writes, kDdWrite, "best sequential write", best_write);
  results.PrintTable("reads (cold = page cache dropped first; warm = memory copy speed):", reads,
                     kDdRead, "best sequential read", best_read);
  return 0;
}
