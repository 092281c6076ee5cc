// Model-level checkpoint throughput: SaveCheckpoint and LoadCheckpoint of a 1.3B-parameter GPT
// held by one rank (24 layers, hidden 2048, ffn 8192, vocab 50304, seq 2048; fp32 by default:
// 5.3 GB), through the plan (canonical tensors, slice ownership, routes, sharded files of at most
// 5 GB plus the index), against the disk's sequential speed measured in the same run on the same
// number of bytes with dd: write bs=16M conv=fdatasync, read bs=16M after dropping the file from
// the page cache; plus a plain single-threaded write() loop of the model's own bytes (16 MiB
// writes, then fdatasync), since a virtual disk may treat dd's zeros specially.
// bench/safetensors_bench measures the raw safetensors layer the same way.
//
// Save time covers everything SaveCheckpoint does: planning the files, preallocating them,
// writing, fdatasync, and publishing the directory. Cold loads drop the checkpoint's pages with
// posix_fadvise(DONTNEED) first (the fraction still cached is printed); warm loads read from the
// page cache. Every load is checked against the saved weights (untimed).
//
// Usage: checkpoint_bench [--dir DIR] [--dtype fp32|bf16] [--threads T] [--reps R]
//                         [--layers N]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint/canonical_checkpoint.h"
#include "core/config/finalize.h"
#include "core/init/checksum.h"
#include "core/model/gpt_stage.h"
#include "core/model/rank_model.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string dir = "/tmp";
  std::string dtype = "fp32";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int reps = 3;
  int layers = 24;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "checkpoint_bench: %s\n", what.c_str());
  std::exit(1);
}

double Seconds(const std::function<void()>& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void RunShell(const std::string& command) {
  if (std::system(command.c_str()) != 0) Die("failed: " + command);
}

// The regular files under `path` (a file or a directory).
std::vector<std::string> Files(const std::string& path) {
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_regular_file()) files.push_back(e.path().string());
    }
  } else {
    files.push_back(path);
  }
  return files;
}

void DropCache(const std::string& path) {
  for (const std::string& file : Files(path)) {
    const int fd = ::open(file.c_str(), O_RDONLY);
    if (fd < 0) Die("open " + file);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Fraction of the pages of the files under `path` in the page cache.
double Resident(const std::string& path) {
  size_t resident = 0, pages = 0;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (const std::string& file : Files(path)) {
    const int fd = ::open(file.c_str(), O_RDONLY);
    if (fd < 0) Die("open " + file);
    struct stat st;
    ::fstat(fd, &st);
    const size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
      ::close(fd);
      continue;
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) Die("mmap " + file);
    std::vector<unsigned char> vec((size + page - 1) / page);
    ::mincore(map, size, vec.data());
    ::munmap(map, size);
    for (unsigned char v : vec) resident += v & 1;
    pages += vec.size();
  }
  return pages == 0 ? 0.0 : static_cast<double>(resident) / pages;
}

gptbuilder::v1::GPTModelConfig Model(const Options& o) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(o.layers);
  t->set_hidden_size(2048);
  t->set_num_attention_heads(16);
  t->set_ffn_hidden_size(8192);
  c.set_vocab_size(50304);
  c.set_seq_length(2048);
  c.mutable_transformer_layer_spec()->set_name("local");
  if (o.dtype == "bf16") {
    t->set_bf16(true);
    t->set_params_dtype("bfloat16");
  } else if (o.dtype != "fp32") {
    Die("--dtype must be fp32 or bf16");
  }
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = gptb::config::Finalize(c, {1});
  if (!f.ok()) Die(std::string(f.status().message()));
  return *f;
}

std::vector<uint64_t> Checksums(const gptb::model::RankModel& model) {
  std::vector<uint64_t> sums;
  for (const auto& stage : model.stages()) {
    for (const auto& item : stage->named_parameters()) {
      const torch::Tensor t = item.value().detach().contiguous();
      sums.push_back(gptb::init::Checksum(t.data_ptr(), t.numel() * t.element_size()));
    }
  }
  return sums;
}

// Writes every parameter's bytes back to back to `path` in 16 MiB write() calls, then fdatasync.
void WriteLoop(const gptb::model::RankModel& model, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open " + path);
  const size_t chunk = size_t{16} << 20;
  for (const auto& stage : model.stages()) {
    for (const auto& item : stage->named_parameters()) {
      const torch::Tensor t = item.value().detach();
      const auto* p = static_cast<const unsigned char*>(t.data_ptr());
      size_t left = t.numel() * t.element_size();
      while (left > 0) {
        const ssize_t n = ::write(fd, p, std::min(left, chunk));
        if (n <= 0) Die("write " + path);
        p += n;
        left -= static_cast<size_t>(n);
      }
    }
  }
  if (::fdatasync(fd) != 0) Die("fdatasync " + path);
  ::close(fd);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--dir") {
      o.dir = v;
    } else if (flag == "--dtype") {
      o.dtype = v;
    } else if (flag == "--threads") {
      o.threads = std::atoi(v);
    } else if (flag == "--reps") {
      o.reps = std::atoi(v);
    } else if (flag == "--layers") {
      o.layers = std::atoi(v);
    } else {
      Die("unknown flag " + flag);
    }
  }
  gptb::model::RankBuildOptions build;
  build.config = Model(o);
  build.build.set_seed(1);
  const auto built_start = Clock::now();
  absl::StatusOr<std::unique_ptr<gptb::model::RankModel>> model =
      gptb::model::BuildRankModel(build);
  if (!model.ok()) Die(model.status().ToString());
  const double build_seconds = std::chrono::duration<double>(Clock::now() - built_start).count();
  const uint64_t bytes = static_cast<uint64_t>((*model)->parameter_bytes());
  const double gb = bytes / 1e9;

  struct statvfs vfs;
  if (::statvfs(o.dir.c_str(), &vfs) != 0) Die("statvfs " + o.dir);
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free_bytes < 2 * bytes + (uint64_t{1} << 30)) {
    Die("not enough space in " + o.dir + " for two copies of " + std::to_string(bytes) +
        " bytes; pass --layers N or another --dir");
  }
  const std::string base = o.dir + "/gptb_checkpoint_bench." + std::to_string(::getpid());
  const std::string ckpt = base + ".ckpt", dd_path = base + ".dd";
  std::printf(
      "checkpoint_bench: %.3fB %s parameters, %.2f GB on one rank (built in %.1f s), %d threads, "
      "%d repetitions, checkpoint %s (%.0f GB free), %u CPUs\n",
      (*model)->plan().TotalParameters() / 1e9, o.dtype.c_str(), gb, build_seconds, o.threads,
      o.reps, ckpt.c_str(), free_bytes / 1e9, std::thread::hardware_concurrency());
  const std::vector<uint64_t> expected = Checksums(**model);

  const uint64_t chunk = uint64_t{16} << 20;
  const uint64_t count = (bytes + chunk - 1) / chunk;
  std::vector<double> dd_write, loop_write, dd_read, save, load_cold, load_warm;
  int files = 0;
  for (int rep = 0; rep < o.reps; ++rep) {
    std::printf("  repetition %d\n", rep + 1);
    dd_write.push_back(gb / Seconds([&] {
                         RunShell("dd if=/dev/zero of=" + dd_path + " bs=16M count=" +
                                  std::to_string(count) + " conv=fdatasync status=none");
                       }));
    DropCache(dd_path);
    const double dd_cached = Resident(dd_path);
    dd_read.push_back(
        gb / Seconds([&] { RunShell("dd if=" + dd_path + " of=/dev/null bs=16M status=none"); }));
    fs::remove(dd_path);
    loop_write.push_back(gb / Seconds([&] { WriteLoop(**model, dd_path); }));
    fs::remove(dd_path);
    std::printf(
        "    dd write %.2f GB/s, write() loop %.2f GB/s, dd read (cold, %.1f%% cached) %.2f GB/s\n",
        dd_write.back(), loop_write.back(), 100 * dd_cached, dd_read.back());

    gptb::checkpoint::SaveOptions save_options;
    save_options.overwrite = true;
    save_options.threads = o.threads;
    absl::StatusOr<gptb::checkpoint::SaveStats> saved;
    save.push_back(gb / Seconds([&] {
                     saved = gptb::checkpoint::SaveCheckpoint(**model, ckpt, save_options);
                   }));
    if (!saved.ok()) Die(saved.status().ToString());
    files = saved->files;

    gptb::checkpoint::LoadOptions load_options;
    load_options.threads = o.threads;
    DropCache(ckpt);
    const double cached = Resident(ckpt);
    absl::StatusOr<gptb::checkpoint::LoadStats> loaded;
    load_cold.push_back(gb / Seconds([&] {
                          loaded = gptb::checkpoint::LoadCheckpoint(**model, ckpt, load_options);
                        }));
    if (!loaded.ok()) Die(loaded.status().ToString());
    if (Checksums(**model) != expected) Die("the loaded weights differ from the saved ones");
    load_warm.push_back(gb / Seconds([&] {
                          loaded = gptb::checkpoint::LoadCheckpoint(**model, ckpt, load_options);
                        }));
    if (!loaded.ok()) Die(loaded.status().ToString());
    std::printf(
        "    save %.2f GB/s (%d files), load cold (%.1f%% cached) %.2f GB/s, load warm %.2f GB/s\n",
        save.back(), files, 100 * cached, load_cold.back(), load_warm.back());
    std::fflush(stdout);
  }
  fs::remove_all(ckpt);
  const double w = Median(dd_write), lw = Median(loop_write), r = Median(dd_read);
  std::printf("medians over %d repetitions (%.2f GB):\n", o.reps, gb);
  std::printf("  dd write, bs=16M, conv=fdatasync         %6.2f GB/s\n", w);
  std::printf("  write() loop, same bytes, +fdatasync     %6.2f GB/s\n", lw);
  std::printf(
      "  SaveCheckpoint (fdatasync, publish)      %6.2f GB/s  %3.0f%% of dd write, %3.0f%% of "
      "the write() loop\n",
      Median(save), 100 * Median(save) / w, 100 * Median(save) / lw);
  std::printf("  dd read, cold, bs=16M                    %6.2f GB/s\n", r);
  std::printf("  LoadCheckpoint, cold                     %6.2f GB/s  %3.0f%% of dd read\n",
              Median(load_cold), 100 * Median(load_cold) / r);
  std::printf("  LoadCheckpoint, warm (page cache)        %6.2f GB/s\n", Median(load_warm));
  return 0;
}
