// footprint/report.h: printers. A report is plain data; these only read it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/params.h"

namespace footprint {

enum class Format { kTable, kJson, kCsv, kMarkdown };
std::string_view format_name(Format f);
std::optional<Format> format_parse(std::string_view s);

struct PrintOptions {
  Format format = Format::kTable;
  bool tensors = false;  // list every tensor
};

// One report. JSON is an object with exact byte counts; CSV is one table: the tensors with
// `tensors`, else the module roll-up (whose first row is the whole model).
std::string print_params(const ParamReport& report, const PrintOptions& options);
// Several reports: tables one after another; JSON an array of objects; CSV one table whose
// first column, "source", names each row's file.
std::string print_params(const std::vector<ParamReport>& reports, const PrintOptions& options);

// Human units, binary as the seed says (1 MiB = 1024^2 bytes): "135,048 B" -> "131.88 KiB".
std::string human_bytes(int64_t bytes);
// 33762 -> "33,762".
std::string with_commas(int64_t n);
// Counts in decimal SI units, as FLOP counts are written: 1818558976 -> "1.82 G".
std::string human_count(int64_t n);
// {1, 3, 224, 224} -> "[1, 3, 224, 224]".
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace footprint
