// The sandbox a capture runs a model's code in (docs/engine.md, "The sandbox"): while a
// SandboxScope lives on a thread, every aten op there is counted against EngineLimits::ops and
// the clock against EngineLimits::seconds, the ops that reach outside memory are refused, the
// model's print()s and LibTorch's warnings go to stderr as one escaped line each (or nowhere), and
// with `limit_cpu`, real CPU memory allocated from then on is held to EngineLimits::cpu_bytes.
// Going past a limit throws footprint::Error; violation() then says which, whatever the model's
// code made of the exception on its way out.
#pragma once

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/runtime/print_handler.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/refused.h"
#include "footprint/summary.h"
#include "torch/meta.h"

namespace footprint::detail {

struct State;

class SandboxScope {
 public:
  SandboxScope(const EngineLimits& limits, bool limit_cpu);
  ~SandboxScope();
  SandboxScope(const SandboxScope&) = delete;
  SandboxScope& operator=(const SandboxScope&) = delete;
  std::optional<std::string> violation() const;

 private:
  std::unique_ptr<State> state_;
  State* previous_ = nullptr;
  torch::jit::PrintHandler previous_print_;
  std::unique_ptr<c10::WarningHandler> warnings_;
  std::unique_ptr<c10::WarningUtils::WarningHandlerGuard> warning_guard_;
  std::unique_ptr<c10::impl::IncludeDispatchKeyGuard> included_;
  bool cpu_limited_ = false;
};

// refused_op (core/refused.h): the same list serves the check of a module's code before it runs
// (sandbox_code), the kernel that sees every op while it runs, and the .pt2 reader.

// Before a TorchScript module runs on meta: throws footprint::Error naming the first refused op
// in its code and where the code calls it, and makes the factory ops that name no device
// (torch.zeros(n), which would allocate on the CPU) and torch.device("...") make meta tensors
// (python_lifetimes.cpp, with map_devices_to_meta).
void sandbox_code(torch::jit::Module& module);

// A line for the user when the module's code fixes batch norm's or dropout's mode to the other one
// than `train` asks for (a trace keeps the mode it was traced in as constants), else nullopt.
std::optional<std::string> frozen_mode(torch::jit::Module& module, bool train);

// Names each op, as it starts, in `page` (NUL-terminated, at most size - 1 bytes), for a process
// that watches this one and reports what it was running when it died (the CLI's child engine).
void report_ops_to(char* page, size_t size);

}  // namespace footprint::detail
