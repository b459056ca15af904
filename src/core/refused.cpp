// The ops refused by name (refused.h).
#include "core/refused.h"

namespace footprint::detail {

std::optional<std::string> refused_op(std::string_view name) {
  auto in = [&](std::string_view ns) { return name.rfind(ns, 0) == 0; };
  if (name == "aten::from_file" || name == "aten::save" || name == "debugprims::load_tensor")
    return "reads or writes a file";
  if (in("prim::rpc_") || in("c10d::") || in("_c10d_functional") || in("symm_mem::") ||
      in("_dtensor::"))
    return "talks to other processes";
  if (name == "prim::fork" || name == "aten::wait" || in("prim::awaitable"))
    return "runs code on another thread";
  if (in("cuda::")) return "controls a CUDA device";
  return std::nullopt;
}

}  // namespace footprint::detail
