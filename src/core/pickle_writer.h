// A pickle writer for plain data: None, bools, ints, strings, lists and dicts, in protocol 2,
// which every Python 3 reads. Written here because no library of Debian's or PyPI's writes pickle
// from C++ without Python; the subset is small (the opcodes are pickletools' names). Strings are
// written once and then fetched from the memo, and put() lets a whole list or dict be shared the
// same way (memory_viz snapshots repeat the same frames thousands of times).
//
//   PickleWriter w;
//   w.begin_dict(); w.string("size"); w.integer(512); w.end_dict();
//   std::string bytes = w.finish();   // pickle.loads(bytes) == {"size": 512}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace footprint::detail {

class PickleWriter {
 public:
  PickleWriter() { out_ = "\x80\x02"; }  // PROTO 2

  void none() { out_ += 'N'; }
  void boolean(bool b) { out_ += b ? '\x88' : '\x89'; }  // NEWTRUE, NEWFALSE
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += 'K';  // BININT1
      out_ += char(v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';  // BININT: 4 bytes, little-endian, signed
      le(uint64_t(v), 4);
    } else {
      out_ += '\x8a';  // LONG1: a length byte, then two's complement, little-endian
      out_ += char(8);
      le(uint64_t(v), 8);
    }
  }
  void string(std::string_view s) {
    auto it = strings_.find(std::string(s));
    if (it != strings_.end()) return get(it->second);
    out_ += 'X';  // BINUNICODE: 4-byte length, UTF-8
    le(s.size(), 4);
    out_ += s;
    strings_.emplace(std::string(s), put());
  }
  void begin_dict() { out_ += "}("; }  // EMPTY_DICT, MARK
  void end_dict() { out_ += 'u'; }     // SETITEMS
  void begin_list() { out_ += "]("; }  // EMPTY_LIST, MARK
  void end_list() { out_ += 'e'; }     // APPENDS
  // Memoizes the object just written; get() writes it again as the same object.
  uint32_t put() {
    out_ += 'r';  // LONG_BINPUT
    le(next_, 4);
    return next_++;
  }
  void get(uint32_t index) {
    out_ += 'j';  // LONG_BINGET
    le(index, 4);
  }
  std::string finish() {
    out_ += '.';  // STOP
    return std::move(out_);
  }

 private:
  void le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_ += char((v >> (8 * i)) & 0xff);
  }
  std::string out_;
  std::unordered_map<std::string, uint32_t> strings_;
  uint32_t next_ = 0;
};

}  // namespace footprint::detail
