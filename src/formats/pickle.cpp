// The pickle reader: a stack machine over the opcodes of pickletools.py, with every length
// checked against the bytes left before anything is allocated.
#include "formats/pickle.h"

#include <fmt/format.h>

#include <cctype>
#include <cstring>
#include <unordered_map>

#include "footprint/error.h"

namespace footprint::detail::pickle {

const Value* Value::get(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k->kind == Kind::kStr && k->str == key) return v;
  return nullptr;
}

namespace {

struct AllowedGlobal {
  const char* module;
  const char* name;
  GlobalKind kind;
};

constexpr AllowedGlobal kAllowed[] = {
    {"collections", "OrderedDict", GlobalKind::kOrderedDict},
    {"torch._utils", "_rebuild_tensor_v2", GlobalKind::kRebuildTensorV2},
    {"torch._utils", "_rebuild_tensor", GlobalKind::kRebuildTensor},
    {"torch._utils", "_rebuild_parameter", GlobalKind::kRebuildParameter},
    {"torch._utils", "_rebuild_parameter_with_state", GlobalKind::kRebuildParameter},
    {"torch.jit._pickle", "build_intlist", GlobalKind::kJitIdentity},
    {"torch.jit._pickle", "build_doublelist", GlobalKind::kJitIdentity},
    {"torch.jit._pickle", "build_boollist", GlobalKind::kJitIdentity},
    {"torch.jit._pickle", "build_tensorlist", GlobalKind::kJitIdentity},
    {"torch.jit._pickle", "build_genericlist", GlobalKind::kJitIdentity},
    {"torch.jit._pickle", "restore_type_tag", GlobalKind::kJitIdentity},
};

struct StorageName {
  const char* name;
  DType dtype;
};
constexpr StorageName kStorages[] = {
    {"FloatStorage", DType::kFloat32},
    {"DoubleStorage", DType::kFloat64},
    {"HalfStorage", DType::kFloat16},
    {"BFloat16Storage", DType::kBFloat16},
    {"LongStorage", DType::kInt64},
    {"IntStorage", DType::kInt32},
    {"ShortStorage", DType::kInt16},
    {"CharStorage", DType::kInt8},
    {"ByteStorage", DType::kUInt8},
    {"BoolStorage", DType::kBool},
    {"ComplexFloatStorage", DType::kComplex64},
    {"ComplexDoubleStorage", DType::kComplex128},
    {"UInt16Storage", DType::kUInt16},
    {"UInt32Storage", DType::kUInt32},
    {"UInt64Storage", DType::kUInt64},
    {"Float8_e4m3fnStorage", DType::kFloat8E4M3},
    {"Float8_e5m2Storage", DType::kFloat8E5M2},
    {"UntypedStorage", DType::kUInt8},
};

const char* kAllowedText =
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_tensor/_rebuild_parameter, "
    "torch.*Storage, torch.jit._pickle.*";

class Parser {
 public:
  Parser(std::string_view bytes, const std::string& what, const Options& options)
      : p_(bytes), what_(what), options_(options) {}

  Document run() {
    while (true) {
      if (pos_ >= p_.size()) fail("ends without a STOP opcode (truncated?)");
      size_t at = pos_;
      unsigned char op = static_cast<unsigned char>(p_[pos_++]);
      if (op == '.') {  // STOP
        doc_.root = pop("STOP");
        return std::move(doc_);
      }
      step(op, at);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw Error(fmt::format("{}: pickle {} (at byte {})", what_, msg, pos_));
  }

  // Every allocation the document makes goes through charge(), against kMaxPickleMemory.
  void charge(uint64_t bytes) {
    used_ += bytes;
    if (used_ > kMaxPickleMemory)
      fail(fmt::format("needs more than {} bytes of memory to hold (the pickle memory limit)",
                       kMaxPickleMemory));
  }
  Value* make(Kind k) {
    charge(sizeof(Value));
    doc_.arena.emplace_back();
    doc_.arena.back().kind = k;
    return &doc_.arena.back();
  }
  // None, True, False and small integers are immutable: one shared value each.
  Value* constant(Kind k, int64_t v) {
    if (k == Kind::kNone) return none_ ? none_ : (none_ = make(Kind::kNone));
    if (k == Kind::kBool) {
      Value*& b = v ? true_ : false_;
      if (!b) b = make(Kind::kBool), b->boolean = v != 0;
      return b;
    }
    if (v < 0 || v >= static_cast<int64_t>(sizeof small_ / sizeof small_[0])) {
      Value* x = make(Kind::kInt);
      x->integer = v;
      return x;
    }
    if (!small_[v]) small_[v] = make(Kind::kInt), small_[v]->integer = v;
    return small_[v];
  }

  // --- reading the stream, every length checked first ---
  void need(uint64_t n) const {
    if (n > p_.size() - pos_)
      fail(fmt::format("declares {} bytes but only {} remain (truncated or corrupt)", n,
                       p_.size() - pos_));
  }
  uint64_t le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t(static_cast<unsigned char>(p_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string bytes(uint64_t n) {
    need(n);
    std::string s(p_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::string line() {
    size_t end = p_.find('\n', pos_);
    if (end == std::string_view::npos) fail("has a text field with no end of line (truncated?)");
    std::string s(p_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  // --- the stack ---
  void push(Value* v) { stack_.push_back(v); }
  Value* pop(const char* op) {
    if (stack_.size() <= floor()) fail(fmt::format("{} on an empty stack", op));
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top(const char* op) {
    if (stack_.size() <= floor()) fail(fmt::format("{} on an empty stack", op));
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> pop_mark(const char* op) {
    if (marks_.empty()) fail(fmt::format("{} without a MARK", op));
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  Value* integer(int64_t v) { return constant(Kind::kInt, v); }
  Value* boolean(bool b) { return constant(Kind::kBool, b); }
  Value* string(Kind k, std::string s) {
    charge(s.size());
    Value* x = make(k);
    x->str = std::move(s);
    return x;
  }
  Value* sequence(Kind k, std::vector<Value*> items) {
    charge(items.size() * sizeof(Value*));
    Value* x = make(k);
    x->items = std::move(items);
    return x;
  }
  int64_t signed_le(size_t n) {
    if (n > 8) fail(fmt::format("has an integer of {} bytes; at most 8 are supported", n));
    uint64_t v = le(n);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  int64_t parse_decimal(std::string s) {
    if (!s.empty() && s.back() == 'L') s.pop_back();
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
      return v;
    } catch (const std::exception&) {
      fail(fmt::format("has an integer '{}' that is not a 64-bit number", s.substr(0, 40)));
    }
  }

  void memo_put(uint64_t index) { memo_[index] = top("PUT"); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end())
      fail(fmt::format("refers to memo entry {}, which was never stored", index));
    push(it->second);
  }

  Value* global(const std::string& module, const std::string& name) {
    Value* g = make(Kind::kGlobal);
    g->str = module + "." + name;
    for (const auto& a : kAllowed)
      if (module == a.module && name == a.name) {
        g->global = a.kind;
        return g;
      }
    if (module == "torch")
      for (const auto& s : kStorages)
        if (name == s.name) {
          g->global = GlobalKind::kStorageType;
          g->dtype = s.dtype;
          return g;
        }
    if (options_.torchscript && module.rfind("__torch__", 0) == 0) {
      g->global = GlobalKind::kTorchScriptClass;
      return g;
    }
    std::string hint;
    if (!name.empty() && std::isupper(static_cast<unsigned char>(name[0])) && module != "builtins")
      hint =
          "; a whole pickled module or object needs its Python code to load: save "
          "model.state_dict() instead";
    fail(fmt::format(
        "refers to global '{}.{}', which footprint does not allow: it reads pickles as data "
        "and never runs code (allowed: {}){}",
        module, name, kAllowedText, hint));
  }

  // --- the allowed calls, applied as data constructors ---
  const Value* arg(const std::vector<Value*>& args, size_t i, Kind k, const char* fn,
                   const char* what) {
    if (i >= args.size() || args[i]->kind != k)
      fail(fmt::format("calls {} with argument {} not {}", fn, i, what));
    return args[i];
  }
  std::vector<int64_t> int_tuple(const std::vector<Value*>& args, size_t i, const char* fn,
                                 const char* what) {
    if (i >= args.size() || (args[i]->kind != Kind::kTuple && args[i]->kind != Kind::kList))
      fail(fmt::format("calls {} with argument {} ({}) not a tuple of integers", fn, i, what));
    std::vector<int64_t> out;
    for (const Value* v : args[i]->items) {
      if (v->kind != Kind::kInt) fail(fmt::format("calls {} with a non-integer in {}", fn, what));
      out.push_back(v->integer);
    }
    return out;
  }

  Value* call(Value* fn, Value* argv) {
    if (fn->kind != Kind::kGlobal) fail("REDUCE calls something that is not a global");
    // A TorchScript enum member (torch/csrc/jit/serialization/pickler.cpp, pushIValue of an
    // Enum): the enum's qualified name, its value, REDUCE. Its value is the data.
    if (fn->global == GlobalKind::kTorchScriptClass && argv->kind != Kind::kTuple) return argv;
    if (argv->kind != Kind::kTuple)
      fail(fmt::format("REDUCE calls {} with arguments that are not a tuple", fn->str));
    const auto& args = argv->items;
    const char* name = fn->str.c_str();
    switch (fn->global) {
      case GlobalKind::kOrderedDict: {
        Value* d = make(Kind::kDict);
        if (!args.empty()) {
          if (args[0]->kind != Kind::kList && args[0]->kind != Kind::kTuple)
            fail("calls collections.OrderedDict with an argument that is not a list of pairs");
          for (Value* pair : args[0]->items) {
            if (pair->kind != Kind::kTuple || pair->items.size() != 2)
              fail("calls collections.OrderedDict with an item that is not a pair");
            charge(sizeof(d->entries[0]));
            d->entries.emplace_back(pair->items[0], pair->items[1]);
          }
        }
        return d;
      }
      case GlobalKind::kRebuildTensorV2:
      case GlobalKind::kRebuildTensor: {
        Value* t = make(Kind::kTensor);
        charge(sizeof(TensorView));
        t->view = &doc_.views.emplace_back();
        t->view->storage = const_cast<Value*>(arg(args, 0, Kind::kStorage, name, "a storage"));
        t->view->offset = arg(args, 1, Kind::kInt, name, "an integer offset")->integer;
        t->view->shape = int_tuple(args, 2, name, "size");
        t->view->strides = int_tuple(args, 3, name, "stride");
        charge(16 * t->view->shape.size());
        if (fn->global == GlobalKind::kRebuildTensorV2 && args.size() > 4) {
          if (args[4]->kind != Kind::kBool)
            fail(fmt::format("calls {} with requires_grad not a bool", name));
          t->requires_grad = args[4]->boolean;
        }
        t->dtype = t->view->storage->dtype;
        return t;
      }
      case GlobalKind::kRebuildParameter: {
        const Value* data = arg(args, 0, Kind::kTensor, name, "a tensor");
        Value* t = make(Kind::kTensor);
        *t = *data;
        t->requires_grad = arg(args, 1, Kind::kBool, name, "a bool requires_grad")->boolean;
        t->is_parameter = true;
        return t;
      }
      case GlobalKind::kJitIdentity:
        if (args.empty()) fail(fmt::format("calls {} with no argument", name));
        return args[0];
      case GlobalKind::kStorageType:
      case GlobalKind::kTorchScriptClass:
      default:
        fail(fmt::format("calls {}, which footprint does not allow as a function", name));
    }
  }

  Value* persistent_load(Value* pid) {
    // torch.save / torch.jit.save: ('storage', torch.FloatStorage, key, location, numel)
    if (pid->kind != Kind::kTuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::kStr ||
        pid->items[0]->str != "storage")
      fail("has a persistent id that is not ('storage', type, key, location, numel)");
    const auto& it = pid->items;
    if (it[1]->kind != Kind::kGlobal || it[1]->global != GlobalKind::kStorageType)
      fail("has a persistent id whose storage type is not a torch.*Storage");
    if (it[2]->kind != Kind::kStr || it[3]->kind != Kind::kStr || it[4]->kind != Kind::kInt)
      fail("has a persistent id with a malformed key, location or size");
    if (it[4]->integer < 0) fail(fmt::format("has a storage of negative size {}", it[4]->integer));
    Value* s = make(Kind::kStorage);
    s->dtype = it[1]->dtype;
    s->str = it[2]->str;
    s->integer = it[4]->integer;
    return s;
  }

  void set_items(Value* d, const std::vector<Value*>& kv, const char* op) {
    if (d->kind != Kind::kDict) fail(fmt::format("{} on something that is not a dict", op));
    if (kv.size() % 2) fail(fmt::format("{} with an odd number of items", op));
    for (size_t i = 0; i < kv.size(); i += 2) {
      bool replaced = false;
      if (kv[i]->kind == Kind::kStr)
        for (auto& e : d->entries)
          if (e.first->kind == Kind::kStr && e.first->str == kv[i]->str)
            e.second = kv[i + 1], replaced = true;
      if (!replaced) {
        charge(sizeof(d->entries[0]));
        d->entries.emplace_back(kv[i], kv[i + 1]);
      }
    }
  }

  void append(Value* list, const std::vector<Value*>& items, const char* op) {
    if (list->kind != Kind::kList && list->kind != Kind::kSet)
      fail(fmt::format("{} on something that is not a list", op));
    charge(items.size() * sizeof(Value*));
    list->items.insert(list->items.end(), items.begin(), items.end());
  }

  void step(unsigned char op, size_t at) {
    switch (op) {
      case 0x80: {  // PROTO
        uint64_t v = le(1);
        if (v > 5) fail(fmt::format("uses protocol {}; protocols 0 to 5 are supported", v));
        return;
      }
      case 0x95:
        le(8);
        return;  // FRAME: a length hint only
      case '(':
        marks_.push_back(stack_.size());
        return;  // MARK
      case '0':
        pop("POP");
        return;
      case '1':
        pop_mark("POP_MARK");
        return;
      case '2':
        push(top("DUP"));
        return;
      case 'N':
        push(constant(Kind::kNone, 0));
        return;
      case 0x88:
      case 0x89:  // NEWTRUE, NEWFALSE
        push(boolean(op == 0x88));
        return;
      case 'J':
        push(integer(signed_le(4)));
        return;  // BININT
      case 'K':
        push(integer(static_cast<int64_t>(le(1))));
        return;  // BININT1
      case 'M':
        push(integer(static_cast<int64_t>(le(2))));
        return;  // BININT2
      case 0x8a:
        push(integer(signed_le(le(1))));
        return;     // LONG1
      case 0x8b: {  // LONG4
        int64_t n = signed_le(4);
        if (n < 0) fail("has a LONG4 of negative length");
        push(integer(signed_le(static_cast<size_t>(n))));
        return;
      }
      case 'I': {  // INT (text); "I01" and "I00" are True and False in protocol 0
        std::string s = line();
        if (s == "01" || s == "00") {
          push(boolean(s == "01"));
        } else {
          push(integer(parse_decimal(s)));
        }
        return;
      }
      case 'L':
        push(integer(parse_decimal(line())));
        return;    // LONG (text)
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(p_[pos_ + i]);
        pos_ += 8;
        Value* f = make(Kind::kFloat);
        std::memcpy(&f->real, &bits, 8);
        push(f);
        return;
      }
      case 'F': {  // FLOAT (text)
        std::string s = line();
        Value* f = make(Kind::kFloat);
        try {
          f->real = std::stod(s);
        } catch (const std::exception&) {
          fail("has a malformed FLOAT");
        }
        push(f);
        return;
      }
      case 'X':
        push(string(Kind::kStr, bytes(le(4))));
        return;  // BINUNICODE
      case 0x8c:
        push(string(Kind::kStr, bytes(le(1))));
        return;  // SHORT_BINUNICODE
      case 0x8d:
        push(string(Kind::kStr, bytes(le(8))));
        return;  // BINUNICODE8
      case 'U':
        push(string(Kind::kStr, bytes(le(1))));
        return;    // SHORT_BINSTRING
      case 'T': {  // BINSTRING
        int64_t n = signed_le(4);
        if (n < 0) fail("has a BINSTRING of negative length");
        push(string(Kind::kStr, bytes(static_cast<uint64_t>(n))));
        return;
      }
      case 'C':
        push(string(Kind::kBytes, bytes(le(1))));
        return;  // SHORT_BINBYTES
      case 'B':
        push(string(Kind::kBytes, bytes(le(4))));
        return;  // BINBYTES
      case 0x8e:
        push(string(Kind::kBytes, bytes(le(8))));
        return;  // BINBYTES8
      case 0x96:
        push(string(Kind::kBytes, bytes(le(8))));
        return;  // BYTEARRAY8
      case 'V':
        push(string(Kind::kStr, line()));
        return;    // UNICODE (raw, escapes kept)
      case 'S': {  // STRING (quoted repr)
        std::string s = line();
        if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front())
          s = s.substr(1, s.size() - 2);
        push(string(Kind::kStr, s));
        return;
      }
      case '}':
        push(make(Kind::kDict));
        return;  // EMPTY_DICT
      case ']':
        push(make(Kind::kList));
        return;  // EMPTY_LIST
      case ')':
        push(make(Kind::kTuple));
        return;  // EMPTY_TUPLE
      case 0x8f:
        push(make(Kind::kSet));
        return;  // EMPTY_SET
      case 't':
        push(sequence(Kind::kTuple, pop_mark("TUPLE")));
        return;
      case 0x85:
        push(sequence(Kind::kTuple, {pop("TUPLE1")}));
        return;
      case 0x86: {
        Value* b = pop("TUPLE2");
        Value* a = pop("TUPLE2");
        push(sequence(Kind::kTuple, {a, b}));
        return;
      }
      case 0x87: {
        Value* c = pop("TUPLE3");
        Value* b = pop("TUPLE3");
        Value* a = pop("TUPLE3");
        push(sequence(Kind::kTuple, {a, b, c}));
        return;
      }
      case 'l':
        push(sequence(Kind::kList, pop_mark("LIST")));
        return;
      case 0x91:
        push(sequence(Kind::kSet, pop_mark("FROZENSET")));
        return;
      case 'd': {  // DICT
        Value* d = make(Kind::kDict);
        set_items(d, pop_mark("DICT"), "DICT");
        push(d);
        return;
      }
      case 'a': {  // APPEND
        Value* v = pop("APPEND");
        append(top("APPEND"), {v}, "APPEND");
        return;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark("APPENDS");
        append(top("APPENDS"), items, "APPENDS");
        return;
      }
      case 0x90: {  // ADDITEMS
        auto items = pop_mark("ADDITEMS");
        append(top("ADDITEMS"), items, "ADDITEMS");
        return;
      }
      case 's': {  // SETITEM
        Value* v = pop("SETITEM");
        Value* k = pop("SETITEM");
        set_items(top("SETITEM"), {k, v}, "SETITEM");
        return;
      }
      case 'u': {  // SETITEMS
        auto kv = pop_mark("SETITEMS");
        set_items(top("SETITEMS"), kv, "SETITEMS");
        return;
      }
      case 'p':
        memo_put(static_cast<uint64_t>(parse_decimal(line())));
        return;  // PUT
      case 'q':
        memo_put(le(1));
        return;  // BINPUT
      case 'r':
        memo_put(le(4));
        return;  // LONG_BINPUT
      case 0x94:
        memo_put(memo_.size());
        return;  // MEMOIZE
      case 'g':
        memo_get(static_cast<uint64_t>(parse_decimal(line())));
        return;  // GET
      case 'h':
        memo_get(le(1));
        return;  // BINGET
      case 'j':
        memo_get(le(4));
        return;    // LONG_BINGET
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop("STACK_GLOBAL");
        Value* module = pop("STACK_GLOBAL");
        if (name->kind != Kind::kStr || module->kind != Kind::kStr)
          fail("has a STACK_GLOBAL of non-strings");
        push(global(module->str, name->str));
        return;
      }
      case 'R': {  // REDUCE
        Value* args = pop("REDUCE");
        Value* fn = pop("REDUCE");
        push(call(fn, args));
        return;
      }
      case 0x81:
      case 0x92: {                         // NEWOBJ, NEWOBJ_EX
        if (op == 0x92) pop("NEWOBJ_EX");  // kwargs
        pop("NEWOBJ");                     // args
        Value* cls = pop("NEWOBJ");
        if (cls->kind != Kind::kGlobal || cls->global != GlobalKind::kTorchScriptClass)
          fail(fmt::format("creates an object of {}, which footprint does not allow",
                           cls->kind == Kind::kGlobal ? cls->str : std::string("a non-class")));
        Value* obj = make(Kind::kObject);
        obj->cls = cls;
        push(obj);
        return;
      }
      case 'b': {  // BUILD
        Value* state = pop("BUILD");
        Value* target = top("BUILD");
        if (target->kind == Kind::kObject)
          target->state = state;
        else if (target->kind != Kind::kDict && target->kind != Kind::kTensor)
          fail("BUILD on something that is not an object");
        return;  // an OrderedDict's __dict__ (state_dict._metadata) and a Parameter's state are
                 // ignored
      }
      case 'Q':
        push(persistent_load(pop("BINPERSID")));
        return;
      case 'P':
        fail("uses a text persistent id (PERSID), which torch never writes");
      case 'i':
      case 'o':
        fail("creates an object with INST/OBJ, which footprint does not allow");
      case 0x82:
      case 0x83:
      case 0x84:
        fail("uses the extension registry (EXT1/2/4), which footprint does not allow");
      case 0x97:
        fail("uses out-of-band buffers (NEXT_BUFFER), which footprint does not allow");
      case 0x98:
        fail("uses out-of-band buffers (READONLY_BUFFER), which footprint does not allow");
      default:
        pos_ = at;
        fail(fmt::format("has unknown opcode 0x{:02x}", op));
    }
  }

  std::string_view p_;
  const std::string& what_;
  Options options_;
  size_t pos_ = 0;
  Document doc_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  uint64_t used_ = 0;  // bytes charged so far
  Value* none_ = nullptr;
  Value* true_ = nullptr;
  Value* false_ = nullptr;
  Value* small_[256] = {};
};

}  // namespace

Document parse(std::string_view bytes, const std::string& what, const Options& options) {
  return Parser(bytes, what, options).run();
}

}  // namespace footprint::detail::pickle
