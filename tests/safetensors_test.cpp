// The safetensors reader on hand-built headers, good and hostile.
#include <gtest/gtest.h>

#include "footprint/error.h"
#include "formats/readers.h"
#include "test_util.h"

namespace fd = footprint::detail;
using footprint_test::safetensors_bytes;

namespace {

footprint::Model read(const std::string& bytes) {
  auto src = fd::open_memory(bytes, "t.safetensors");
  return fd::read_safetensors(*src);
}

std::string error_of(const std::string& bytes) {
  return footprint_test::error_of([&] { read(bytes); });
}
}  // namespace

TEST(Safetensors, ReadsHeaderInDataOrder) {
  // b: 2x3 BF16 = 12 bytes at [0,12); a: 4 F32 = 16 bytes at [12,28); 28 bytes of data.
  std::string header = R"({"__metadata__":{"format":"pt"},)"
                       R"("a":{"dtype":"F32","shape":[4],"data_offsets":[12,28]},)"
                       R"("b":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})";
  auto m = read(safetensors_bytes(header, 28));
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].name, "b");
  EXPECT_EQ(m.tensors[0].dtype, footprint::DType::kBFloat16);
  EXPECT_EQ(m.tensors[0].numel(), 6);
  EXPECT_EQ(m.tensors[1].bytes(), 16);
  EXPECT_EQ(m.format, "safetensors");
}

TEST(Safetensors, ScalarsAndEmptyTensors) {
  // A scalar F64 (8 bytes) and a [0, 5] tensor (0 bytes) at the same offset as the end.
  std::string header = R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                       R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[8,8]}})";
  auto m = read(safetensors_bytes(header, 8));
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].numel(), 1);
  EXPECT_EQ(m.tensors[1].numel(), 0);
}

struct Bad {
  const char* name;
  std::string bytes;
  const char* expected;  // a piece of the error message
};

void PrintTo(const Bad& b, std::ostream* os) {
  *os << b.name;
}

class SafetensorsBad : public ::testing::TestWithParam<Bad> {};

TEST_P(SafetensorsBad, OneClearError) {
  std::string err = error_of(GetParam().bytes);
  EXPECT_NE(err.find(GetParam().expected), std::string::npos) << "got: " << err;
  EXPECT_NE(err.find("t.safetensors"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

std::string one(const std::string& entry, uint64_t data) {
  return safetensors_bytes(std::string(R"({"w":)") + entry + "}", data);
}

std::string with_length(uint64_t n, const std::string& rest) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + rest;
}

// Overlapping, out-of-range and disagreeing offsets, a 100 GB header length, duplicate names and
// negative or overflowing dimensions are in tests/hostile.cpp, run through the command.
INSTANTIATE_TEST_SUITE_P(
    Hostile, SafetensorsBad,
    ::testing::Values(
        Bad{"too_short", "abc", "too short"},
        Bad{"header_past_end", with_length(64, R"({"w":{)"), "only 6 follow it"},
        Bad{"not_json", safetensors_bytes("{not json}", 0), "not valid JSON"},
        Bad{"not_object", safetensors_bytes("[1,2]", 0), "not a JSON object"},
        Bad{"unknown_dtype", one(R"({"dtype":"F7","shape":[1],"data_offsets":[0,1]})", 1),
            "unknown dtype 'F7'"},
        Bad{"missing_shape", one(R"({"dtype":"F32","data_offsets":[0,4]})", 4),
            "no array field 'shape'"},
        Bad{"float_dim", one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", 4),
            "non-negative integer"},
        Bad{"huge_number", one(R"({"dtype":"F32","shape":[1e300],"data_offsets":[0,4]})", 4),
            "non-negative integer"},
        Bad{"offsets_reversed", one(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})", 4),
            "end before they begin"},
        Bad{"gap",
            safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
            "no tensor covers"},
        Bad{"trailing_data", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 8),
            "cover 4 bytes"},
        Bad{"deep_json", safetensors_bytes(std::string(100000, '[') + std::string(100000, ']'), 0),
            "not a JSON object"}),
    [](const auto& info) { return std::string(info.param.name); });
