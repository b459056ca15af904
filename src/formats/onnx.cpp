// ONNX (onnx/onnx.proto3), read for its initializers only, never their data. An ONNX file is one
// protobuf message, ModelProto; of it footprint reads:
//   ModelProto:  1 ir_version (varint), 7 graph (GraphProto), 8 opset_import (OperatorSetIdProto:
//                2 version)
//   GraphProto:  5 initializer (TensorProto, repeated), 15 sparse_initializer (counted, noted),
//                1 node (NodeProto): 5 attribute (AttributeProto): 6 g, 11 graphs (subgraphs of
//                If, Loop and Scan, whose initializers are weights too)
//   TensorProto: 1 dims (int64, packed or not), 2 data_type (TensorProto.DataType), 8 name,
//                13 external_data (StringStringEntryProto: 1 key, 2 value), 14 data_location
// and skips every other field by its wire type (0 varint, 1 fixed 8 bytes, 2 length-delimited,
// 5 fixed 4 bytes; 3 and 4, the deprecated groups, are refused). raw_data and the typed data
// fields are skipped, not read, so a 2 GB file costs the bytes of its field headers.
//
// Written by hand rather than with libprotobuf: Debian's protobuf would need onnx.proto compiled
// at build time and would parse each initializer whole, data included, into memory; this subset
// is six fields of three messages, and a reader that only walks field headers is what lets every
// length be checked against the bytes left before anything is read. Checks: a varint has at most
// 10 bytes; every length fits in its enclosing message; subgraphs nest at most kMaxOnnxNesting
// deep; data types are known; external data's length, when given, is numel x element size.
#include <fmt/format.h>

#include <map>

#include "footprint/error.h"
#include "formats/readers.h"

namespace footprint::detail {
namespace {

enum Wire { kVarint = 0, kFixed64 = 1, kLength = 2, kGroupStart = 3, kGroupEnd = 4, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  int wire = 0;
  uint64_t value = 0;  // a varint's value; a length-delimited field's length
  uint64_t start = 0;  // where a length-delimited field's bytes start
};

class Reader {
 public:
  Reader(const ByteSource& src) : r_(src) {}
  uint64_t at() const { return r_.at(); }
  const std::string& file() const { return r_.file(); }

  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      uint8_t b = r_.get<uint8_t>(what);
      v |= uint64_t(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return v;
    }
    throw Error(fmt::format("{}: {} at byte {}: a varint longer than 10 bytes (it never ends)",
                            file(), what, r_.at()));
  }
  // The next field of a message that ends at `end`; its bytes are still to be read or skipped.
  Field field(uint64_t end, const char* what) {
    Field f;
    uint64_t key = varint(what);
    f.number = uint32_t(key >> 3);
    f.wire = int(key & 7);
    if (f.number == 0 || (key >> 3) > 0x1fffffff)
      throw Error(fmt::format("{}: {} at byte {}: field number {} is not a protobuf field", file(),
                              what, r_.at(), key >> 3));
    switch (f.wire) {
      case kVarint:
        f.value = varint(what);
        break;
      case kLength:
        f.value = varint(what);
        f.start = r_.at();
        if (f.value > end - f.start)
          throw Error(
              fmt::format("{}: {} at byte {}: field {} is {} bytes long, past the end of "
                          "its message ({} bytes left)",
                          file(), what, f.start, f.number, f.value, end - f.start));
        break;
      case kFixed64:
      case kFixed32:
        break;
      default:
        throw Error(
            fmt::format("{}: {} at byte {}: field {} has wire type {} (a group, or not "
                        "protobuf); ONNX uses 0, 1, 2 and 5",
                        file(), what, r_.at(), f.number, f.wire));
    }
    if (r_.at() > end)
      throw Error(fmt::format("{}: {} at byte {}: field {} runs past the end of its message",
                              file(), what, r_.at(), f.number));
    return f;
  }
  void skip(const Field& f, uint64_t end, const char* what) {
    uint64_t n = f.wire == kLength ? f.value : f.wire == kFixed64 ? 8 : f.wire == kFixed32 ? 4 : 0;
    if (n > end - r_.at())
      throw Error(fmt::format("{}: {} at byte {}: field {} runs past the end of its message",
                              file(), what, r_.at(), f.number));
    r_.skip(n, what);
  }
  std::string text(const Field& f, const char* what) {
    if (f.wire != kLength) throw wrong(f, "a string", what);
    if (f.value > kMaxOnnxString)
      throw Error(fmt::format("{}: {} at byte {} is {} bytes long, over the limit of {} bytes",
                              file(), what, f.start, f.value, kMaxOnnxString));
    std::string s(size_t(f.value), '\0');
    r_.bytes(s.data(), f.value, what);
    return s;
  }
  Error wrong(const Field& f, const char* expected, const char* what) const {
    return Error(fmt::format("{}: {} at byte {}: field {} has wire type {}; expected {}", file(),
                             what, r_.at(), f.number, f.wire, expected));
  }

 private:
  SequentialReader r_;
};

// TensorProto.DataType -> footprint's dtype; nullopt for the ones footprint does not count.
std::optional<DType> onnx_dtype(uint64_t t) {
  switch (t) {
    case 1:
      return DType::kFloat32;
    case 2:
      return DType::kUInt8;
    case 3:
      return DType::kInt8;
    case 4:
      return DType::kUInt16;
    case 5:
      return DType::kInt16;
    case 6:
      return DType::kInt32;
    case 7:
      return DType::kInt64;
    case 9:
      return DType::kBool;
    case 10:
      return DType::kFloat16;
    case 11:
      return DType::kFloat64;
    case 12:
      return DType::kUInt32;
    case 13:
      return DType::kUInt64;
    case 14:
      return DType::kComplex64;
    case 15:
      return DType::kComplex128;
    case 16:
      return DType::kBFloat16;
    case 17:
    case 18:
      return DType::kFloat8E4M3;  // E4M3FN, E4M3FNUZ: one byte each
    case 19:
    case 20:
      return DType::kFloat8E5M2;  // E5M2, E5M2FNUZ
    default:
      return std::nullopt;
  }
}

const char* onnx_dtype_name(uint64_t t) {
  static const char* names[] = {
      "UNDEFINED",      "FLOAT",      "UINT8",          "INT8",       "UINT16",   "INT16",
      "INT32",          "INT64",      "STRING",         "BOOL",       "FLOAT16",  "DOUBLE",
      "UINT32",         "UINT64",     "COMPLEX64",      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
      "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",      "INT4",     "FLOAT4E2M1"};
  return t < sizeof names / sizeof *names ? names[t] : "unknown";
}

class OnnxReader {
 public:
  OnnxReader(const ByteSource& src, Model& model) : r_(src), model_(model), size_(src.size()) {}

  void model() {
    while (r_.at() < size_) {
      Field f = r_.field(size_, "ModelProto");
      if (f.number == 1 && f.wire == kVarint) {
        ir_version_ = f.value;
      } else if (f.number == 7 && f.wire == kLength) {
        graph(f.start + f.value, 0);
      } else if (f.number == 8 && f.wire == kLength) {
        opset(f.start + f.value);
      } else {
        r_.skip(f, size_, "ModelProto");
      }
    }
    model_.format = fmt::format("ONNX (IR version {}{})", ir_version_,
                                opset_ ? fmt::format(", opset {}", opset_) : "");
    for (const auto& [file, count] : external_)
      model_.notes.push_back(
          fmt::format("{} tensors keep their data in {} (not read)", count, file));
    if (sparse_)
      model_.notes.push_back(fmt::format(
          "{} sparse initializers are not counted (their dense size is not their storage)",
          sparse_));
  }

 private:
  void opset(uint64_t end) {
    uint64_t version = 0;
    bool ai_onnx = true;  // the default domain, ""
    while (r_.at() < end) {
      Field f = r_.field(end, "OperatorSetIdProto");
      if (f.number == 1 && f.wire == kLength)
        ai_onnx = r_.text(f, "an opset domain").empty();
      else if (f.number == 2 && f.wire == kVarint)
        version = f.value;
      else
        r_.skip(f, end, "OperatorSetIdProto");
    }
    if (ai_onnx) opset_ = version;
  }

  void graph(uint64_t end, int depth) {
    if (depth > kMaxOnnxNesting)
      throw Error(fmt::format("{}: subgraphs nest more than {} deep (at byte {})", r_.file(),
                              kMaxOnnxNesting, r_.at()));
    while (r_.at() < end) {
      Field f = r_.field(end, "GraphProto");
      if (f.number == 5 && f.wire == kLength) {
        tensor(f.start + f.value);
      } else if (f.number == 15 && f.wire == kLength) {
        ++sparse_;
        r_.skip(f, end, "a sparse initializer");
      } else if (f.number == 1 && f.wire == kLength) {
        node(f.start + f.value, depth);
      } else {
        r_.skip(f, end, "GraphProto");
      }
    }
  }

  void node(uint64_t end, int depth) {
    while (r_.at() < end) {
      Field f = r_.field(end, "NodeProto");
      if (f.number == 5 && f.wire == kLength) {
        uint64_t attr_end = f.start + f.value;
        while (r_.at() < attr_end) {
          Field a = r_.field(attr_end, "AttributeProto");
          if ((a.number == 6 || a.number == 11) && a.wire == kLength)
            graph(a.start + a.value, depth + 1);
          else
            r_.skip(a, attr_end, "AttributeProto");
        }
      } else {
        r_.skip(f, end, "NodeProto");
      }
    }
  }

  void tensor(uint64_t end) {
    if (model_.tensors.size() >= size_t(kMaxTensors))
      throw Error(fmt::format("{}: more than {} initializers", r_.file(), kMaxTensors));
    uint64_t at = r_.at();
    TensorInfo t;
    uint64_t data_type = 0;
    bool external = false;
    std::string location;
    std::optional<uint64_t> length;
    while (r_.at() < end) {
      Field f = r_.field(end, "TensorProto");
      if (f.number == 1 && f.wire == kVarint) {
        dim(t, f.value);
      } else if (f.number == 1 && f.wire == kLength) {  // packed dims
        uint64_t dims_end = f.start + f.value;
        while (r_.at() < dims_end) dim(t, r_.varint("a tensor's dims"));
        if (r_.at() != dims_end)
          throw Error(fmt::format("{}: a tensor's packed dims at byte {} run past their field",
                                  r_.file(), f.start));
      } else if (f.number == 2 && f.wire == kVarint) {
        data_type = f.value;
      } else if (f.number == 8 && f.wire == kLength) {
        t.name = r_.text(f, "a tensor name");
      } else if (f.number == 14 && f.wire == kVarint) {
        external = f.value == 1;
      } else if (f.number == 13 && f.wire == kLength) {
        uint64_t entry_end = f.start + f.value;
        std::string key, value;
        while (r_.at() < entry_end) {
          Field e = r_.field(entry_end, "an external_data entry");
          if (e.number == 1 && e.wire == kLength)
            key = r_.text(e, "an external_data key");
          else if (e.number == 2 && e.wire == kLength)
            value = r_.text(e, "an external_data value");
          else
            r_.skip(e, entry_end, "an external_data entry");
        }
        if (key == "location") location = value;
        if (key == "length") {
          char* stop = nullptr;
          unsigned long long n = std::strtoull(value.c_str(), &stop, 10);
          if (value.empty() || *stop != '\0')
            throw Error(fmt::format("{}: tensor {}: external_data length '{}' is not a number",
                                    r_.file(), t.name, value));
          length = n;
        }
      } else {
        r_.skip(f, end, "TensorProto");
      }
    }
    std::string what = fmt::format("{}: initializer '{}' (at byte {})", r_.file(), t.name, at);
    auto dtype = onnx_dtype(data_type);
    if (!dtype)
      throw Error(fmt::format("{} has data type {} ({}), which footprint does not count", what,
                              data_type, onnx_dtype_name(data_type)));
    t.dtype = *dtype;
    int64_t numel = checked_numel(t.shape, what);
    if (external) {
      if (location.empty())
        throw Error(fmt::format("{} keeps its data outside the file but names no location", what));
      if (length && __int128(*length) != __int128(t.bytes()))
        throw Error(fmt::format("{}: its external data is {} bytes long; {} {} elements take {}",
                                what, *length, numel, dtype_name(t.dtype), t.bytes()));
      t.file = location;
      ++external_[location];
    }
    t.role = role_by_name(t.name, t.dtype);
    t.trainable = t.role == TensorRole::kParameter;
    t.storage = t.name;
    model_.tensors.push_back(std::move(t));
  }

  void dim(TensorInfo& t, uint64_t v) {
    if (v > uint64_t(INT64_MAX))
      throw Error(fmt::format("{}: a tensor has a negative dimension ({}) at byte {}", r_.file(),
                              int64_t(v), r_.at()));
    if (t.shape.size() >= 64)
      throw Error(
          fmt::format("{}: a tensor has more than 64 dimensions (at byte {})", r_.file(), r_.at()));
    t.shape.push_back(int64_t(v));
  }

  Reader r_;
  Model& model_;
  uint64_t size_;
  uint64_t ir_version_ = 0, opset_ = 0;
  int sparse_ = 0;
  std::map<std::string, int> external_;
};

}  // namespace

Model read_onnx(const ByteSource& src) {
  Model m;
  m.source = src.name();
  m.roles = RoleSource::kByName;
  OnnxReader(src, m).model();
  return m;
}

}  // namespace footprint::detail
