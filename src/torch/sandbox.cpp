// The sandbox a capture runs a model's code in (sandbox.h; docs/engine.md, "The sandbox").
//
// One boxed kernel sees every aten op the model's code dispatches, at the top of the dispatcher:
// it is registered as the fallback of TESTING_ONLY_GenericMode, a key no library of PyTorch
// registers, and the key is put in the thread's included set while a capture runs (as autocast's
// replay does with AutocastIPU, autocast.cpp). The key sits above autograd and autocast, so the
// kernel sees each op once as the model calls it and once for every op a composite or an autograd
// node calls in turn. It counts them, looks at the clock, refuses the ops that reach outside
// memory, and names the op on the status page a supervising process reads.
#include "torch/sandbox.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/csrc/jit/runtime/print_handler.h>
#include <torch/library.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "footprint/report.h"
#include "torch/meta.h"

namespace footprint::detail {

struct State {
  EngineLimits limits;
  int64_t ops = 0;
  std::chrono::steady_clock::time_point deadline;
  std::string violation;  // the limit that stopped the run, or the op refused
};

namespace {

constexpr c10::DispatchKey kKey = c10::DispatchKey::TESTING_ONLY_GenericMode;

thread_local State* t_state = nullptr;

char* g_status = nullptr;  // the status page (report_ops_to), or null
size_t g_status_size = 0;

void post_status(const char* text) {
  if (!g_status) return;
  size_t n = std::min(std::strlen(text), g_status_size - 1);
  std::memcpy(g_status, text, n);
  g_status[n] = '\0';
}

[[noreturn]] void stop(State& s, std::string message) {
  s.violation = message;
  throw Error(message);
}

std::string seconds_text(double s) {
  return fmt::format("{:g} s", s);
}

// This process's resident bytes (/proc/self/statm's second field, in pages), or 0.
int64_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long long size = 0, resident = 0;
  int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  return n == 2 ? int64_t(resident) * sysconf(_SC_PAGESIZE) : 0;
}

void kernel(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const auto& name = op.operator_name().name;
  post_status(name.c_str());
  if (State* s = t_state) {
    if (++s->ops > s->limits.ops)
      stop(*s, fmt::format("the model's code ran more than {} aten ops, the limit (`max-ops`); "
                           "the last was {}",
                           s->limits.ops, name));
    if ((s->ops & 63) == 0 && std::chrono::steady_clock::now() > s->deadline)
      stop(*s, fmt::format("the model's code ran longer than {}, the limit (`time-limit`); it "
                           "was running {}",
                           seconds_text(s->limits.seconds), name));
    // A margin below the limit, so that the run stops and reports here before the supervisor,
    // which kills at the limit itself, has to (supervise.cpp).
    if ((s->ops & 1023) == 0 && s->limits.memory_bytes > 0 &&
        resident_bytes() >
            s->limits.memory_bytes - std::min<int64_t>(s->limits.memory_bytes / 16, 64 << 20))
      stop(*s, fmt::format("the engine's memory came within {} of {}, the limit (`max-memory`), "
                           "after {} aten ops (the trace of each op is kept); the last was {}",
                           human_bytes(std::min<int64_t>(s->limits.memory_bytes / 16, 64 << 20)),
                           human_bytes(s->limits.memory_bytes), s->ops, name));
    if (auto why = refused_op(name))
      stop(*s,
           fmt::format("the model's code calls {}, which {}: footprint refuses it", name, *why));
  }
  // The target's kernel-internal buffers an op's outputs do not show (meta_kernels.cpp).
  std::optional<PendingReduction> reduction;
  if (t_state) reduction = reduction_before(op, *stack);
  op.redispatchBoxed(keys & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, kKey), stack);
  if (reduction) reduction_after(*reduction, *stack);
}

void install_kernel() {
  claim_fallback(
      kKey, [] { return torch::CppFunction::makeFromBoxedFunction<&kernel>(); },
      "the model cannot be run in footprint's sandbox");
}

EngineLimits::Prints g_prints = EngineLimits::Prints::kStderr;

void print_handler(const std::string& text) {
  if (g_prints == EngineLimits::Prints::kDrop) return;
  std::string_view line = text;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  fmt::print(stderr, "footprint: the model prints: {}\n", escape_text(line));
}

// LibTorch's warnings (and the model's warnings.warn) while it runs: one line each, on stderr.
class WarningLines final : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    fmt::print(stderr, "footprint: warning from LibTorch: {}\n", escape_text(warning.msg()));
  }
};

}  // namespace

void report_ops_to(char* page, size_t size) {
  g_status = size > 0 ? page : nullptr;
  g_status_size = size;
}

}  // namespace footprint::detail

namespace footprint {

void report_ops_to(char* page, size_t size) {
  detail::report_ops_to(page, size);
}

}  // namespace footprint

namespace footprint::detail {

SandboxScope::SandboxScope(const EngineLimits& limits, bool limit_cpu)
    : state_(std::make_unique<State>()),
      previous_print_(torch::jit::getPrintHandler()),
      warnings_(std::make_unique<WarningLines>()),
      warning_guard_(std::make_unique<c10::WarningUtils::WarningHandlerGuard>(warnings_.get())) {
  install_kernel();
  state_->limits = limits;
  state_->deadline = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(limits.seconds));
  previous_ = t_state;
  t_state = state_.get();
  included_ = std::make_unique<c10::impl::IncludeDispatchKeyGuard>(kKey);
  g_prints = limits.prints;
  torch::jit::setPrintHandler(&print_handler);
  cpu_limited_ = limit_cpu;
  if (limit_cpu) limit_cpu_memory(limits.cpu_bytes);
}

SandboxScope::~SandboxScope() {
  if (cpu_limited_) limit_cpu_memory(0);
  torch::jit::setPrintHandler(previous_print_);
  included_.reset();
  t_state = previous_;
}

std::optional<std::string> SandboxScope::violation() const {
  if (!state_->violation.empty()) return state_->violation;
  return take_cpu_limit_violation();
}

}  // namespace footprint::detail
