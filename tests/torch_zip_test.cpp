// torch.save and TorchScript zips built by hand: what torch writes is read, what it never writes
// is refused with one clear line.
#include <gtest/gtest.h>

#include <filesystem>

#include "footprint/footprint.h"
#include "test_util.h"

namespace fp = footprint;
using footprint_test::PickleWriter;

namespace {

class TorchZip : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = footprint_test::make_temp_dir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string zip(const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string path = dir_ + "/" + name;
    footprint_test::write_zip(path, entries);
    return path;
  }
  std::string error_of(const std::string& path) {
    return footprint_test::error_of([&] { fp::read_model(path); });
  }

  std::string dir_;
};

}  // namespace

TEST_F(TorchZip, StateDictWithTiedStorage) {
  // emb.weight and head.weight share storage "0" (100 x 16 floats = 6,400 bytes); fc.bias has its
  // own.
  PickleWriter w;
  w.state_dict({{"emb.weight", "0", 1600, {100, 16}},
                {"head.weight", "0", 1600, {100, 16}},
                {"fc.bias", "1", 16, {16}}})
      .stop();
  auto path = zip("tied.pth", {{"archive/data.pkl", w.bytes()},
                               {"archive/data/0", std::string(6400, '\0')},
                               {"archive/data/1", std::string(64, '\0')},
                               {"archive/version", "3\n"}});
  auto r = fp::params(fp::read_model(path));
  EXPECT_EQ(r.format, "torch.save checkpoint");
  EXPECT_EQ(r.params.numel, 1616);  // 1,600 once + 16
  EXPECT_EQ(r.tied, 1);
  EXPECT_EQ(r.tensors[1].tied_to, "emb.weight");
}

TEST_F(TorchZip, MissingStorageEntry) {
  PickleWriter w;
  w.state_dict({{"w", "7", 4, {4}}}).stop();
  auto path = zip("m.pth", {{"archive/data.pkl", w.bytes()}});
  std::string err = error_of(path);
  EXPECT_NE(err.find("no entry 'archive/data/7'"), std::string::npos) << err;
  EXPECT_NE(err.find(path), std::string::npos) << err;
}

TEST_F(TorchZip, StorageSizeDisagrees) {
  PickleWriter w;
  w.state_dict({{"w", "0", 4, {4}}}).stop();  // 4 floats = 16 bytes, but the entry has 12
  auto path =
      zip("m.pth", {{"archive/data.pkl", w.bytes()}, {"archive/data/0", std::string(12, '\0')}});
  EXPECT_NE(error_of(path).find("(16 bytes) but 'archive/data/0' holds 12 bytes"),
            std::string::npos);
}

TEST_F(TorchZip, ViewPastItsStorage) {
  PickleWriter w;  // shape [8] over a storage of 4 elements
  w.global("collections", "OrderedDict")
      .op(')')
      .reduce()
      .mark()
      .str("w")
      .tensor("FloatStorage", "0", 4, {8}, {1})
      .setitems()
      .stop();
  auto path =
      zip("m.pth", {{"archive/data.pkl", w.bytes()}, {"archive/data/0", std::string(16, '\0')}});
  EXPECT_NE(error_of(path).find("reaches element 7 of storage '0', which holds 4"),
            std::string::npos);
}

TEST_F(TorchZip, NoDataPkl) {
  auto path = zip("m.pth", {{"archive/version", "3\n"}});
  EXPECT_NE(error_of(path).find("no <archive>/data.pkl"), std::string::npos);
}

TEST_F(TorchZip, HostilePickleInsideAZipRunsNothing) {
  std::string marker = dir_ + "/pwned";
  PickleWriter w;
  w.global("os", "system").mark().str("touch " + marker).tuple().reduce().stop();
  auto path = zip("evil.pth", {{"archive/data.pkl", w.bytes()}, {"archive/version", "3\n"}});
  std::string err = error_of(path);
  EXPECT_NE(err.find("'os.system'"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(TorchZip, DeeplyNestedCheckpointHitsTheNestingLimit) {
  // {"a": {"a": {... 300 deep ...}}}: the walk stops at the documented limit of 256.
  PickleWriter w;
  for (int i = 0; i < 300; ++i) w.empty_dict().str("a");
  w.empty_dict();
  for (int i = 0; i < 300; ++i) w.op('s');  // SETITEM
  w.stop();
  auto path = zip("deep.pth", {{"archive/data.pkl", w.bytes()}});
  EXPECT_NE(error_of(path).find("deeper than 256 levels"), std::string::npos);
}

TEST_F(TorchZip, TruncatedZip) {
  PickleWriter w;
  w.state_dict({{"w", "0", 1024, {1024}}}).stop();
  auto path = zip("full.pth",
                  {{"archive/data.pkl", w.bytes()}, {"archive/data/0", std::string(4096, '\1')}});
  std::string bytes = footprint_test::read_file(path);
  for (size_t cut : {bytes.size() / 2, bytes.size() - 10, size_t(30)}) {
    std::string truncated = dir_ + "/cut.pth";
    footprint_test::write_file(truncated, bytes.substr(0, cut));
    std::string err = error_of(truncated);
    EXPECT_NE(err.find("not a readable zip archive"), std::string::npos) << cut << ": " << err;
  }
}

TEST_F(TorchZip, TorchScriptParametersAndBuffersFromClassCode) {
  // A TorchScript archive: Net has a child "bn" of class BN, with a parameter and a buffer, and a
  // tensor attribute that is neither (not counted, as torch's named_parameters/buffers skip it).
  PickleWriter w;
  w.global("__torch__", "Net").op(')').op('\x81').empty_dict().mark();
  w.str("training").boolean(true);
  w.str("bn")
      .global("__torch__.torch.nn.modules.batchnorm", "BN")
      .op(')')
      .op('\x81')
      .empty_dict()
      .mark();
  w.str("weight").tensor("FloatStorage", "0", 8, {8}, {1}, 0, true);
  w.str("running_mean").tensor("FloatStorage", "1", 8, {8}, {1});
  w.str("scratch").tensor("FloatStorage", "2", 8, {8}, {1});
  w.setitems().op('b');
  w.setitems().op('b').stop();
  std::string net =
      "class Net(Module):\n  __parameters__ = []\n  __buffers__ = []\n  bn : __torch__.BN\n";
  std::string bn =
      "class BN(Module):\n  __parameters__ = [\"weight\", ]\n  __buffers__ = [\"running_mean\", "
      "]\n";
  auto path = zip("net.pt", {{"net/data.pkl", w.bytes()},
                             {"net/constants.pkl", PickleWriter().op(')').stop().bytes()},
                             {"net/code/__torch__.py", net},
                             {"net/code/__torch__/torch/nn/modules/batchnorm.py", bn},
                             {"net/data/0", std::string(32, '\0')},
                             {"net/data/1", std::string(32, '\0')},
                             {"net/data/2", std::string(32, '\0')}});
  auto m = fp::read_model(path);
  EXPECT_EQ(m.format, "TorchScript");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].name, "bn.weight");
  EXPECT_EQ(m.tensors[0].role, fp::TensorRole::kParameter);
  EXPECT_TRUE(m.tensors[0].trainable);
  EXPECT_EQ(m.tensors[1].name, "bn.running_mean");
  EXPECT_EQ(m.tensors[1].role, fp::TensorRole::kBuffer);
  EXPECT_EQ(m.module_types.at("bn"), "BN");
}
