// Models from LibTorch modules: torch::nn::Module (C++) and torch::jit::Module (TorchScript).
// Tied weights: two names whose tensors share a storage, offset, shape and strides.
#include <fmt/format.h>
#include <torch/version.h>

#include "footprint/torch.h"
#include "torch/meta.h"

namespace footprint {
namespace detail {

DType dtype_from(c10::ScalarType t) {
  switch (t) {
    case c10::kBool:
      return DType::kBool;
    case c10::kByte:
      return DType::kUInt8;
    case c10::kChar:
      return DType::kInt8;
    case c10::kShort:
      return DType::kInt16;
    case c10::kInt:
      return DType::kInt32;
    case c10::kLong:
      return DType::kInt64;
    case c10::kHalf:
      return DType::kFloat16;
    case c10::kBFloat16:
      return DType::kBFloat16;
    case c10::kFloat:
      return DType::kFloat32;
    case c10::kDouble:
      return DType::kFloat64;
    case c10::kComplexFloat:
      return DType::kComplex64;
    case c10::kComplexDouble:
      return DType::kComplex128;
    default:
      throw Error(
          fmt::format("tensor of dtype {}, which footprint does not count yet", c10::toString(t)));
  }
}

c10::ScalarType scalar_type_from(DType t) {
  switch (t) {
    case DType::kBool:
      return c10::kBool;
    case DType::kUInt8:
      return c10::kByte;
    case DType::kInt8:
      return c10::kChar;
    case DType::kInt16:
      return c10::kShort;
    case DType::kInt32:
      return c10::kInt;
    case DType::kInt64:
      return c10::kLong;
    case DType::kFloat16:
      return c10::kHalf;
    case DType::kBFloat16:
      return c10::kBFloat16;
    case DType::kFloat32:
      return c10::kFloat;
    case DType::kFloat64:
      return c10::kDouble;
    case DType::kComplex64:
      return c10::kComplexFloat;
    case DType::kComplex128:
      return c10::kComplexDouble;
    default:
      throw Error(fmt::format("dtype {} has no LibTorch {} equivalent to run with", dtype_name(t),
                              TORCH_VERSION));
  }
}

}  // namespace detail

namespace {

using detail::dtype_from;

TensorInfo info_from(const std::string& name, const at::Tensor& t, TensorRole role) {
  TensorInfo info;
  info.name = name;
  info.shape = t.sizes().vec();
  info.dtype = dtype_from(t.scalar_type());
  info.role = role;
  info.trainable = role == TensorRole::kParameter && t.requires_grad();
  if (t.has_storage())
    info.storage = fmt::format("{}", static_cast<const void*>(t.storage().unsafeGetStorageImpl()));
  info.storage_offset = t.storage_offset();
  info.strides = t.strides().vec();
  return info;
}

// "torch::nn::Conv2dImpl" -> "Conv2d", "my::HybridNetworkImpl" -> "HybridNetwork"
std::string short_type(std::string name) {
  auto colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0)
    name.resize(name.size() - 4);
  return name;
}

}  // namespace

Model model_from(const torch::nn::Module& module) {
  Model model;
  model.source = short_type(module.name());
  model.format = "torch::nn::Module";
  // named_parameters() names a tied tensor once per path; list every registration, so that
  // ties are reported (and then counted once by footprint::params).
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    const std::string& path = item.key();
    model.module_types[path] = short_type(item.value()->name());
    auto join = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      if (p.value().defined())
        model.tensors.push_back(info_from(join(p.key()), p.value(), TensorRole::kParameter));
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      if (b.value().defined())
        model.tensors.push_back(info_from(join(b.key()), b.value(), TensorRole::kBuffer));
  }
  return model;
}

Model model_from(const torch::jit::Module& module) {
  Model model;
  model.source =
      module.type()->name() ? module.type()->name()->qualifiedName() : "torch::jit::Module";
  model.format = "torch::jit::Module";
  for (const auto& item : module.named_modules()) {
    const std::string& path = item.name;
    auto type = item.value.type()->name();
    model.module_types[path] = type ? type->name() : "";
    auto join = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    for (const auto& p : item.value.named_parameters(/*recurse=*/false))
      model.tensors.push_back(info_from(join(p.name), p.value, TensorRole::kParameter));
    for (const auto& b : item.value.named_buffers(/*recurse=*/false))
      model.tensors.push_back(info_from(join(b.name), b.value, TensorRole::kBuffer));
  }
  return model;
}

}  // namespace footprint
