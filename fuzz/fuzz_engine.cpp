// The engine path's fuzzer: mutated TorchScript files through `summary`, in the sandbox, each in
// a child process that is watched for signals, hangs and memory.
//
//   fuzz_engine SEEDS_DIR WORK_DIR RUNS [RANDOM_SEED]
//
// Each run takes a seed file (a TorchScript zip under SEEDS_DIR) and mutates it one of three ways:
//   - code: a line of a code/*.py file is deleted, duplicated, moved, edited (a number made huge,
//     negative or zero, a name swapped for another of the file's, a character flipped), or a line
//     that a hostile model would hold is inserted (a file read, an endless loop, a huge tensor, a
//     print with escape codes, a raise, a fork);
//   - pickle: bytes of data.pkl or constants.pkl flipped, inserted or deleted;
//   - raw: bytes of the zip itself flipped (so its CRCs no longer hold).
// The first two are zipped again with valid CRCs (libzip), so that the file reaches LibTorch's
// loader and the model's code runs. Runs go in batches of 64 to a forked child (LibTorch is
// loaded once, in the parent) under a 4 GiB address space, each through footprint::summary_file
// with small limits (EngineLimits: 1 s, 200,000 ops, 256 MiB of CPU tensors). A shared page says
// which run the child is in; a watchdog kills it 1 s past the time limit, as footprint stops its
// engine 5 s past --time-limit, and the batch goes on in a new child from the next run. Each run
// ends as a summary, a summary with gaps, a footprint::Error, or a finding: a signal, an exception
// other than footprint::Error (the CLI's "internal error"), an error that carries LibTorch's stack
// or TorchScript's traceback, or a peak RSS past the address space. Findings and the runs the
// watchdog stopped are kept in WORK_DIR/findings/.
//
// Hand-written rather than libFuzzer: LibTorch is a GCC-built shared library that libFuzzer's
// coverage cannot see, the mutations must keep the zip valid to get past the loader, and a run
// must be free to hang or die without taking the fuzzer with it.
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "footprint/engine.h"
#include "footprint/error.h"

namespace fs = std::filesystem;

namespace {

struct Entry {
  std::string name;
  std::string data;
};

std::vector<Entry> read_zip(const std::string& path) {
  std::vector<Entry> out;
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) return out;
  zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(z, i, 0, &st) != 0) continue;
    zip_file_t* f = zip_fopen_index(z, i, 0);
    if (!f) continue;
    std::string data(st.size, '\0');
    zip_int64_t got = zip_fread(f, data.data(), st.size);
    zip_fclose(f);
    if (got == zip_int64_t(st.size)) out.push_back({st.name, std::move(data)});
  }
  zip_close(z);
  return out;
}

bool write_zip(const std::string& path, const std::vector<Entry>& entries) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) return false;
  for (const auto& e : entries) {
    zip_source_t* src = zip_source_buffer(z, e.data.data(), e.data.size(), 0);
    zip_int64_t i = zip_file_add(z, e.name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (i < 0) {
      zip_source_free(src);
      continue;
    }
    zip_set_file_compression(z, zip_uint64_t(i), ZIP_CM_STORE, 0);
  }
  return zip_close(z) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at <= text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  return lines;
}

// Lines a hostile model's forward might hold (each indented as a forward's body is).
const std::vector<std::string> kHostile = {
    "    _h = torch.from_file(\"/etc/passwd\", False, 64, dtype=0)",
    "    torch.save(x, \"/tmp/footprint-fuzz-save\")",
    "    _h = torch.zeros([1073741824, 1073741824])",
    "    _h = torch.ones([4294967296], device=torch.device(\"cpu\"))",
    "    _h = torch.empty([-1])",
    "    while True:\n      pass",
    "    for _i in range(100000000):\n      x = torch.add(x, 1)",
    "    print(chr(27) + \"[2J\" + chr(12))",
    "    ops.prim.RaiseException(\"fuzz\" + chr(27), \"builtins.RuntimeError\")",
    "    _h = torch.jit._fork(torch.add, x, 1)",
    "    _h = [0]\n    for _i in range(40):\n      _h = _h + _h",
    "    _h = torch.to(x, torch.device(\"cuda:0\"))",
    "    _h = torch.item(torch.sum(x))",
    "    _h = torch.reshape(x, [-1, 0])",
};

std::string mutate_code(const std::string& text, std::mt19937_64& rng) {
  auto lines = split_lines(text);
  if (lines.empty()) return text;
  auto pick = [&](size_t n) { return size_t(rng() % std::max<size_t>(n, 1)); };
  size_t i = pick(lines.size());
  switch (rng() % 7) {
    case 0:
      lines.erase(lines.begin() + long(i));
      break;
    case 1:
      lines.insert(lines.begin() + long(i), lines[i]);
      break;
    case 2:
      std::swap(lines[i], lines[pick(lines.size())]);
      break;
    case 3: {  // a number made extreme
      std::string& l = lines[i];
      for (size_t k = 0; k < l.size(); ++k)
        if (std::isdigit(static_cast<unsigned char>(l[k]))) {
          size_t end = k;
          while (end < l.size() && std::isdigit(static_cast<unsigned char>(l[end]))) ++end;
          static const char* numbers[] = {
              "0",    "-1", "4294967296", "9223372036854775807", "1e308", "-9223372036854775808",
              "65536"};
          l.replace(k, end - k, numbers[rng() % 7]);
          break;
        }
      break;
    }
    case 4: {  // a name replaced by another word of the file
      std::vector<std::string> words;
      std::string w;
      for (char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
          w += c;
        } else if (!w.empty()) {
          words.push_back(w);
          w.clear();
        }
      }
      if (words.empty()) break;
      std::string& l = lines[i];
      std::string from = words[pick(words.size())], to = words[pick(words.size())];
      size_t at = l.find(from);
      if (at != std::string::npos) l.replace(at, from.size(), to);
      break;
    }
    case 5:
      if (!lines[i].empty()) lines[i][pick(lines[i].size())] = char(rng() % 128);
      break;
    default: {  // a hostile line at the start of a function's body
      std::vector<size_t> bodies;
      for (size_t k = 0; k + 1 < lines.size(); ++k)
        if (lines[k].rfind("  def ", 0) == 0)
          for (size_t b = k; b < lines.size(); ++b)
            if (lines[b].find(") -> ") != std::string::npos ||
                (lines[b].size() > 1 && lines[b].back() == ':')) {
              bodies.push_back(b + 1);
              break;
            }
      size_t at = bodies.empty() ? i : bodies[pick(bodies.size())];
      lines.insert(lines.begin() + long(std::min(at, lines.size())),
                   kHostile[pick(kHostile.size())]);
    }
  }
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) out += lines[k] + (k + 1 < lines.size() ? "\n" : "");
  return out;
}

void mutate_bytes(std::string& data, std::mt19937_64& rng) {
  int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits && !data.empty(); ++e) {
    size_t at = rng() % data.size();
    switch (rng() % 3) {
      case 0:
        data[at] = char(rng());
        break;
      case 1:
        data.insert(at, 1, char(rng()));
        break;
      default:
        data.erase(at, 1 + rng() % 8);
    }
  }
}

// A mutated copy of `seed` at `out`; returns what was done.
std::string mutate(const std::string& seed, const std::string& out, std::mt19937_64& rng) {
  int kind = int(rng() % 10);
  if (kind == 0) {
    std::string bytes = read_file(seed);
    mutate_bytes(bytes, rng);
    write_file(out, bytes);
    return "raw";
  }
  auto entries = read_zip(seed);
  std::vector<size_t> code, pickles;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& n = entries[i].name;
    if (n.find("/code/") != std::string::npos && n.size() > 3 &&
        n.compare(n.size() - 3, 3, ".py") == 0)
      code.push_back(i);
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".pkl") == 0 &&
        n.find("debug_pkl") == std::string::npos)
      pickles.push_back(i);
  }
  // The debug_pkl maps the old code's offsets: it goes with any code edit.
  std::string what;
  if (kind <= 2 && !pickles.empty()) {
    mutate_bytes(entries[pickles[rng() % pickles.size()]].data, rng);
    what = "pickle";
  } else if (!code.empty()) {
    int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      auto& entry = entries[code[rng() % code.size()]];
      entry.data = mutate_code(entry.data, rng);
    }
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const Entry& e) {
                                   return e.name.find(".debug_pkl") != std::string::npos;
                                 }),
                  entries.end());
    what = "code";
  }
  write_zip(out, entries);
  return what;
}

// What a batch's child and the parent share (an anonymous shared mapping made before the fork).
struct Shared {
  static constexpr int kBatch = 64;
  std::atomic<int> index{-1};          // the run the child is in, within the batch
  std::atomic<int64_t> started_ns{0};  // when it started (steady clock)
  int status[kBatch] = {};             // each run's outcome code (below), -1 until it ends
  long rss_kib[kBatch] = {};           // the child's peak RSS after each run
  char message[kBatch][512] = {};      // each run's error message, cut short
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One run in the child: 0 a summary, 1 footprint::Error, 3 printed with gaps, 4 another exception
// (the CLI's "internal error"), 5 an error carrying LibTorch's stack or TorchScript's traceback.
int run_one(const std::string& file, double seconds, std::string& message) {
  footprint::SummaryOptions o;
  o.inputs = footprint::parse_inputs("2x4");
  o.limits.seconds = seconds;
  o.limits.ops = 200'000;
  try {
    footprint::Summary s = footprint::summary_file(file, o);
    return s.complete() ? 0 : 3;
  } catch (const footprint::Error& e) {
    message = e.what();
    for (const char* leak : {"frame #", "Traceback of TorchScript", "Exception raised from"})
      if (message.find(leak) != std::string::npos) return 5;
    return 1;
  } catch (const std::exception& e) {
    message = e.what();
    return 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: fuzz_engine SEEDS_DIR WORK_DIR RUNS [RANDOM_SEED]\n");
    return 2;
  }
  std::vector<std::string> seeds;
  for (const auto& e : fs::directory_iterator(argv[1]))
    if (e.path().extension() == ".pt") seeds.push_back(e.path().string());
  std::sort(seeds.begin(), seeds.end());
  if (seeds.empty()) {
    std::fprintf(stderr, "fuzz_engine: no .pt file in %s\n", argv[1]);
    return 2;
  }
  fs::path work = argv[2];
  fs::create_directories(work / "findings");
  fs::create_directories(work / "batch");
  long runs = std::atol(argv[3]);
  std::mt19937_64 rng(argc > 4 ? std::stoull(argv[4]) : 1);
  at::set_num_threads(1);

  // The CLI's limits, smaller: a run may take kRunSeconds in the engine, and the watchdog stops it
  // kGrace later, as footprint stops its engine 5 s past --time-limit.
  constexpr double kRunSeconds = 1, kGrace = 1;
  constexpr long kAddressSpace = 4L << 30;
  auto* shared = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) return 1;
  std::map<std::string, long> outcomes;
  long signals = 0, watchdog = 0, over_memory = 0, leaks = 0, internal = 0, max_rss = 0;
  auto started = std::chrono::steady_clock::now();
  for (long base = 0; base < runs; base += Shared::kBatch) {
    int n = int(std::min<long>(Shared::kBatch, runs - base));
    std::vector<std::string> files(static_cast<size_t>(n)), what(files), from(files);
    for (int k = 0; k < n; ++k) {
      files[size_t(k)] = (work / "batch" / ("run-" + std::to_string(k) + ".pt")).string();
      from[size_t(k)] = seeds[rng() % seeds.size()];
      what[size_t(k)] = mutate(from[size_t(k)], files[size_t(k)], rng);
    }
    new (shared) Shared();
    for (int k = 0; k < n; ++k) shared->status[k] = -1;
    std::vector<std::string> fate(static_cast<size_t>(n));  // a signal or the watchdog, per run
    int next = 0;
    while (next < n) {
      pid_t pid = fork();
      if (pid == 0) {
        rlimit core{0, 0};
        setrlimit(RLIMIT_CORE, &core);
        rlimit as{rlim_t(kAddressSpace), rlim_t(kAddressSpace)};
        setrlimit(RLIMIT_AS, &as);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);  // the models' prints and LibTorch's warnings
        for (int k = next; k < n; ++k) {
          shared->started_ns = now_ns();
          shared->index = k;
          std::string message;
          int status = run_one(files[size_t(k)], kRunSeconds, message);
          std::snprintf(shared->message[k], sizeof shared->message[k], "%s", message.c_str());
          rusage usage{};
          getrusage(RUSAGE_SELF, &usage);
          shared->rss_kib[k] = usage.ru_maxrss;
          shared->status[k] = status;
        }
        _exit(0);
      }
      int status = 0;
      bool killed = false;
      while (waitpid(pid, &status, WNOHANG) == 0) {
        int k = shared->index;
        if (k >= 0 && shared->status[k] < 0 &&
            double(now_ns() - shared->started_ns) / 1e9 > kRunSeconds + kGrace) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          killed = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      int k = shared->index;
      if (k >= 0 && k < n && shared->status[k] < 0) {  // it died in run k
        fate[size_t(k)] = killed ? "stopped by the watchdog"
                          : WIFSIGNALED(status)
                              ? std::string("signal ") + strsignal(WTERMSIG(status))
                              : "exited in the middle";
        next = k + 1;
      } else {
        next = n;
      }
    }
    for (int k = 0; k < n; ++k) {
      std::string outcome;
      bool finding = false;
      int code = shared->status[k];
      if (!fate[size_t(k)].empty()) {
        outcome = fate[size_t(k)];
        if (outcome == "stopped by the watchdog") {
          ++watchdog;
        } else {
          ++signals;
          finding = true;
        }
      } else {
        outcome = code == 0   ? "summary"
                  : code == 1 ? "error (one line)"
                  : code == 3 ? "summary with gaps"
                  : code == 4 ? "internal error"
                              : "error with a stack";
        if (code == 4) ++internal;
        if (code == 5) ++leaks;
        finding = code == 4 || code == 5;
      }
      max_rss = std::max(max_rss, shared->rss_kib[k]);
      if (shared->rss_kib[k] > kAddressSpace / 1024) {
        ++over_memory;
        finding = true;
      }
      outcomes[what[size_t(k)] + ": " + outcome]++;
      if (finding || outcome == "stopped by the watchdog") {
        std::string keep =
            (work / "findings" / ("run-" + std::to_string(base + k) + ".pt")).string();
        fs::copy_file(files[size_t(k)], keep, fs::copy_options::overwrite_existing);
        std::fprintf(stderr, "fuzz_engine: run %ld (%s, from %s): %s: %s -> %s\n", base + k,
                     what[size_t(k)].c_str(), from[size_t(k)].c_str(), outcome.c_str(),
                     footprint::escape_text(shared->message[k]).c_str(), keep.c_str());
      }
    }
    if ((base / Shared::kBatch) % 16 == 15)
      std::fprintf(stderr, "fuzz_engine: %ld runs\n", base + n);
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("fuzz_engine: %ld runs in %.0f s (%.1f ms each) from %zu seeds\n", runs, seconds,
              1000 * seconds / double(std::max(runs, 1L)), seeds.size());
  for (const auto& [k, v] : outcomes) std::printf("  %-40s %ld\n", k.c_str(), v);
  std::printf(
      "signals %ld; stopped by the watchdog %.0f s past the time limit (an endless loop that runs "
      "no op, which footprint's parent stops the same way) %ld; over the %ld MiB address space "
      "%ld (largest RSS %ld MiB); errors with a stack %ld; internal errors %ld\n",
      signals, kGrace, watchdog, kAddressSpace >> 20, over_memory, max_rss / 1024, leaks, internal);
  return signals + over_memory + leaks + internal == 0 ? 0 : 1;
}
