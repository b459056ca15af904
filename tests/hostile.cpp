#include "hostile.h"

#include <filesystem>
#include <stdexcept>

#include "test_util.h"

namespace footprint_test {
namespace {

std::string zip_bytes(const std::vector<std::pair<std::string, std::string>>& entries,
                      bool deflate = false) {
  std::string dir = make_temp_dir();
  write_zip(dir + "/z.zip", entries, deflate);
  std::string bytes = read_file(dir + "/z.zip");
  std::filesystem::remove_all(dir);
  return bytes;
}

void put_le(std::string& s, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// A torch.save zip holding `pickle` as its data.pkl and a 16-byte storage "0".
std::string checkpoint(const std::string& pickle) {
  return zip_bytes({{"archive/data.pkl", pickle},
                    {"archive/data/0", std::string(16, '\0')},
                    {"archive/version", "3\n"}});
}

std::string good_pickle() {
  return PickleWriter().state_dict({{"w", "0", 4, {4}}}).stop().bytes();
}

std::string call(const std::string& module, const std::string& name, const std::string& arg) {
  return PickleWriter().global(module, name).mark().str(arg).tuple().reduce().stop().bytes();
}

std::string safetensors_one(const std::string& entry, uint64_t data) {
  return safetensors_bytes(std::string(R"({"w":)") + entry + "}", data);
}

// GGUF's little-endian fields (src/formats/gguf.cpp describes the layout).
struct Gguf {
  std::string b;
  Gguf& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b += char((v >> (8 * i)) & 0xff);
    return *this;
  }
  Gguf& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b += char((v >> (8 * i)) & 0xff);
    return *this;
  }
  Gguf& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  // A tensor info: name, dims (ne[0] first), ggml type, data offset.
  Gguf& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  // Zeros up to the 32-byte alignment, then `data` bytes of tensor data.
  std::string with_data(size_t data) const {
    std::string out = b;
    out.resize((out.size() + 31) / 32 * 32 + data, '\0');
    return out;
  }
};
Gguf gguf(uint64_t tensors, uint64_t kvs) {
  Gguf g;
  g.b = "GGUF";
  return g.u32(3).u64(tensors).u64(kvs);
}

// A protobuf length-delimited field (ONNX): key, length, bytes.
std::string proto(uint32_t field, const std::string& bytes) {
  std::string out;
  auto varint = [&](uint64_t v) {
    do {
      out += char((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    } while (v);
  };
  varint(uint64_t(field) << 3 | 2);
  varint(bytes.size());
  return out + bytes;
}

// A torch.export program's archive (src/formats/pt2.cpp): one parameter "w" of 4 floats.
const char* kPt2Program =
    R"({"graph_module":{"graph":{"tensor_values":{"p_w":{"dtype":7,"sizes":[{"as_int":4}],)"
    R"("requires_grad":true,"strides":[{"as_int":1}],"storage_offset":{"as_int":0}}},)"
    R"("inputs":[],"outputs":[],"nodes":[]},"signature":{"input_specs":[{"parameter":)"
    R"({"arg":{"name":"p_w"},"parameter_name":"w"}}],"output_specs":[]}}})";

// A program as torch 2.11's torch.export.save writes it (stack traces dropped): Linear, then
// BatchNorm1d in training (an in-place add_ on num_batches_tracked), relu, and a view whose size
// is a symbolic batch times 3 (aten.sym_size.int, _operator.mul), batch in [2, 64].
const char* kPt2Dynamic =
    R"pt2({"graph_module":{"graph":{"inputs":[{"as_tensor":{"name":"p_fc_weight"}},{"as_tensor":{"na)pt2"
    R"pt2(me":"p_fc_bias"}},{"as_tensor":{"name":"p_bn_weight"}},{"as_tensor":{"name":"p_bn_bias"}},)pt2"
    R"pt2({"as_tensor":{"name":"b_bn_running_mean"}},{"as_tensor":{"name":"b_bn_running_var"}},{"as_)pt2"
    R"pt2(tensor":{"name":"b_bn_num_batches_tracked"}},{"as_tensor":{"name":"x"}}],"outputs":[{"as_t)pt2"
    R"pt2(ensor":{"name":"view"}}],"nodes":[{"target":"torch.ops.aten.sym_size.int","inputs":[{"name)pt2"
    R"pt2(":"self","arg":{"as_tensor":{"name":"x"}},"kind":1},{"name":"dim","arg":{"as_int":0},"kind)pt2"
    R"pt2(":1}],"outputs":[{"as_sym_int":{"as_name":"sym_size_int_1"}}],"metadata":{"nn_module_stack)pt2"
    R"pt2(":"_empty_nn_module_stack_from_metadata_hook,_empty_nn_module_stack_from_metadata_hook,_em)pt2"
    R"pt2(pty_nn_module_stack_from_metadata_hook"},"is_hop_single_tensor_return":null,"name":"sym_si)pt2"
    R"pt2(ze_int_1"},{"target":"torch.ops.aten.linear.default","inputs":[{"name":"input","arg":{"as_)pt2"
    R"pt2(tensor":{"name":"x"}},"kind":1},{"name":"weight","arg":{"as_tensor":{"name":"p_fc_weight"})pt2"
    R"pt2(},"kind":1},{"name":"bias","arg":{"as_tensor":{"name":"p_fc_bias"}},"kind":1}],"outputs":[)pt2"
    R"pt2({"as_tensor":{"name":"linear"}}],"metadata":{"nn_module_stack":"L__self__,,__main__.Net;L_)pt2"
    R"pt2(_self__fc,fc,torch.nn.modules.linear.Linear"},"is_hop_single_tensor_return":null,"name":"l)pt2"
    R"pt2(inear"},{"target":"torch.ops.aten.add_.Tensor","inputs":[{"name":"self","arg":{"as_tensor")pt2"
    R"pt2(:{"name":"b_bn_num_batches_tracked"}},"kind":1},{"name":"other","arg":{"as_int":1},"kind":)pt2"
    R"pt2(1}],"outputs":[{"as_tensor":{"name":"add_"}}],"metadata":{"nn_module_stack":"L__self__,,__)pt2"
    R"pt2(main__.Net;L__self__bn,bn,torch.nn.modules.batchnorm.BatchNorm1d"},"is_hop_single_tensor_r)pt2"
    R"pt2(eturn":null,"name":"add_"},{"target":"torch.ops.aten.batch_norm.default","inputs":[{"name")pt2"
    R"pt2(:"input","arg":{"as_tensor":{"name":"linear"}},"kind":1},{"name":"weight","arg":{"as_tenso)pt2"
    R"pt2(r":{"name":"p_bn_weight"}},"kind":1},{"name":"bias","arg":{"as_tensor":{"name":"p_bn_bias")pt2"
    R"pt2(}},"kind":1},{"name":"running_mean","arg":{"as_tensor":{"name":"b_bn_running_mean"}},"kind)pt2"
    R"pt2(":1},{"name":"running_var","arg":{"as_tensor":{"name":"b_bn_running_var"}},"kind":1},{"nam)pt2"
    R"pt2(e":"training","arg":{"as_bool":true},"kind":1},{"name":"momentum","arg":{"as_float":0.1},")pt2"
    R"pt2(kind":1},{"name":"eps","arg":{"as_float":1e-05},"kind":1},{"name":"cudnn_enabled","arg":{")pt2"
    R"pt2(as_bool":false},"kind":1}],"outputs":[{"as_tensor":{"name":"batch_norm"}}],"metadata":{"nn)pt2"
    R"pt2(_module_stack":"L__self__,,__main__.Net;L__self__bn,bn,torch.nn.modules.batchnorm.BatchNor)pt2"
    R"pt2(m1d"},"is_hop_single_tensor_return":null,"name":"batch_norm"},{"target":"torch.ops.aten.re)pt2"
    R"pt2(lu.default","inputs":[{"name":"self","arg":{"as_tensor":{"name":"batch_norm"}},"kind":1}],)pt2"
    R"pt2("outputs":[{"as_tensor":{"name":"relu"}}],"metadata":{"nn_module_stack":"L__self__,,__main)pt2"
    R"pt2(__.Net"},"is_hop_single_tensor_return":null,"name":"relu"},{"target":"_operator.mul","inpu)pt2"
    R"pt2(ts":[{"name":"a","arg":{"as_sym_int":{"as_name":"sym_size_int_1"}},"kind":1},{"name":"b",")pt2"
    R"pt2(arg":{"as_int":3},"kind":1}],"outputs":[{"as_sym_int":{"as_name":"mul"}}],"metadata":{"nn_)pt2"
    R"pt2(module_stack":"L__self__,,__main__.Net"},"is_hop_single_tensor_return":null,"name":"mul"},)pt2"
    R"pt2({"target":"torch.ops.aten.view.default","inputs":[{"name":"self","arg":{"as_tensor":{"name)pt2"
    R"pt2(":"relu"}},"kind":1},{"name":"size","arg":{"as_sym_ints":[{"as_name":"mul"}]},"kind":1}],")pt2"
    R"pt2(outputs":[{"as_tensor":{"name":"view"}}],"metadata":{"nn_module_stack":"L__self__,,__main_)pt2"
    R"pt2(_.Net"},"is_hop_single_tensor_return":null,"name":"view"}],"tensor_values":{"p_fc_weight":)pt2"
    R"pt2({"dtype":7,"sizes":[{"as_int":3},{"as_int":4}],"requires_grad":true,"device":{"type":"cpu")pt2"
    R"pt2(,"index":null},"strides":[{"as_int":4},{"as_int":1}],"storage_offset":{"as_int":0},"layout)pt2"
    R"pt2(":7},"p_fc_bias":{"dtype":7,"sizes":[{"as_int":3}],"requires_grad":true,"device":{"type":")pt2"
    R"pt2(cpu","index":null},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},"layout":7},"p_b)pt2"
    R"pt2(n_weight":{"dtype":7,"sizes":[{"as_int":3}],"requires_grad":true,"device":{"type":"cpu","i)pt2"
    R"pt2(ndex":null},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},"layout":7},"p_bn_bias")pt2"
    R"pt2(:{"dtype":7,"sizes":[{"as_int":3}],"requires_grad":true,"device":{"type":"cpu","index":nul)pt2"
    R"pt2(l},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},"layout":7},"b_bn_running_mean":)pt2"
    R"pt2({"dtype":7,"sizes":[{"as_int":3}],"requires_grad":false,"device":{"type":"cpu","index":nul)pt2"
    R"pt2(l},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},"layout":7},"b_bn_running_var":{)pt2"
    R"pt2("dtype":7,"sizes":[{"as_int":3}],"requires_grad":false,"device":{"type":"cpu","index":null)pt2"
    R"pt2(},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},"layout":7},"b_bn_num_batches_tra)pt2"
    R"pt2(cked":{"dtype":5,"sizes":[],"requires_grad":false,"device":{"type":"cpu","index":null},"st)pt2"
    R"pt2(rides":[],"storage_offset":{"as_int":0},"layout":7},"x":{"dtype":7,"sizes":[{"as_expr":{"e)pt2"
    R"pt2(xpr_str":"Symbol('s77', positive=True, integer=True)","hint":{"as_int":2}}},{"as_int":4}],)pt2"
    R"pt2("requires_grad":false,"device":{"type":"cpu","index":null},"strides":[{"as_int":4},{"as_in)pt2"
    R"pt2(t":1}],"storage_offset":{"as_int":0},"layout":7},"linear":{"dtype":7,"sizes":[{"as_expr":{)pt2"
    R"pt2("expr_str":"Symbol('s77', positive=True, integer=True)","hint":{"as_int":2}}},{"as_int":3})pt2"
    R"pt2(],"requires_grad":false,"device":{"type":"cpu","index":null},"strides":[{"as_int":3},{"as_)pt2"
    R"pt2(int":1}],"storage_offset":{"as_int":0},"layout":7},"add_":{"dtype":5,"sizes":[],"requires_)pt2"
    R"pt2(grad":false,"device":{"type":"cpu","index":null},"strides":[],"storage_offset":{"as_int":0)pt2"
    R"pt2(},"layout":7},"batch_norm":{"dtype":7,"sizes":[{"as_expr":{"expr_str":"Symbol('s77', posit)pt2"
    R"pt2(ive=True, integer=True)","hint":{"as_int":2}}},{"as_int":3}],"requires_grad":false,"device)pt2"
    R"pt2(":{"type":"cpu","index":null},"strides":[{"as_int":3},{"as_int":1}],"storage_offset":{"as_)pt2"
    R"pt2(int":0},"layout":7},"relu":{"dtype":7,"sizes":[{"as_expr":{"expr_str":"Symbol('s77', posit)pt2"
    R"pt2(ive=True, integer=True)","hint":{"as_int":2}}},{"as_int":3}],"requires_grad":false,"device)pt2"
    R"pt2(":{"type":"cpu","index":null},"strides":[{"as_int":3},{"as_int":1}],"storage_offset":{"as_)pt2"
    R"pt2(int":0},"layout":7},"view":{"dtype":7,"sizes":[{"as_expr":{"expr_str":"Mul(Integer(3), Sym)pt2"
    R"pt2(bol('s77', positive=True, integer=True))","hint":{"as_int":6}}}],"requires_grad":false,"de)pt2"
    R"pt2(vice":{"type":"cpu","index":null},"strides":[{"as_int":1}],"storage_offset":{"as_int":0},")pt2"
    R"pt2(layout":7}},"sym_int_values":{"sym_size_int_1":{"as_expr":{"expr_str":"Symbol('s77', posit)pt2"
    R"pt2(ive=True, integer=True)","hint":{"as_int":2}}},"mul":{"as_expr":{"expr_str":"Mul(Integer(3)pt2"
    R"pt2(), Symbol('s77', positive=True, integer=True))","hint":{"as_int":6}}}},"sym_bool_values":{)pt2"
    R"pt2(},"is_single_tensor_return":false,"custom_obj_values":{},"sym_float_values":{}},"signature)pt2"
    R"pt2(":{"input_specs":[{"parameter":{"arg":{"name":"p_fc_weight"},"parameter_name":"fc.weight"})pt2"
    R"pt2(},{"parameter":{"arg":{"name":"p_fc_bias"},"parameter_name":"fc.bias"}},{"parameter":{"arg)pt2"
    R"pt2(":{"name":"p_bn_weight"},"parameter_name":"bn.weight"}},{"parameter":{"arg":{"name":"p_bn_)pt2"
    R"pt2(bias"},"parameter_name":"bn.bias"}},{"buffer":{"arg":{"name":"b_bn_running_mean"},"buffer_)pt2"
    R"pt2(name":"bn.running_mean","persistent":true}},{"buffer":{"arg":{"name":"b_bn_running_var"},")pt2"
    R"pt2(buffer_name":"bn.running_var","persistent":true}},{"buffer":{"arg":{"name":"b_bn_num_batch)pt2"
    R"pt2(es_tracked"},"buffer_name":"bn.num_batches_tracked","persistent":true}},{"user_input":{"ar)pt2"
    R"pt2(g":{"as_tensor":{"name":"x"}}}}],"output_specs":[{"user_output":{"arg":{"as_tensor":{"name)pt2"
    R"pt2(":"view"}}}}]},"module_call_graph":[],"metadata":{},"treespec_namedtuple_fields":{}},"opse)pt2"
    R"pt2(t_version":{"aten":10},"range_constraints":{"s77":{"min_val":2,"max_val":64}},"schema_vers)pt2"
    R"pt2(ion":{"major":8,"minor":17},"verifiers":["TRAINING"],"torch_version":"2.11.0+cu130"})pt2";

size_t find_last(const std::string& s, const std::string& sig) {
  return s.rfind(sig);
}

}  // namespace

namespace {

struct Case {
  const char* name;
  const char* filename;
  const char* expected;
  std::string (*make)(const std::string& marker);  // builds the bytes; only when asked for
};

std::string zip_patched(void (*patch)(std::string& bytes, size_t eocd, size_t cd)) {
  std::string bytes = checkpoint(good_pickle());
  patch(bytes, bytes.rfind(std::string("PK\x05\x06", 4)), bytes.find(std::string("PK\x01\x02", 4)));
  return bytes;
}

const Case kCases[] = {
    // Pickles that would run code under torch.load.
    {"pickle_os_system", "evil.pth", "'os.system'",
     [](const std::string& marker) { return checkpoint(call("os", "system", "touch " + marker)); }},
    {"pickle_builtins_eval", "eval.pth", "'builtins.eval'",
     [](const std::string& marker) {
       return checkpoint(
           call("builtins", "eval", "__import__('os').system('touch " + marker + "')"));
     }},
    {"pickle_subprocess_popen", "popen.pth", "'subprocess.Popen'",
     [](const std::string& marker) {
       PickleWriter w;
       w.global("subprocess", "Popen").mark().op(']').mark().str("touch").str(marker).op('e');
       return checkpoint(w.tuple().reduce().stop().bytes());
     }},
    {"pickle_reduce_not_allowed", "storage_call.pth", "does not allow as a function",
     [](const std::string&) {
       return checkpoint(PickleWriter()
                             .global("torch", "FloatStorage")
                             .mark()
                             .integer(4)
                             .tuple()
                             .reduce()
                             .stop()
                             .bytes());
     }},
    {"pickle_deep_nesting", "deep.pth", "the nesting limit",
     [](const std::string&) {
       PickleWriter w;  // {"a": {"a": ... 100,000 deep}}
       for (int i = 0; i < 100000; ++i) w.empty_dict().str("a");
       w.empty_dict();
       for (int i = 0; i < 100000; ++i) w.op('s');
       return checkpoint(w.stop().bytes());
     }},
    {"pickle_memo_out_of_range", "memo.pth", "memo entry 2147483647",
     [](const std::string&) {
       return checkpoint(
           PickleWriter().op('j').raw(std::string("\xff\xff\xff\x7f", 4)).stop().bytes());
     }},
    {"pickle_huge_length", "huge.pth", "declares 4611686018427387904 bytes",
     [](const std::string&) {
       return checkpoint(
           PickleWriter(4).op('\x8d').raw(std::string("\0\0\0\0\0\0\0\x40", 8)).stop().bytes());
     }},
    {"pickle_memory", "values.pth", "the pickle memory limit",
     [](const std::string&) {
       return checkpoint(PickleWriter().raw(std::string(8u << 20, ']')).stop().bytes());
     }},

    // safetensors headers.
    {"safetensors_overlap", "overlap.safetensors", "overlap",
     [](const std::string&) {
       return safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                12);
     }},
    {"safetensors_out_of_range", "range.safetensors", "past the end of the data",
     [](const std::string&) {
       return safetensors_one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4);
     }},
    {"safetensors_disagree", "disagree.safetensors", "span 8 bytes",
     [](const std::string&) {
       return safetensors_one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8);
     }},
    {"safetensors_header_100GB", "100gb.safetensors", "over the header-size limit",
     [](const std::string&) {
       std::string bytes = safetensors_bytes("{}", 0);
       put_le(bytes, 0, 100ull * 1000 * 1000 * 1000, 8);
       return bytes;
     }},
    {"safetensors_duplicate", "dup.safetensors", "names tensor 'w' twice",
     [](const std::string&) {
       return safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                8);
     }},
    {"safetensors_negative_dim", "neg.safetensors", "non-negative integer",
     [](const std::string&) {
       return safetensors_one(R"({"dtype":"F32","shape":[-4],"data_offsets":[0,16]})", 16);
     }},
    {"safetensors_overflowing_dims", "overflow.safetensors", "overflows 64 bits",
     [](const std::string&) {
       return safetensors_one(
           R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", 4);
     }},
    {"safetensors_absurd_number", "number.safetensors", "number overflow",
     [](const std::string&) {
       return safetensors_one(R"({"dtype":"F32","shape":[1e999],"data_offsets":[0,4]})", 4);
     }},

    // zip archives: a good checkpoint with one field of its directory broken.
    {"zip_bad_central_directory", "cd.pth", "not a readable zip archive",
     [](const std::string&) {  // the central directory's offset, far past the end
       return zip_patched(
           [](std::string& b, size_t eocd, size_t) { put_le(b, eocd + 16, 0x7ffffff0, 4); });
     }},
    {"zip_entry_past_end", "entry.pth", "not a readable zip archive",
     [](const std::string&) {  // the first entry's local header, past the end
       return zip_patched(
           [](std::string& b, size_t, size_t cd) { put_le(b, cd + 42, b.size() + 1000, 4); });
     }},
    {"zip_zip64_fields", "zip64.pth", "not a readable zip archive",
     [](const std::string&) {  // counts and offset that say "see the zip64 record", which is not
                               // there
       return zip_patched([](std::string& b, size_t eocd, size_t) {
         put_le(b, eocd + 8, 0xffff, 2);
         put_le(b, eocd + 10, 0xffff, 2);
         put_le(b, eocd + 16, 0xffffffff, 4);
       });
     }},
    {"zip_missing_storage", "missing.pth", "no entry 'archive/data/7'",
     [](const std::string&) {
       return zip_bytes(
           {{"archive/data.pkl", PickleWriter().state_dict({{"w", "7", 4, {4}}}).stop().bytes()}});
     }},
    // A zip bomb, as its headers declare it: a deflated data.pkl whose local and central headers
    // both say 300 MiB uncompressed, over the 256 MiB pickle size limit. It is refused by the
    // declared size, before anything is inflated.
    {"zip_bomb_pickle", "bomb.pth", "over the pickle size limit",
     [](const std::string&) {
       std::string bytes =
           zip_bytes({{"archive/data.pkl", PickleWriter().op('N').stop().bytes()}}, true);
       put_le(bytes, bytes.find(std::string("PK\x03\x04", 4)) + 22, 300u << 20, 4);
       put_le(bytes, bytes.find(std::string("PK\x01\x02", 4)) + 24, 300u << 20, 4);
       return bytes;
     }},

    // GGUF headers (issue 21).
    {"gguf_tensor_count_2_63", "big.gguf", "tensors; the",
     [](const std::string&) { return gguf(uint64_t(1) << 63, 0).b; }},
    {"gguf_string_past_end", "string.gguf", "needs 1000 bytes",
     [](const std::string&) {
       Gguf g = gguf(0, 1);  // a key of 1000 bytes, with 23 left
       return g.u64(1000).b + "abc" + std::string(20, 'x');
     }},
    {"gguf_unknown_type", "type.gguf", "ggml type 99",
     [](const std::string&) { return gguf(1, 0).tensor("w", {32}, 99, 0).with_data(128); }},
    {"gguf_overlapping_tensors", "overlap.gguf", "overlaps tensor",
     [](const std::string&) {  // two 8-float F32 tensors (32 bytes each), both at offset 0
       return gguf(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).with_data(64);
     }},
    {"gguf_huge_array", "array.gguf", "more than the",
     [](const std::string&) {  // an array of 2^62 u8
       return gguf(0, 1).str("a").u32(9).u32(0).u64(uint64_t(1) << 62).b;
     }},
    {"gguf_deep_arrays", "deep.gguf", "nests arrays more than 8 deep",
     [](const std::string&) {
       Gguf g = gguf(0, 1).str("a").u32(9);
       for (int i = 0; i < 20; ++i) g.u32(9).u64(1);
       return g.b;
     }},
    // ONNX (issue 21).
    {"onnx_varint_never_ends", "model.onnx", "never ends",
     [](const std::string&) { return "\x08" + std::string(11, '\xff'); }},
    {"onnx_nested_subgraphs", "nested.onnx", "subgraphs nest more than 64 deep",
     [](const std::string&) {  // graph -> node -> attribute g -> graph ..., 100 deep
       std::string graph;
       for (int i = 0; i < 100; ++i) graph = proto(1, proto(5, proto(6, graph)));
       return proto(7, graph);
     }},
    // torch.export programs (issue 21).
    {"pt2_pickled_weight_os_system", "evil.pt2", "'os.system'",
     [](const std::string& marker) {
       return zip_bytes(
           {{"m/archive_format", "pt2"},
            {"m/models/model.json", kPt2Program},
            {"m/data/weights/model_weights_config.json",
             R"({"config":{"w":{"path_name":"weight_0","is_param":true,"use_pickle":true}}})"},
            {"m/data/weights/weight_0", checkpoint(call("os", "system", "touch " + marker))}});
     }},
    {"pt2_json_bomb", "bomb.pt2", "JSON nests deeper than 128 levels",
     [](const std::string&) {
       return zip_bytes(
           {{"m/archive_format", "pt2"}, {"m/models/model.json", std::string(100000, '[')}});
     }},

    // Sharded indexes.
    {"index_absurd_nesting", "model.safetensors.index.json", "no object 'weight_map'",
     [](const std::string&) { return std::string(100000, '[') + std::string(100000, ']'); }},
    {"index_path_traversal", "traversal.index.json", "outside the index's folder",
     [](const std::string&) {
       return std::string(R"({"weight_map": {"w": "../../../etc/passwd"}})");
     }},
    {"index_names_itself", "self.index.json", "a shard that is itself an index",
     [](const std::string&) { return std::string(R"({"weight_map": {"w": "self.index.json"}})"); }},
};

}  // namespace

std::vector<std::string> hostile_names() {
  std::vector<std::string> out;
  for (const auto& c : kCases) out.push_back(c.name);
  return out;
}

HostileFile hostile_file(const std::string& name, const std::string& marker) {
  for (const auto& c : kCases)
    if (name == c.name) return {c.name, c.filename, c.make(marker), c.expected};
  throw std::runtime_error("no hostile file " + name);
}

std::vector<HostileFile> hostile_files(const std::string& marker) {
  std::vector<HostileFile> out;
  for (const auto& c : kCases) out.push_back(hostile_file(c.name, marker));
  return out;
}

std::string good_gguf() {
  Gguf g = gguf(2, 3);
  g.str("general.architecture").u32(8).str("llama");
  g.str("llama.block_count").u32(4).u32(2);
  g.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).str("a").str("b");
  // F32 [8, 4] (ne = {4, 8}): 128 bytes at 0; Q8_0 [2, 64] (ne = {64, 2}): 2 rows of 2 blocks of
  // 34 bytes, 136 bytes at 128.
  g.tensor("blk.0.attn_norm.weight", {4, 8}, 0, 0).tensor("blk.0.attn_q.weight", {64, 2}, 8, 128);
  return g.with_data(128 + 136);
}

std::string gguf_empty_huge_tensor() {
  return gguf(1, 0).tensor("w", {uint64_t(1) << 40, uint64_t(1) << 40, 0}, 0, 0).with_data(0);
}

std::string good_onnx() {
  auto varint_field = [](uint32_t field, uint64_t v) {
    std::string out(1, char(field << 3));
    do {
      out += char((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    } while (v);
    return out;
  };
  std::string packed_dims = proto(1, std::string("\x02\x03", 2));
  std::string w =
      packed_dims + varint_field(2, 1) + proto(8, "fc.weight") + proto(9, std::string(24, '\0'));
  std::string ext = varint_field(1, 5) + varint_field(2, 7) + proto(8, "steps") +
                    proto(13, proto(1, "location") + proto(2, "weights.bin")) +
                    proto(13, proto(1, "length") + proto(2, "40")) + varint_field(14, 1);
  std::string graph = proto(5, w) + proto(5, ext);
  return varint_field(1, 8) + proto(7, graph);
}

std::vector<Seed> seed_files() {
  std::vector<Seed> out;
  for (const auto& h : hostile_files("/nonexistent/PWNED")) {
    std::string target = h.filename.find(".safetensors") != std::string::npos ? "safetensors"
                         : h.filename.find(".json") != std::string::npos      ? "hf_config"
                         : h.filename.find(".gguf") != std::string::npos      ? "gguf"
                         : h.filename.find(".onnx") != std::string::npos      ? "onnx"
                                                                              : "zip";
    out.push_back({target, h.name, h.bytes});
  }
  // Good files.
  out.push_back({"gguf", "good", good_gguf()});
  out.push_back({"gguf", "empty_huge_tensor", gguf_empty_huge_tensor()});
  out.push_back({"onnx", "good", good_onnx()});
  out.push_back({"pt2", "good", kPt2Program});
  out.push_back({"pt2", "dynamic", kPt2Dynamic});
  out.push_back({"pt2", "bomb", std::string(1000, '[')});
  out.push_back({"safetensors", "good",
                 safetensors_bytes(R"({"__metadata__":{"format":"pt"},)"
                                   R"("a":{"dtype":"F32","shape":[4],"data_offsets":[12,28]},)"
                                   R"("b":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})",
                                   28)});
  std::string sd = PickleWriter()
                       .state_dict({{"emb.weight", "0", 1600, {100, 16}},
                                    {"head.weight", "0", 1600, {100, 16}},
                                    {"fc.bias", "1", 16, {16}}})
                       .stop()
                       .bytes();
  out.push_back({"pickle", "state_dict", sd});
  out.push_back({"zip", "state_dict",
                 zip_bytes({{"archive/data.pkl", sd},
                            {"archive/data/0", std::string(6400, '\0')},
                            {"archive/data/1", std::string(64, '\0')},
                            {"archive/version", "3\n"}})});
  PickleWriter ts;
  ts.global("__torch__", "Net")
      .op(')')
      .op('\x81')
      .empty_dict()
      .mark()
      .str("training")
      .boolean(true);
  ts.str("weight").tensor("FloatStorage", "0", 8, {8}, {1}, 0, true).setitems().op('b').stop();
  out.push_back({"pickle", "torchscript", ts.bytes()});
  out.push_back({"zip", "torchscript",
                 zip_bytes({{"net/data.pkl", ts.bytes()},
                            {"net/constants.pkl", PickleWriter().op(')').stop().bytes()},
                            {"net/code/__torch__.py",
                             "class Net(Module):\n  __parameters__ = [\"weight\", ]\n"},
                            {"net/data/0", std::string(32, '\0')}})});
  // Pickles alone, which the zip target reaches only after the zip's own checks.
  out.push_back({"pickle", "os_system", call("os", "system", "touch /nonexistent/PWNED")});
  out.push_back({"pickle", "storage_call",
                 PickleWriter()
                     .global("torch", "FloatStorage")
                     .mark()
                     .integer(4)
                     .tuple()
                     .reduce()
                     .stop()
                     .bytes()});
  out.push_back({"pickle", "memo",
                 PickleWriter().op('j').raw(std::string("\xff\xff\xff\x7f", 4)).stop().bytes()});
  out.push_back({"pickle", "protocol4",
                 PickleWriter(4)
                     .op('\x8c')
                     .raw(std::string(1, 1) + "a")
                     .op('\x94')
                     .op('N')
                     .op('\x86')
                     .stop()
                     .bytes()});
  out.push_back(
      {"hf_config", "llama",
       R"({"model_type":"llama","hidden_size":4096,"intermediate_size":11008,"num_attention_heads":32,)"
       R"("num_key_value_heads":8,"num_hidden_layers":32,"vocab_size":32000,"torch_dtype":"bfloat16"})"});
  out.push_back(
      {"hf_config", "gpt2",
       R"({"model_type":"gpt2","n_embd":768,"n_layer":12,"n_head":12,"n_inner":null,"n_positions":1024,)"
       R"("vocab_size":50257})"});
  out.push_back(
      {"hf_config", "bert",
       R"({"model_type":"bert","hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,)"
       R"("intermediate_size":3072,"vocab_size":30522,"type_vocab_size":2,"layer_norm_eps":1e-12})"});
  for (const char* s : {"1x3x224x224", "1,3,224,224", "8x128:int64;8x128:bool", "7", "1x3xAx224"})
    out.push_back({"shape", std::string("shape_") + std::to_string(out.size()), s});
  return out;
}

}  // namespace footprint_test
