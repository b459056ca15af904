// GGUF (llama.cpp's ggml/docs/gguf.md), versions 2 and 3, read from its header only. Every
// integer is little-endian:
//   magic "GGUF", version u32, tensor_count u64, metadata_kv_count u64
//   metadata_kv_count times: key (a string), value_type u32, value
//     a string is a u64 length then that many UTF-8 bytes; value types: 0 u8, 1 i8, 2 u16,
//     3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte), 8 string, 9 array (element type u32,
//     count u64, the elements), 10 u64, 11 i64, 12 f64
//   tensor_count times: name (a string), n_dims u32 (at most 4), n_dims dims u64 (ne[0], the
//     innermost, first), ggml type u32 (ggml.h's enum ggml_type), offset u64
//   padding to general.alignment (default 32), then the tensor data; each offset is relative to
//   its start and a multiple of the alignment.
// A tensor of ggml type T takes ne[0] / block(T) x block_bytes(T) bytes per row (dtype.h), and
// ne[0] must be a multiple of the block. Checks: every count and length is read against the bytes
// left before anything is allocated or skipped; arrays nest at most kMaxGgufNesting deep; types
// are known; each tensor lies inside the file and after the one before it (no overlap). Version 1
// (32-bit counts, 2023) is refused with its name. The tensor data is never read.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "footprint/error.h"
#include "formats/readers.h"

namespace footprint::detail {
namespace {

constexpr uint32_t kString = 8, kArray = 9;

// Fixed sizes of the value types; 0 for string and array.
uint64_t value_size(uint32_t type) {
  static const uint64_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return type < 13 ? sizes[type] : 0;
}

const char* value_type_name(uint32_t type) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return type < 13 ? names[type] : "?";
}

// A printable key for messages: control bytes and non-ASCII shown as \xNN.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200))
    out += c >= 0x20 && c < 0x7f ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  return s.size() > 200 ? out + "..." : out;
}

GgufValue read_value(SequentialReader& c, uint32_t type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  std::string what = "the value of " + printable(key);
  switch (type) {
    case 0:
      v.u = c.get<uint8_t>(what.c_str());
      v.i = int64_t(v.u);
      break;
    case 1:
      v.i = c.get<int8_t>(what.c_str());
      break;
    case 2:
      v.u = c.get<uint16_t>(what.c_str());
      v.i = int64_t(v.u);
      break;
    case 3:
      v.i = c.get<int16_t>(what.c_str());
      break;
    case 4:
      v.u = c.get<uint32_t>(what.c_str());
      v.i = int64_t(v.u);
      break;
    case 5:
      v.i = c.get<int32_t>(what.c_str());
      break;
    case 6:
      v.f = c.get<float>(what.c_str());
      break;
    case 7:
      v.b = c.get<uint8_t>(what.c_str()) != 0;
      break;
    case kString:
      v.s = c.string(what.c_str(), kMaxGgufString);
      break;
    case kArray: {
      if (depth >= kMaxGgufNesting)
        throw Error(
            fmt::format("{}: {} nests arrays more than {} deep", c.file(), what, kMaxGgufNesting));
      v.array_type = c.get<uint32_t>(what.c_str());
      v.array_count = c.get<uint64_t>(what.c_str());
      uint64_t each = value_size(v.array_type);
      if (v.array_type > 12)
        throw Error(fmt::format("{}: {} is an array of value type {}; expected 0-12", c.file(),
                                what, v.array_type));
      // Each element takes at least 1 byte (8 for a string's length, 12 for a nested array's
      // header): a count past what is left is refused before the walk.
      uint64_t least = each ? each : v.array_type == kString ? 8 : 12;
      if (v.array_count > c.left() / least)
        throw Error(
            fmt::format("{}: {} is an array of {} {}s, more than the {} bytes left can "
                        "hold",
                        c.file(), what, v.array_count, value_type_name(v.array_type), c.left()));
      if (each) {
        c.skip(v.array_count * each, what.c_str());
      } else {
        for (uint64_t k = 0; k < v.array_count; ++k) {
          if (v.array_type == kString)
            c.skip(c.get<uint64_t>(what.c_str()), what.c_str());
          else
            read_value(c, kArray, key, depth + 1);
        }
      }
      break;
    }
    case 10:
      v.u = c.get<uint64_t>(what.c_str());
      v.i = v.u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v.u);
      break;
    case 11:
      v.i = c.get<int64_t>(what.c_str());
      break;
    case 12:
      v.f = c.get<double>(what.c_str());
      break;
    default:
      throw Error(
          fmt::format("{}: {} has value type {}; expected 0-12 (gguf.md)", c.file(), what, type));
  }
  if (type != 6 && type != 12) v.f = double(v.i);
  return v;
}

}  // namespace

const GgufValue* GgufFile::get(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

GgufFile read_gguf(const ByteSource& src) {
  const std::string& file = src.name();
  SequentialReader c(src);
  char magic[4];
  c.bytes(magic, 4, "the magic");
  if (std::memcmp(magic, "GGUF", 4) != 0)
    throw Error(fmt::format("{}: not a GGUF file (it does not start with \"GGUF\")", file));
  GgufFile g;
  g.version = c.get<uint32_t>("the version");
  if (g.version == 1)
    throw Error(
        fmt::format("{}: GGUF version 1 (2023, 32-bit counts), which footprint does not "
                    "read; convert it with a current llama.cpp",
                    file));
  if (g.version != 2 && g.version != 3)
    throw Error(
        fmt::format("{}: GGUF version {}; footprint reads versions 2 and 3", file, g.version));
  uint64_t tensors = c.get<uint64_t>("the tensor count");
  uint64_t kvs = c.get<uint64_t>("the metadata count");
  // A key-value pair takes at least 13 bytes (an empty key, a type, a 1-byte value); a tensor
  // info at least 28 (an empty name, one dimension, a type, an offset).
  if (kvs > c.left() / 13)
    throw Error(
        fmt::format("{}: the header says {} metadata entries; the {} bytes left hold at "
                    "most {}",
                    file, kvs, c.left(), c.left() / 13));
  if (tensors > uint64_t(kMaxTensors) || tensors > c.left() / 28)
    throw Error(
        fmt::format("{}: the header says {} tensors; the {} bytes left hold at most {} "
                    "(and footprint reads at most {})",
                    file, tensors, c.left(), c.left() / 28, kMaxTensors));
  for (uint64_t k = 0; k < kvs; ++k) {
    std::string key = c.string("a metadata key", kMaxGgufString);
    uint32_t type = c.get<uint32_t>("a metadata value type");
    GgufValue v = read_value(c, type, key, 0);
    if (!g.metadata.emplace(key, std::move(v)).second)
      throw Error(fmt::format("{}: metadata key {} appears twice", file, printable(key)));
  }
  g.alignment = 32;
  if (const GgufValue* a = g.get("general.alignment")) {
    if (a->type != 4 || a->u == 0 || (a->u & (a->u - 1)) != 0)
      throw Error(fmt::format("{}: general.alignment is {} ({}); expected a power of two as u32",
                              file, a->i, value_type_name(a->type)));
    g.alignment = a->u;
  }

  struct Info {
    uint64_t offset, bytes;
    size_t index;
  };
  std::vector<Info> infos;
  g.model.source = file;
  g.model.format = fmt::format("GGUF v{}", g.version);
  g.model.roles = RoleSource::kByName;
  for (uint64_t k = 0; k < tensors; ++k) {
    TensorInfo t;
    t.name = c.string("a tensor name", kMaxGgufString);
    std::string what = "tensor " + printable(t.name);
    uint32_t dims = c.get<uint32_t>(what.c_str());
    if (dims > 4)
      throw Error(fmt::format("{}: {} has {} dimensions; GGUF allows at most 4", file, what, dims));
    std::vector<int64_t> ne(dims);
    for (auto& d : ne) {
      uint64_t v = c.get<uint64_t>(what.c_str());
      if (v > uint64_t(INT64_MAX))
        throw Error(
            fmt::format("{}: {} has a dimension of {}; expected below 2^63", file, what, v));
      d = int64_t(v);
    }
    uint32_t type = c.get<uint32_t>(what.c_str());
    auto dtype = dtype_from_ggml(type);
    if (!dtype)
      throw Error(
          fmt::format("{}: {} has ggml type {}, which footprint does not know (ggml.h's "
                      "enum ggml_type)",
                      file, what, type));
    uint64_t offset = c.get<uint64_t>(what.c_str());
    t.dtype = *dtype;
    t.shape.assign(ne.rbegin(), ne.rend());  // torch order: ne[0], the innermost, last
    int64_t numel = checked_numel(t.shape, file + ": " + what);
    int64_t block = dtype_block(t.dtype);
    if (!ne.empty() && ne[0] % block != 0)
      throw Error(fmt::format("{}: {} has rows of {} elements, not a multiple of {}'s block of {}",
                              file, what, ne[0], dtype_name(t.dtype), block));
    __int128 bytes = __int128(numel / block) * dtype_block_bytes(t.dtype);
    if (offset % g.alignment != 0)
      throw Error(fmt::format("{}: {} starts at data offset {}, not a multiple of the alignment {}",
                              file, what, offset, g.alignment));
    if (bytes > __int128(INT64_MAX))
      throw Error(fmt::format("{}: {} would take more than 2^63 bytes", file, what));
    t.role = role_by_name(t.name, t.dtype);
    t.trainable = t.role == TensorRole::kParameter;
    t.storage = t.name;  // each tensor its own bytes: no strides needed to tell ties apart
    infos.push_back({offset, uint64_t(bytes), g.model.tensors.size()});
    g.model.tensors.push_back(std::move(t));
  }
  g.data_offset = (c.at() + g.alignment - 1) / g.alignment * g.alignment;
  uint64_t data = src.size() > g.data_offset ? src.size() - g.data_offset : 0;
  std::sort(infos.begin(), infos.end(),
            [](const Info& a, const Info& b) { return a.offset < b.offset; });
  uint64_t end = 0;
  const Info* last = nullptr;
  for (const Info& i : infos) {
    const std::string& name = g.model.tensors[i.index].name;
    if (last && i.offset < end)
      throw Error(fmt::format("{}: tensor {} (data offset {}) overlaps tensor {} (bytes {} to {})",
                              file, printable(name), i.offset,
                              printable(g.model.tensors[last->index].name), last->offset, end));
    if (i.offset > data || i.bytes > data - i.offset)
      throw Error(
          fmt::format("{}: tensor {} takes bytes {} to {} of the data, which has {} (the "
                      "file is truncated, or the header is wrong)",
                      file, printable(name), i.offset, i.offset + i.bytes, data));
    end = i.offset + i.bytes;
    last = &i;
  }
  return g;
}

Model read_gguf_model(const ByteSource& src) {
  GgufFile g = read_gguf(src);
  Model& m = g.model;
  int64_t numel = 0, bytes = 0;
  for (const auto& t : m.tensors) {
    numel += t.numel();
    bytes += t.bytes();
  }
  auto text = [&](const char* key) -> std::string {
    const GgufValue* v = g.get(key);
    return v && v->type == kString ? printable(v->s) : "";
  };
  std::string arch = text("general.architecture");
  std::string name = text("general.name");
  m.notes.push_back(fmt::format("GGUF v{}{}{}: {:.2f} bits per weight over its {} tensors",
                                g.version, arch.empty() ? "" : ", architecture " + arch,
                                name.empty() ? "" : ", \"" + name + "\"",
                                numel ? double(bytes) * 8 / double(numel) : 0.0, m.tensors.size()));
  return std::move(g.model);
}

TransformerConfig config_from_gguf(const GgufFile& g) {
  const std::string& file = g.model.source;
  auto text = [&](const std::string& key) -> std::string {
    const GgufValue* v = g.get(key);
    return v && v->type == kString ? v->s : "";
  };
  std::string arch = text("general.architecture");
  if (arch != "llama" && arch != "qwen2")
    throw Error(
        fmt::format("{}: general.architecture is '{}'; footprint llm reads GGUF files of "
                    "llama (also Mistral's) and qwen2",
                    file, printable(arch)));
  auto number = [&](const std::string& key, bool required, int64_t lo, int64_t hi) -> int64_t {
    const GgufValue* v = g.get(arch + "." + key);
    if (!v) {
      if (required)
        throw Error(fmt::format("{}: no {}.{}; footprint llm needs it", file, arch, key));
      return 0;
    }
    if (v->type == 6 || v->type == 12 || v->type > 11 || v->type == kString || v->type == kArray ||
        v->type == 7 || v->i < lo || v->i > hi)
      throw Error(fmt::format("{}: {}.{} is {} ({}); expected an integer in [{}, {}]", file, arch,
                              key, v->type == kString ? printable(v->s) : std::to_string(v->i),
                              value_type_name(v->type), lo, hi));
    return v->i;
  };
  TransformerConfig c;
  c.source = file;
  c.model_type = arch;
  c.family = find_family(arch);  // GGUF's llama and qwen2 are the config.json families' names
  c.hidden_size = number("embedding_length", true, 1, 1 << 20);
  c.num_layers = number("block_count", true, 1, 100000);
  c.num_heads = number("attention.head_count", true, 1, 1 << 16);
  c.num_kv_heads = number("attention.head_count_kv", false, 1, 1 << 16);
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  c.head_dim = number("attention.key_length", false, 1, 1 << 20);
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(fmt::format("{}: {}.embedding_length {} is not a multiple of the {} heads", file,
                              arch, c.hidden_size, c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(fmt::format("{}: {} heads are not a multiple of {} KV heads", file, c.num_heads,
                            c.num_kv_heads));
  c.intermediate_size = number("feed_forward_length", true, 1, 1 << 20);
  c.max_positions = number("context_length", true, 1, 1 << 26);
  if (const GgufValue* eps = g.get(arch + ".attention.layer_norm_rms_epsilon")) c.norm_eps = eps->f;
  c.hidden_act = "silu";
  // The vocabulary: the tokenizer's, or the embedding's rows.
  bool has_output = false, has_bias = false;
  for (const auto& t : g.model.tensors) {
    if (t.name == "token_embd.weight" && t.shape.size() == 2) c.vocab_size = t.shape[0];
    has_output = has_output || t.name == "output.weight";
    has_bias = has_bias || t.name == "blk.0.attn_q.bias";
  }
  if (const GgufValue* tokens = g.get("tokenizer.ggml.tokens"))
    if (tokens->type == kArray && c.vocab_size == 0) c.vocab_size = int64_t(tokens->array_count);
  if (c.vocab_size <= 0 || c.vocab_size > (1 << 26))
    throw Error(
        fmt::format("{}: no token_embd.weight of two dimensions to take the vocabulary "
                    "from",
                    file));
  c.tie_word_embeddings = !has_output;  // llama.cpp writes no output.weight for a tied head
  c.attention_bias = has_bias;
  return c;
}

}  // namespace footprint::detail
