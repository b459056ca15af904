// A pickle reader that parses, and never executes. It understands the opcodes of protocols 0-5
// that torch.save and torch.jit.save write, and turns the few globals it allows into inert data:
// OrderedDict becomes a dict, torch._utils._rebuild_tensor_v2 a tensor description, the storage
// types a dtype. Any other global (os.system, builtins.eval, a model's Python class) is refused
// with an error that names it. All values live in one arena, so hostile nesting or cycles cannot
// overflow the stack when the document is freed.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "footprint/dtype.h"

namespace footprint::detail::pickle {

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kStr,
  kBytes,
  kList,
  kTuple,
  kSet,
  kDict,
  kGlobal,
  kObject,
  kStorage,
  kTensor
};

// The globals footprint allows, and what each becomes.
enum class GlobalKind {
  kOrderedDict,       // collections.OrderedDict -> a dict
  kRebuildTensorV2,   // torch._utils._rebuild_tensor_v2 -> a tensor
  kRebuildTensor,     // torch._utils._rebuild_tensor -> a tensor
  kRebuildParameter,  // torch._utils._rebuild_parameter(_with_state) -> a parameter
  kStorageType,       // torch.FloatStorage, ... -> a dtype, inside persistent ids only
  kJitIdentity,       // torch.jit._pickle.build_intlist, restore_type_tag, ... -> their argument
  kTorchScriptClass,  // __torch__.* in TorchScript archives -> an inert object of that class
};

struct Value;

// A tensor's view of its storage: kept apart from Value so that the many small values a pickle
// makes stay small (tests: PickleMemory).
struct TensorView {
  Value* storage = nullptr;  // a kStorage value
  int64_t offset = 0;        // in elements
  std::vector<int64_t> shape, strides;
};

struct Value {
  Kind kind = Kind::kNone;
  GlobalKind global = GlobalKind::kOrderedDict;  // kGlobal
  DType dtype = DType::kFloat32;                 // kGlobal storage types, kStorage, kTensor
  bool boolean = false;
  bool requires_grad = false;  // kTensor
  bool is_parameter = false;   // kTensor made by _rebuild_parameter
  int64_t integer = 0;         // kInt; kStorage: its element count
  double real = 0;
  std::string str;            // kStr, kBytes; kGlobal: "module.name"; kStorage: its key
  std::vector<Value*> items;  // kList, kTuple, kSet
  std::vector<std::pair<Value*, Value*>> entries;  // kDict (insertion order)
  // kObject: its class (a kGlobal) and the state BUILD gave it (usually a dict of attributes).
  Value* cls = nullptr;
  Value* state = nullptr;
  TensorView* view = nullptr;  // kTensor

  // A dict's value for a string key, or null.
  const Value* get(std::string_view key) const;
};

struct Document {
  std::deque<Value> arena;  // owns every value; pointers into it stay valid
  std::deque<TensorView> views;
  Value* root = nullptr;
};

struct Options {
  bool torchscript = false;  // allow __torch__.* classes (TorchScript archives only)
};

// Limits on what a pickle may make footprint do; each error message names the limit.
constexpr size_t kMaxNesting = 256;  // containers inside containers, while walking the result
// Memory the parsed values may take, counted as they are made: values, string bytes and container
// slots. A pickle can make one value per byte, so this bounds what a hostile one can cost.
constexpr uint64_t kMaxPickleMemory = 512ull << 20;  // bytes

// Parses `bytes`. `what` names the pickle in errors ("model.pth: archive/data.pkl").
// Throws footprint::Error on anything malformed or not allowed.
Document parse(std::string_view bytes, const std::string& what, const Options& options = {});

}  // namespace footprint::detail::pickle
