// The pickle reader on hand-built pickles: data comes through, code never runs.
#include "formats/pickle.h"

#include <gtest/gtest.h>

#include "core/pickle_writer.h"
#include "footprint/error.h"
#include "test_util.h"

namespace pk = footprint::detail::pickle;
using footprint_test::PickleWriter;

namespace {

std::string error_of(const std::string& bytes) {
  return footprint_test::error_of([&] { pk::parse(bytes, "test.pkl"); });
}
}  // namespace

TEST(Pickle, StateDictBecomesTensors) {
  PickleWriter w;
  w.state_dict({{"fc.weight", "0", 50, {5, 10}}, {"fc.bias", "1", 5, {5}}}).stop();
  auto doc = pk::parse(w.bytes(), "test.pkl");
  ASSERT_EQ(doc.root->kind, pk::Kind::kDict);
  ASSERT_EQ(doc.root->entries.size(), 2u);
  const pk::Value* weight = doc.root->get("fc.weight");
  ASSERT_NE(weight, nullptr);
  ASSERT_EQ(weight->kind, pk::Kind::kTensor);
  EXPECT_EQ(weight->view->shape, (std::vector<int64_t>{5, 10}));
  EXPECT_EQ(weight->view->strides, (std::vector<int64_t>{10, 1}));
  EXPECT_EQ(weight->view->storage->str, "0");
  EXPECT_EQ(weight->view->storage->integer, 50);
  EXPECT_EQ(weight->dtype, footprint::DType::kFloat32);
}

TEST(Pickle, MemoAndScalars) {
  // {"a": 1, "b": <memo 0>} where memo 0 is "x", plus a LONG1 of -2 and a float 0.5.
  PickleWriter w;
  w.empty_dict().mark().str("a").integer(1).str("s").str("x").op('q').raw(std::string(1, '\0'));
  w.str("b").op('h').raw(std::string(1, '\0'));                    // BINGET 0
  w.str("n").op('\x8a').raw(std::string("\x01\xfe", 2));           // LONG1 -2
  w.str("f").op('G').raw(std::string("\x3f\xe0\0\0\0\0\0\0", 8));  // BINFLOAT 0.5
  w.setitems().stop();
  auto doc = pk::parse(w.bytes(), "test.pkl");
  EXPECT_EQ(doc.root->get("a")->integer, 1);
  EXPECT_EQ(doc.root->get("b")->str, "x");
  EXPECT_EQ(doc.root->get("n")->integer, -2);
  EXPECT_EQ(doc.root->get("f")->real, 0.5);
}

TEST(Pickle, RefusesCodeGlobals) {
  for (auto [module, name] : {std::pair{"os", "system"},
                              {"posix", "system"},
                              {"builtins", "eval"},
                              {"builtins", "exec"},
                              {"subprocess", "Popen"},
                              {"torch", "load"}}) {
    PickleWriter w;
    w.global(module, name).mark().str("touch /tmp/footprint-pwned").tuple().reduce().stop();
    std::string err = error_of(w.bytes());
    EXPECT_NE(err.find(std::string("'") + module + "." + name + "'"), std::string::npos) << err;
    EXPECT_NE(err.find("does not allow"), std::string::npos) << err;
    EXPECT_NE(err.find("test.pkl"), std::string::npos) << err;
  }
}

TEST(Pickle, RefusesStackGlobalAndClasses) {
  PickleWriter w(4);
  w.op('\x8c')
      .raw(std::string(1, 2) + "os")
      .op('\x8c')
      .raw(std::string(1, 6) + "system")
      .op('\x93')
      .stop();
  EXPECT_NE(error_of(w.bytes()).find("'os.system'"), std::string::npos);
  // A whole pickled module: its class is refused, with the state_dict hint.
  PickleWriter m;
  m.global("torchvision.models.resnet", "ResNet").op(')').op('\x81').stop();
  std::string err = error_of(m.bytes());
  EXPECT_NE(err.find("state_dict()"), std::string::npos) << err;
  // TorchScript classes are inert objects only inside TorchScript archives.
  PickleWriter ts;
  ts.global("__torch__.Net", "Net").op(')').op('\x81').empty_dict().op('b').stop();
  EXPECT_FALSE(error_of(ts.bytes()).empty());
  pk::Options options;
  options.torchscript = true;
  EXPECT_EQ(pk::parse(ts.bytes(), "ts", options).root->kind, pk::Kind::kObject);
}

// A TorchScript archive writes an enum member (timm's Format.NCHW in its PatchEmbed) as the
// enum's global, its value and REDUCE: the value comes through as data; outside TorchScript
// archives the global is refused.
TEST(Pickle, TorchScriptEnumIsItsValue) {
  PickleWriter w;
  w.empty_dict().str("output_fmt").global("__torch__.timm.layers.format", "Format").str("NCHW");
  w.reduce().op('s').stop();
  pk::Options options;
  options.torchscript = true;
  auto doc = pk::parse(w.bytes(), "ts", options);
  ASSERT_EQ(doc.root->get("output_fmt")->kind, pk::Kind::kStr);
  EXPECT_EQ(doc.root->get("output_fmt")->str, "NCHW");
  EXPECT_NE(error_of(w.bytes()).find("__torch__.timm.layers.format.Format"), std::string::npos);
}

TEST(Pickle, RefusesReduceOnAllowedNonCallable) {
  PickleWriter w;
  w.global("torch", "FloatStorage").mark().integer(10).tuple().reduce().stop();
  std::string err = error_of(w.bytes());
  EXPECT_NE(err.find("torch.FloatStorage"), std::string::npos) << err;
  EXPECT_NE(err.find("not allow"), std::string::npos) << err;
}

TEST(Pickle, RefusesInstObjAndExtensions) {
  EXPECT_NE(error_of(std::string("\x80\x02iKos\nsystem\n.", 15)).find("INST/OBJ"),
            std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x02\x82\x01.", 5)).find("extension registry"),
            std::string::npos);
}

TEST(Pickle, MemoIndexOutOfRange) {
  PickleWriter w;
  w.op('j').raw(std::string("\xff\xff\xff\x7f", 4)).stop();  // LONG_BINGET 2^31-1
  EXPECT_NE(error_of(w.bytes()).find("memo entry 2147483647"), std::string::npos);
}

TEST(Pickle, HugeDeclaredLengthIsCheckedBeforeAllocating) {
  // BINUNICODE8 declaring 2^62 bytes, BINBYTES declaring 4 GiB - 1, in a 20-byte pickle.
  std::string err = error_of(std::string("\x80\x04\x8d\0\0\0\0\0\0\0\x40", 11));
  EXPECT_NE(err.find("declares 4611686018427387904 bytes"), std::string::npos) << err;
  err =
      error_of(std::string("\x80\x02"
                           "B\xff\xff\xff\xff",
                           7));
  EXPECT_NE(err.find("declares 4294967295 bytes"), std::string::npos) << err;
}

TEST(Pickle, DeepNestingDoesNotOverflowTheStack) {
  // 1,000,000 lists, each appended into the one below: a chain a million deep. Parsing is
  // iterative and the arena frees values without recursion.
  std::string bytes = "\x80\x02";
  const int depth = 1000000;
  bytes += std::string(depth, ']');
  bytes += std::string(depth - 1, 'a');
  bytes += '.';
  auto doc = pk::parse(bytes, "deep.pkl");
  EXPECT_EQ(doc.root->kind, pk::Kind::kList);
}

TEST(Pickle, TruncatedAndMalformed) {
  PickleWriter w;
  w.state_dict({{"w", "0", 4, {4}}}).stop();
  const std::string& full = w.bytes();
  // Every proper prefix is an error, never a crash.
  for (size_t n = 0; n + 1 < full.size(); ++n)
    EXPECT_FALSE(error_of(full.substr(0, n)).empty()) << n;
  EXPECT_NE(error_of(std::string("\x80\x02\xff", 3)).find("unknown opcode 0xff"),
            std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x09.", 3)).find("protocol 9"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x02t.", 4)).find("without a MARK"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x02.", 3)).find("empty stack"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x02N}a.", 6)).find("not a list"), std::string::npos);
}

TEST(Pickle, RebuildTensorArgumentsAreChecked) {
  PickleWriter w;  // _rebuild_tensor_v2 with a string where the storage should be
  w.global("torch._utils", "_rebuild_tensor_v2")
      .mark()
      .str("nope")
      .integer(0)
      .mark()
      .tuple()
      .mark()
      .tuple()
      .tuple()
      .reduce()
      .stop();
  EXPECT_NE(error_of(w.bytes()).find("not a storage"), std::string::npos);
  PickleWriter p;  // a persistent id that is not a storage tuple
  p.str("file:///etc/passwd").op('Q').stop();
  EXPECT_NE(error_of(p.bytes()).find("persistent id"), std::string::npos);
}

TEST(PickleMemory, OneValuePerByteIsBounded) {
  // 64 MiB of EMPTY_LIST opcodes would make 64 Mi lists of 136 bytes each (sizeof(Value)), 8.5 GiB;
  // the 512 MiB pickle memory limit stops the parse first.
  std::string bytes = "\x80\x02" + std::string(64u << 20, ']') + ".";
  std::string err = error_of(bytes);
  EXPECT_NE(err.find("the pickle memory limit"), std::string::npos) << err;
}

TEST(PickleMemory, ConstantsAreShared) {
  // A million Nones and small integers cost one value each, not a million.
  std::string bytes = "\x80\x02]";
  bytes += '(';
  for (int i = 0; i < 1000000; ++i) bytes += (i % 2) ? std::string("N") : std::string("K\x07");
  bytes += "e.";
  auto doc = pk::parse(bytes, "consts.pkl");
  EXPECT_EQ(doc.root->items.size(), 1000000u);
  EXPECT_LT(doc.arena.size(), 10u);
}

// The writer behind memory_viz snapshots (src/core/pickle_writer.h), read back by the reader: ints
// at every encoding's edges (BININT1 below 256, BININT for 32 bits, LONG1 beyond: addresses are
// 47-bit), strings (UTF-8, and memoized when repeated), shared lists, dicts, bools and None.
// tests/memory_viz_test.py loads its snapshots with Python's own pickle.
TEST(Pickle, WriterRoundTrips) {
  footprint::detail::PickleWriter w;
  const std::vector<int64_t> ints = {
      0,         255,      256, -1, INT32_MIN, INT32_MAX, 1ll << 31, -(1ll << 40), 0x7f00ll << 32,
      INT64_MIN, INT64_MAX};
  w.begin_dict();
  w.string("ints");
  w.begin_list();
  for (int64_t v : ints) w.integer(v);
  w.end_list();
  w.string("frames");
  w.begin_list();
  w.string("aten::conv2d");
  w.string("größe");
  w.string("aten::conv2d");
  w.end_list();
  uint32_t shared = w.put();
  w.string("again");
  w.get(shared);
  w.string("flags");
  w.begin_list();
  w.boolean(true);
  w.boolean(false);
  w.none();
  w.end_list();
  w.end_dict();
  auto doc = pk::parse(w.finish(), "written.pkl");
  ASSERT_EQ(doc.root->kind, pk::Kind::kDict);
  const pk::Value* got = doc.root->get("ints");
  ASSERT_NE(got, nullptr);
  ASSERT_EQ(got->items.size(), ints.size());
  for (size_t i = 0; i < ints.size(); ++i) EXPECT_EQ(got->items[i]->integer, ints[i]) << i;
  const pk::Value* frames = doc.root->get("frames");
  ASSERT_NE(frames, nullptr);
  ASSERT_EQ(frames->items.size(), 3u);
  EXPECT_EQ(frames->items[0]->str, "aten::conv2d");
  EXPECT_EQ(frames->items[1]->str, "größe");
  EXPECT_EQ(frames->items[2]->str, "aten::conv2d");
  EXPECT_EQ(doc.root->get("again"), frames);  // the same object, through the memo
  const pk::Value* flags = doc.root->get("flags");
  ASSERT_NE(flags, nullptr);
  EXPECT_TRUE(flags->items[0]->boolean);
  EXPECT_FALSE(flags->items[1]->boolean);
  EXPECT_EQ(flags->items[2]->kind, pk::Kind::kNone);
}
