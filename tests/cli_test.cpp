// The footprint command as a user runs it: bad input gets one line on stderr and exit 1, usage
// errors exit 2, and the output formats carry PyTorch's numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hostile.h"
#include "test_util.h"

using footprint_test::run;
using footprint_test::shell_quote;

namespace {

const std::string kCli = FOOTPRINT_CLI;
const std::string kModels = FOOTPRINT_MODELS;

footprint_test::RunResult run_footprint(const std::string& args) {
  return run(shell_quote(kCli) + " " + args);
}

// Exit 1, nothing on stdout, one line on stderr that says `what`.
void one_line(const footprint_test::RunResult& r, const std::string& what) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

class CliBadInput : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = footprint_test::make_temp_dir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Expects exit 1, nothing on stdout, and exactly one line on stderr naming the file and `what`.
  void expect_one_line(const std::string& path, const std::string& what) {
    auto r = run_footprint("params " + shell_quote(path));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("footprint: " + path, 0), 0u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
  std::string file(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    footprint_test::write_file(path, bytes);
    return path;
  }

  std::string dir_;
};

}  // namespace

TEST_F(CliBadInput, MissingFile) {
  expect_one_line(dir_ + "/nope.pt", "no such file");
}
TEST_F(CliBadInput, Directory) {
  expect_one_line(dir_, "is a directory");
}
TEST_F(CliBadInput, EmptyFile) {
  expect_one_line(file("empty.pt", ""), "empty file");
}
TEST_F(CliBadInput, UnknownFormat) {
  expect_one_line(file("notes.txt", "hello, world\n"), "unknown format");
}

TEST_F(CliBadInput, TruncatedZip) {
  std::string whole = footprint_test::read_file(kModels + "/resnet18.pth");
  expect_one_line(file("cut.pth", whole.substr(0, whole.size() / 2)), "not a readable zip archive");
}

TEST_F(CliBadInput, SafetensorsTruncatedHeader) {
  std::string bytes = footprint_test::safetensors_bytes(
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  expect_one_line(file("cut.safetensors", bytes.substr(0, 30)), "follow it (truncated file?)");
}

TEST_F(CliBadInput, SafetensorsLengthBeyondFile) {
  std::string bytes = footprint_test::safetensors_bytes("{}", 0);
  bytes[1] = 0x10;  // declares 4,098 header bytes; 2 follow
  expect_one_line(file("long.safetensors", bytes),
                  "header length is 4098 bytes but only 2 follow it");
}

TEST_F(CliBadInput, SafetensorsNotJson) {
  expect_one_line(
      file("bad.safetensors", footprint_test::safetensors_bytes("{this is not json", 0)),
      "not valid JSON");
}

TEST_F(CliBadInput, SafetensorsUnknownDtype) {
  expect_one_line(
      file("q.safetensors", footprint_test::safetensors_bytes(
                                R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,1]}})", 1)),
      "unknown dtype 'Q4_K'");
}

TEST_F(CliBadInput, PickleThatCallsOsSystemRunsNothing) {
  // evil.pth is made by Python's pickle from an object whose __reduce__ is os.system("touch
  // PWNED").
  std::filesystem::remove(kModels + "/PWNED");
  expect_one_line(kModels + "/evil.pth", "'posix.system', which footprint does not allow");
  EXPECT_FALSE(std::filesystem::exists(kModels + "/PWNED"));
}

TEST(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run_footprint("").status, 2);
  EXPECT_EQ(run_footprint("frobnicate").status, 2);
  EXPECT_EQ(run_footprint("params").status, 2);
  EXPECT_EQ(run_footprint("params x.pt --format xml").status, 2);
  EXPECT_EQ(run_footprint("params x.pt --depth -5").status, 2);
  auto r = run_footprint("params x.pt --dtype fp32,fp12");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown precision 'fp12'"), std::string::npos) << r.err;
}

TEST(Cli, VersionAndHelp) {
  auto v = run_footprint("--version");
  EXPECT_EQ(v.status, 0);
  // The first line is footprint's version; then the torch range and each set of rules' source
  // (footprint/versions.h; tests/python/test_cli.py holds their words).
  EXPECT_EQ(v.out.substr(0, v.out.find('\n') + 1), "footprint " FOOTPRINT_VERSION_STRING "\n");
  EXPECT_NE(v.out.find("\ntorch: supports 2.9 to 2.15"), std::string::npos) << v.out;
  auto h = run_footprint("--help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("params"), std::string::npos);
  auto p = run_footprint("params --help");
  EXPECT_EQ(p.status, 0);
  EXPECT_NE(p.out.find("Examples:"), std::string::npos);
  EXPECT_NE(p.out.find("--dtype"), std::string::npos);
}

TEST(Cli, JsonCarriesExactBytes) {
  auto r = run_footprint("params " + shell_quote(kModels + "/hybrid_network.pt") +
                         " --format json --dtype fp32,fp16");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"]["numel"], 33762);  // the seed's hand count (tests/torch_api_test.cpp)
  EXPECT_EQ(j["parameters"]["bytes_at"]["fp32"], 135048);
  EXPECT_EQ(j["parameters"]["bytes_at"]["fp16"], 67524);
  EXPECT_EQ(j["format"], "TorchScript");
}

TEST(Cli, SeveralFilesOneBad) {
  auto r = run_footprint(shell_quote("params") + " " +
                         shell_quote(kModels + "/hybrid_network.pth") + " /nonexistent.pt " +
                         shell_quote(kModels + "/tied.pt") + " --format json --depth 0");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto j = nlohmann::json::parse(r.out);  // the two good files are still reported
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["parameters"]["numel"], 1872);  // 100*16 + 16*16 + 16, tied head once
}

TEST(Cli, CsvTensorsHasOneRowPerTensor) {
  auto r = run_footprint("params " + shell_quote(kModels + "/resnet18.safetensors") +
                         " --tensors --format csv");
  ASSERT_EQ(r.status, 0) << r.err;
  // resnet18's state_dict has 122 entries: 62 parameters and 60 BatchNorm buffers (20 BN layers x
  // 3).
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1 + 122);
}

// The table layout, compared with tests/golden/params_hybrid_network.txt. Its numbers are the hand
// counts of tests/torch_api_test.cpp; rewrite it with FOOTPRINT_UPDATE_GOLDEN=1 and review the
// diff.
TEST(Cli, GoldenTable) {
  auto r = run("cd " + shell_quote(kModels) + " && " + shell_quote(kCli) +
               " params hybrid_network.pt --depth 2 --dtype fp32,fp16");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string golden =
      std::string(FOOTPRINT_SOURCE_DIR) + "/tests/golden/params_hybrid_network.txt";
  if (std::getenv("FOOTPRINT_UPDATE_GOLDEN")) footprint_test::write_file(golden, r.out);
  EXPECT_EQ(r.out, footprint_test::read_file(golden));
}

// Every hostile file of tests/hostile.cpp through the command: exit 1, one line on stderr that
// names the file and the problem, nothing on stdout, and nothing executed (no PWNED file appears).
// Run a second time under a 1 GiB address-space limit (ulimit -v): the readers' limits keep the
// peak below it, so each still ends with its own message rather than an allocation failure.
class CliHostile : public ::testing::TestWithParam<std::string> {};

namespace {

void expect_refused(const std::string& name, const std::string& prefix) {
  const footprint_test::HostileFile h = footprint_test::hostile_file(name, "PWNED");
  std::string dir = footprint_test::make_temp_dir();
  footprint_test::write_file(dir + "/" + h.filename, h.bytes);
  auto r = run("cd " + shell_quote(dir) + " && " + prefix + shell_quote(kCli) + " params " +
               shell_quote(h.filename));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("footprint: " + h.filename, 0), 0u) << r.err;
  EXPECT_NE(r.err.find(h.expected), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/PWNED"));
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST_P(CliHostile, RefusedWithOneLine) {
  expect_refused(GetParam(), "");
}
TEST_P(CliHostile, RefusedUnderAMemoryLimit) {
  expect_refused(GetParam(), "ulimit -v 1048576 && ");
}

INSTANTIATE_TEST_SUITE_P(Files, CliHostile, ::testing::ValuesIn(footprint_test::hostile_names()),
                         [](const auto& info) { return info.param; });

TEST(Cli, CsvOfSeveralFilesIsOneTable) {
  auto r = run_footprint("params " + shell_quote(kModels + "/hybrid_network.pt") + " " +
                         shell_quote(kModels + "/tied.pt") + " --format csv --depth 0");
  ASSERT_EQ(r.status, 0) << r.err;
  // --depth 0: one row per file (the whole model), under one header.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_EQ(r.out.rfind("source,module,type,depth,parameters,", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("/tied.pt,(model),TiedLM,0,1872,0,"), std::string::npos) << r.out;
}

// `footprint summary` runs footprint-engine (LibTorch) with the same arguments. The numbers are
// the hand counts of tests/engine_test.cpp (SeedHybridNetworkByHand).
TEST(CliSummary, GoldenTableWithTheSeedsThopLines) {
  auto r = run("cd " + shell_quote(kModels) + " && " + shell_quote(kCli) +
               " summary hybrid_network.pt --input 1x1x28x28");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("Computational Cost: 3.71 MFLOPs (1.84 MMACs"), std::string::npos);
  EXPECT_NE(r.out.find("Parameter Count: 33,762\n"), std::string::npos);
  std::string golden =
      std::string(FOOTPRINT_SOURCE_DIR) + "/tests/golden/summary_hybrid_network.txt";
  if (std::getenv("FOOTPRINT_UPDATE_GOLDEN")) footprint_test::write_file(golden, r.out);
  EXPECT_EQ(r.out, footprint_test::read_file(golden));
}

TEST(CliSummary, JsonCarriesExactCounts) {
  auto r = run_footprint("summary " + shell_quote(kModels + "/hybrid_network.pt") +
                         " --input 1,1,28,28 --format json --train");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["forward"]["macs"], 1840448);
  EXPECT_EQ(j["forward"]["flops"], 3711114);
  EXPECT_EQ(j["params"], 33762);
  EXPECT_EQ(j["mode"], "train");
  EXPECT_TRUE(j["backward"]["flops"].get<int64_t>() > 0);
  EXPECT_EQ(j["modules"][0]["output_shapes"], nlohmann::json::parse("[[1, 10]]"));
}

// --dtype bf16 runs the model at bf16: its 33,762 parameters take 2 bytes each, 67,524 B.
TEST(CliSummary, DtypeCastsTheWeights) {
  auto r = run_footprint("summary " + shell_quote(kModels + "/hybrid_network.pt") +
                         " --input 1x1x28x28 --dtype bf16 --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["param_bytes"], 67524);
  EXPECT_EQ(j["input_bytes"], 28 * 28 * 2);
  EXPECT_EQ(j["forward"]["macs"], 1840448);  // the arithmetic does not change
}

TEST(CliSummary, ByOpAndTorchstatColumns) {
  auto ops = run_footprint("summary " + shell_quote(kModels + "/hybrid_network.pt") +
                           " --input 1x1x28x28 --by op --format csv");
  ASSERT_EQ(ops.status, 0) << ops.err;
  EXPECT_EQ(ops.out.rfind("op,phase,calls,macs,flops,read,write\n", 0), 0u) << ops.out;
  // 14 convolutions (entry, transition, 6 per multi-scale stage): the hand count 1,840,448 minus
  // the predictor's 8,320 = 1,832,128 MACs.
  EXPECT_NE(ops.out.find("aten::conv2d,forward,14,1832128,"), std::string::npos) << ops.out;
  auto stat = run_footprint("summary " + shell_quote(kModels + "/hybrid_network.pt") +
                            " --input 1x1x28x28 --columns torchstat");
  ASSERT_EQ(stat.status, 0) << stat.err;
  EXPECT_NE(stat.out.find("FLOPs %"), std::string::npos);
  EXPECT_NE(stat.out.find("Read"), std::string::npos);
}

TEST(CliSummary, AnOpWithNoMetaKernelIsNamedTheRestPrintedExit3) {
  auto r = run_footprint("summary " + shell_quote(kModels + "/no_meta_kernel.pt") + " --input 3x4");
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.out.find("(model) (NoMetaKernel) *"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a (Linear)"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;
  EXPECT_NE(r.err.find("aten::logit: no kernel for the meta device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("aten::logit: no FLOP rule"), std::string::npos) << r.err;
}

TEST(CliSummary, BadInputGetsOneLine) {
  one_line(run_footprint("summary /nonexistent.pt --input 1x3"), "/nonexistent.pt: no such file");
  one_line(run_footprint("summary " + shell_quote(kModels + "/resnet18.safetensors") +
                         " --input 1x3x224x224"),
           "needs TorchScript");
  one_line(
      run_footprint("summary " + shell_quote(kModels + "/resnet18.pt") + " --input 1x1x224x224"),
      "the model failed on input 1x1x224x224: Given groups=1, weight of size [64, 3, 7, 7]");
  auto usage = run_footprint("summary x.pt --input 1x0x3");
  EXPECT_EQ(usage.status, 2);
  EXPECT_EQ(run_footprint("summary x.pt").status, 2);  // --input is required
  auto help = run_footprint("summary --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Examples:"), std::string::npos);
}

// `footprint memory` and `fit` run footprint-engine. The numbers are tests/memory_test.cpp's hand
// calculations; here: the command line, the formats and the errors.
TEST(CliMemory, JsonAndTheSeedsFormulas) {
  auto r = run_footprint("memory " + shell_quote(kModels + "/hybrid_network.pt") +
                         " --input 1x1x28x28 --train --optimizer adamw --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["optimizer"], "AdamW, foreach");
  EXPECT_EQ(j["model_states"]["parameters"], 135048);       // 33,762 x 4 B
  EXPECT_EQ(j["model_states"]["optimizer state"], 270096);  // exp_avg + exp_avg_sq
  EXPECT_EQ(j["iteration_peaks"].size(), 2u);
  EXPECT_GE(j["reserved_peak"].get<int64_t>(), j["allocated_peak"].get<int64_t>());
  // The article's (0.5694580078125, 4776960) for its two-conv model at 1x1x32x32.
  auto seed = run_footprint("memory " + shell_quote(kModels + "/two_conv.pt") +
                            " --input 1x1x32x32 --method seed");
  ASSERT_EQ(seed.status, 0) << seed.err;
  EXPECT_NE(seed.out.find("(0.5694580078125, 4776960)"), std::string::npos) << seed.out;
  auto text = run_footprint("memory " + shell_quote(kModels + "/hybrid_network.pt") +
                            " --input 8x1x28x28 --train --gpu t4");
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("Fits, with"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("16.00 bytes per trainable parameter"), std::string::npos) << text.out;
  auto amp = run_footprint("memory " + shell_quote(kModels + "/hybrid_network.pt") +
                           " --input 8x1x28x28 --train --precision bf16-amp --format json");
  ASSERT_EQ(amp.status, 0) << amp.err;
  EXPECT_EQ(nlohmann::json::parse(amp.out)["precision"], "bf16-amp");
}

TEST(CliMemory, FitPrintsTheBracket) {
  auto r = run_footprint("fit " + shell_quote(kModels + "/resnet18.pt") +
                         " --input 3x224x224 --train --gpu 2GiB --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int64_t batch = j["batch"];
  EXPECT_GT(batch, 1);
  EXPECT_EQ(j["fits"]["batch"], batch);
  EXPECT_EQ(j["next"]["batch"], batch + 1);
  EXPECT_EQ(j["fits"]["fits"], true);
  EXPECT_EQ(j["next"]["fits"], false);
}

TEST(CliMemory, BadInputGetsOneLine) {
  const std::string model = shell_quote(kModels + "/hybrid_network.pt");
  // Usage errors (exit 2), caught before any model runs.
  auto usage = [](const footprint_test::RunResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  };
  usage(run_footprint("memory " + model + " --input 1x1x28x28 --gpu h1000"),
        "--gpu 'h1000': not a GPU footprint knows (h100, h200");
  usage(run_footprint("memory " + model + " --input 1x1x28x28 --train --optimizer lamb"),
        "--optimizer: 'lamb': expected sgd, momentum");
  usage(run_footprint("fit " + model + " --input 1x28x28"), "--gpu is required");
  usage(run_footprint("memory " + model + " --input 1x1x28x28 --alloc-conf foo:1"),
        "allocator option 'foo'");
  one_line(
      run_footprint("memory " + shell_quote(kModels + "/resnet18.pth") + " --input 1x3x224x224"),
      "needs TorchScript");
  EXPECT_EQ(run_footprint("memory " + model + " --input 1x1x28x28 --precision fp8").status, 2);
  EXPECT_EQ(run_footprint("memory " + model + " --input 1x1x28x28 --impl fast").status, 2);
  auto help = run_footprint("memory --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Examples:"), std::string::npos);
}
