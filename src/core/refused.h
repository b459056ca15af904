// The ops a model's code may not call, by name: those that reach outside memory (files, other
// processes, other threads, the CUDA device). The sandbox refuses them as they run
// (src/torch/sandbox.cpp); the .pt2 reader refuses a program that calls one before anything runs
// (src/formats/pt2.cpp). A name, not a kernel, so it is torch-free.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace footprint::detail {

// Why the op `name` ("aten::from_file") is refused ("reads or writes a file"), or nothing.
std::optional<std::string> refused_op(std::string_view name);

}  // namespace footprint::detail
