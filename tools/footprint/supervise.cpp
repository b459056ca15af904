// The supervisor of the engine process (supervise.h; docs/engine.md, "The process boundary").
#include "supervise.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "footprint/error.h"
#include "footprint/report.h"
#include "footprint/versions.h"

#ifndef FOOTPRINT_PYTHON_EXE
#define FOOTPRINT_PYTHON_EXE ""
#endif

namespace footprint::cli {
namespace {

constexpr int kExitError = 1;
constexpr double kGraceSeconds = 5;  // past --time-limit, for the engine's own clock to stop it
constexpr int kPollMs = 10;          // how often the engine's memory is looked at
constexpr size_t kLongestLine = 64 << 10;             // bytes of one stderr line passed on at once
constexpr int64_t kAddressSpace = int64_t(16) << 30;  // the backstop: LibTorch maps 2.6 GiB,
                                                      // Python with the CUDA wheel about 3 GiB
// What `python -I -c` runs: the package's folder first on the path when one is given (the build
// tree's, or the one the console script came from), then the engine.
constexpr const char* kBootstrap =
    "import sys\n"
    "p = sys.argv.pop(1)\n"
    "if p:\n"
    "    sys.path.insert(0, p)\n"
    "try:\n"
    "    import footprint\n"
    "except ImportError as e:\n"  // another torch than footprint's (footprint/__init__.py)
    "    sys.stderr.write(f'footprint: {e}\\n')\n"
    "    sys.stdout.write('\\0footprint-exit 2\\n')\n"
    "    sys.exit(2)\n"
    "from footprint.cli import engine\n"
    "engine()\n";
constexpr std::string_view kStatusMark("\0footprint-exit ", 16);  // cli.py's STATUS_MARK

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

std::string directory_of_this_program() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// A process's resident bytes, from /proc/PID/statm (in pages), or 0 when it is gone.
int64_t resident_bytes(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/statm", pid));
  long long size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return int64_t(resident) * sysconf(_SC_PAGESIZE);
}

// The children of this process: those it started, and orphans it took in as their subreaper.
std::vector<pid_t> children() {
  std::vector<pid_t> out;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(fmt::format("/proc/self/task/{}/children", e->d_name));
      pid_t pid;
      while (f >> pid) out.push_back(pid);
    }
    closedir(d);
  }
  return out;
}

// Kills the engine's process group, then every process left behind (a grandchild that started a
// session of its own is reparented here, this process being their subreaper), and reaps them.
void end_every_process(pid_t group) {
  kill(-group, SIGKILL);
  for (int round = 0; round < 50; ++round) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    std::vector<pid_t> left = children();
    if (left.empty()) return;
    for (pid_t p : left) kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Reads what is there without blocking; false once the pipe is closed (or broken).
bool drain(int fd, std::string& into) {
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, size_t(n));
      continue;
    }
    if (n == 0) return false;
    return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

// The engine's stderr, passed on a line at a time, each escaped: the engine's own lines are
// escaped already (escaping is idempotent), and whatever else reached the descriptor (a model's
// raw write, a library's message) cannot drive the terminal.
void pass_lines(std::string& pending, bool all) {
  size_t start = 0;
  while (true) {
    size_t nl = pending.find('\n', start);
    size_t end = nl;
    if (nl == std::string::npos) {
      if (pending.size() - start >= kLongestLine || (all && start < pending.size()))
        end = std::min(pending.size(), start + kLongestLine);
      else
        break;
    }
    fmt::print(stderr, "{}\n", escape_text(std::string_view(pending).substr(start, end - start)));
    start = nl == std::string::npos ? end : nl + 1;
  }
  pending.erase(0, start);
  std::fflush(stderr);
}

// The release of the torch installed beside the package (site-packages/footprint/bin ->
// site-packages/torch/version.py, whose `__version__ = '2.15.0+cu130'` line is read as text), whose
// LibTorch footprint-engine loads there; "" in the build tree, where there is none.
std::string torch_beside(const std::string& dir) {
  std::ifstream f(dir + "/../../torch/version.py");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("__version__", 0) != 0) continue;
    size_t open = line.find_first_of("'\"");
    size_t close = open == std::string::npos ? open : line.find(line[open], open + 1);
    if (close == std::string::npos) return "";
    std::string v = line.substr(open + 1, close - open - 1);
    return v.substr(0, v.find('+'));
  }
  return "";
}

// The Python that runs Python engines: FOOTPRINT_PYTHON, else the one footprint was built with.
std::vector<std::string> python_candidates() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("FOOTPRINT_PYTHON")) tried.push_back(env);
  if (std::strlen(FOOTPRINT_PYTHON_EXE) > 0) tried.push_back(FOOTPRINT_PYTHON_EXE);
  return tried;
}

// huggingface_hub's download of a config and its safetensors index (hub.h); the repository's
// name and revision are arguments, never code.
constexpr const char* kHubDownload =
    "import sys\n"
    "name, revision = sys.argv[1], sys.argv[2] or None\n"
    "try:\n"
    "    from huggingface_hub import hf_hub_download\n"
    "    hf_hub_download(name, 'config.json', revision=revision)\n"
    "except Exception as e:\n"
    "    lines = [l for l in str(e).splitlines() if l.strip()]\n"
    "    sys.stderr.write(type(e).__name__ + (': ' + lines[0] if lines else '') + '\\n')\n"
    "    sys.exit(1)\n"
    "try:\n"
    "    hf_hub_download(name, 'model.safetensors.index.json', revision=revision)\n"
    "except Exception:\n"
    "    pass\n";

}  // namespace

std::string hub_download(const std::string& name, const std::string& revision) {
  std::string python;
  for (const auto& p : python_candidates())
    if (python.empty() && access(p.c_str(), X_OK) == 0) python = p;
  if (python.empty())
    return "downloading it needs a Python with huggingface_hub: set FOOTPRINT_PYTHON to one";
  int err_pipe[2];
  if (pipe(err_pipe) != 0) return "cannot start Python to download it";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    close(err_pipe[1]);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 1);
    execl(python.c_str(), python.c_str(), "-I", "-c", kHubDownload, name.c_str(), revision.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  std::string errors;
  char buf[4096];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) {
    if (errors.size() < 65536) errors.append(buf, static_cast<size_t>(n));
  }
  close(err_pipe[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return "cannot start Python to download it";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  while (!errors.empty() && (errors.back() == '\n' || errors.back() == '\r')) errors.pop_back();
  std::string last =
      errors.substr(errors.rfind('\n') == std::string::npos ? 0 : errors.rfind('\n') + 1);
  return "huggingface_hub could not download it: " +
         escape_text(last.empty() ? "no reason given" : last);
}

int supervise(const std::vector<std::string>& args, const Supervision& s, FILE* out) {
  std::vector<std::string> tried;
  std::string dir = directory_of_this_program();
  std::string package;  // the Python package's folder, for sys.path
  if (s.python) {
    tried = python_candidates();
    if (access((dir + "/python/footprint/__init__.py").c_str(), R_OK) == 0)
      package = dir + "/python";
    else if (const char* env = std::getenv("FOOTPRINT_PACKAGE"))
      package = env;
  } else {
    if (const char* env = std::getenv("FOOTPRINT_ENGINE")) tried.push_back(env);
    tried.push_back(dir + "/footprint-engine");
    tried.push_back(dir + "/../libexec/footprint/footprint-engine");
  }
  std::string path;
  for (const auto& p : tried)
    if (path.empty() && access(p.c_str(), X_OK) == 0) path = p;
  auto fail = [&](const std::string& message) {
    std::string line = s.file.empty() ? message : escape_text(s.file) + ": " + message;
    fmt::print(stderr, "footprint: {}\n", line);
    if (s.json)
      fmt::print(out, "{}\n", nlohmann::json{{"error", line}, {"exit_status", kExitError}}.dump(2));
    return kExitError;
  };
  std::string beside = s.python ? "" : torch_beside(dir);
  if (!beside.empty() && !torch_built().empty() && beside != torch_built())
    return fail(fmt::format(
        "footprint was built against torch {}, and its environment has torch {}: reinstall it "
        "against this torch (pip install --no-build-isolation --no-cache-dir --force-reinstall, "
        "docs/versions.md)",
        torch_built(), escape_text(beside)));
  if (path.empty())
    return fail(s.python
                    ? fmt::format("it runs in Python, which needs a Python with torch and "
                                  "footprint's package (pip install .): set FOOTPRINT_PYTHON to "
                                  "it (looked for {})",
                                  fmt::join(tried, ", "))
                    : fmt::format("this command needs footprint-engine (the part built with "
                                  "LibTorch), which is not installed: looked for {}",
                                  fmt::join(tried, ", ")));
  std::vector<std::string> argv = {path};
  if (s.python) argv.insert(argv.end(), {"-I", "-c", kBootstrap, package});
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> child_argv;
  for (auto& a : argv) child_argv.push_back(a.data());
  child_argv.push_back(nullptr);

  constexpr size_t kPage = 4096;
  int page_fd = memfd_create("footprint-engine-status", 0);  // inherited by the child
  char* page = nullptr;
  if (page_fd >= 0 && ftruncate(page_fd, kPage) == 0) {
    void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
    if (p != MAP_FAILED) page = static_cast<char*>(p);
  }
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    return fail(fmt::format("cannot run {}: {}", path, std::strerror(errno)));
  prctl(PR_SET_CHILD_SUBREAPER, 1);  // what the engine leaves behind comes back here
  auto start = std::chrono::steady_clock::now();
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return fail(fmt::format("cannot run {}: {}", path, std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // the engine does not outlive a footprint killed outright
    if (getppid() != parent) _exit(kExitError);  // it died before prctl took effect
    setpgid(0, 0);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    if (page) setenv("FOOTPRINT_STATUS_FD", std::to_string(page_fd).c_str(), 1);
    rlimit core{0, 0};
    setrlimit(RLIMIT_CORE, &core);
    rlim_t space = rlim_t(std::max(kAddressSpace, 2 * s.memory_bytes));
    rlimit as{space, space};
    setrlimit(RLIMIT_AS, &as);
    // CPU time as a backstop to the wall time, for every core the engine may use.
    rlim_t cpu = rlim_t(s.seconds * std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))) + 10;
    rlimit cpu_limit{cpu, cpu + 5};
    setrlimit(RLIMIT_CPU, &cpu_limit);
    execv(path.c_str(), child_argv.data());
    fmt::print(stderr, "footprint: cannot run {}: {}\n", path, std::strerror(errno));
    _exit(kExitError);
  }
  setpgid(pid, pid);  // as the child does: whichever runs first
  close(out_pipe[1]);
  close(err_pipe[1]);
  for (int fd : {out_pipe[0], err_pipe[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(s.seconds + kGraceSeconds));
  std::string report, errors;
  bool out_open = true, err_open = true, timed_out = false, too_big = false;
  int status = 0;
  while (true) {
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    poll(fds, 2, kPollMs);
    if (out_open) out_open = drain(out_pipe[0], report);
    if (err_open) err_open = drain(err_pipe[0], errors);
    pass_lines(errors, false);
    if (waitpid(pid, &status, WNOHANG) == pid) {
      // Exited: what is left in the pipes, without waiting for a grandchild that holds them.
      drain(out_pipe[0], report);
      drain(err_pipe[0], errors);
      break;
    }
    // A thirty-second of the limit short of it (32 MiB of 1 GiB), for what the engine takes
    // in the 10 ms between looks: the engine stays under the limit. The engine's own check stops
    // an op flood sooner, a sixteenth short (sandbox.cpp), and reports it itself.
    if (s.memory_bytes > 0 && resident_bytes(pid) > s.memory_bytes - s.memory_bytes / 32) {
      too_big = true;
    } else if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
    } else {
      continue;
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    break;
  }
  end_every_process(pid);
  pass_lines(errors, true);
  close(out_pipe[0]);
  close(err_pipe[0]);
  std::string running;
  if (page) {
    running = std::string(page, strnlen(page, kPage));
    munmap(page, kPage);
  }
  if (page_fd >= 0) close(page_fd);
  std::string at = running.empty() ? "" : " while running " + escape_text(running);
  if (!timed_out && !too_big && WIFEXITED(status)) {
    if (!s.python) {
      std::fwrite(report.data(), 1, report.size(), out);
      return WEXITSTATUS(status);
    }
    // The Python engine's own status, at the end of its report; without it, the model's code
    // ended the process before footprint finished.
    size_t mark = report.rfind(kStatusMark);
    int own = -1;
    if (mark != std::string::npos) {
      std::string tail = report.substr(mark + kStatusMark.size());
      char* end = nullptr;
      long v = std::strtol(tail.c_str(), &end, 10);
      if (end != tail.c_str() && v >= 0 && v < 256) own = int(v);
    }
    if (own < 0)
      return fail(
          fmt::format("the engine ended (exit status {}){} before footprint's report was "
                      "done: the model's code ended the process",
                      WEXITSTATUS(status), at));
    std::fwrite(report.data(), 1, mark, out);
    return own;
  }
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  if (!timed_out && !too_big && (sig == SIGINT || sig == SIGTERM || sig == SIGHUP))
    return 128 + sig;
  std::string what;
  if (too_big)
    what = fmt::format(
        "the engine's memory came within {} of {}, the limit (--max-memory){}; "
        "stopped",
        human_bytes(s.memory_bytes / 32), s.memory_text, at);
  else if (timed_out)
    what = fmt::format("the engine ran past the time limit of {:g} s (--time-limit){}; stopped",
                       s.seconds, at);
  else if (sig == SIGXCPU)
    what = fmt::format(
        "the engine used up its CPU time ({:g} s of wall time on every core, from "
        "--time-limit){}",
        s.seconds, at);
  else if (sig == SIGKILL)
    what = fmt::format(
        "the engine was killed by SIGKILL{} (the system's out-of-memory killer, or "
        "a kill from outside)",
        at);
  else
    what = fmt::format("the engine was killed by {}{}", signal_name(sig), at);
  return fail(what);
}

}  // namespace footprint::cli
