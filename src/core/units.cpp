// Human-readable numbers: binary byte units (the seed's "1 MB = 1024^2 Bytes") and thousands
// separators.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>

#include "footprint/report.h"

namespace footprint {

std::string human_bytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (std::llabs(bytes) < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::abs(v) >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.2f} {}", v, kUnits[u]);
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  int count = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (count && count % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++count;
  }
  return n < 0 ? "-" + out : out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return shape.empty() ? "[]" : "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
}

std::string human_count(int64_t n) {
  static const char* kUnits[] = {"", "K", "M", "G", "T", "P", "E"};
  if (std::llabs(n) < 1000) return std::to_string(n);
  double v = static_cast<double>(n);
  int u = 0;
  while (std::abs(v) >= 1000.0 && u < 6) {
    v /= 1000.0;
    ++u;
  }
  return fmt::format("{:.2f} {}", v, kUnits[u]);
}

}  // namespace footprint
