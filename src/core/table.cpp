// Aligned text, Markdown and RFC 4180 CSV renderings of a Table.
#include "core/table.h"

#include <locale.h>
#include <wchar.h>

#include <algorithm>
#include <cstdlib>

#include "footprint/error.h"

namespace footprint::detail {
namespace {

// Display width, in terminal columns: glibc's wcwidth under C.UTF-8, so that a CJK character
// takes two columns and a combining accent none (a byte or code point count misaligns such
// names). Where the locale is missing, or a character has no width, each code point counts one.
size_t width(const std::string& s) {
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
  size_t code_points = std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
  if (!utf8) return code_points;
  locale_t previous = uselocale(utf8);
  size_t columns = 0;
  mbstate_t state{};
  for (size_t i = 0; i < s.size();) {
    wchar_t wc = 0;
    size_t n = mbrtowc(&wc, s.data() + i, s.size() - i, &state);
    if (n == size_t(-1) || n == size_t(-2) || n == 0) {  // not UTF-8 here: one column a byte
      state = mbstate_t{};
      ++columns;
      ++i;
      continue;
    }
    int w = wcwidth(wc);
    columns += w < 0 ? 1 : size_t(w);
    i += n;
  }
  uselocale(previous);
  return columns;
}

std::string pad(const std::string& s, size_t w, bool right) {
  std::string fill(w > width(s) ? w - width(s) : 0, ' ');
  return right ? fill + s : s + fill;
}

bool is_numeric(const Table& t, size_t c) {
  return c < t.numeric.size() && t.numeric[c];
}

// A text cell that a spreadsheet would take for a formula (=, +, -, @ first: OWASP's CSV
// injection list) gets a leading apostrophe, which shows it as the text it is.
std::string neutralized(const std::string& s) {
  if (s.empty() || std::string_view("=+-@\t\r").find(s[0]) == std::string_view::npos) return s;
  if (s[0] == '-' || s[0] == '+') {
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && end != s.c_str() + 1) return s;  // a number such as -5 or +0.3
  }
  return "'" + s;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '|') ? std::string("\\|") : std::string(1, c);
  return out;
}

// Text, Markdown and CSV are read on a terminal or a page too: every cell (names come from files)
// with its control characters escaped (escape_text). JSON escapes them in its own way.
Table escaped(const Table& t) {
  Table e = t;
  for (auto& c : e.columns) c = escape_text(c);
  for (auto& row : e.rows)
    for (auto& cell : row) cell = escape_text(cell);
  e.title = escape_text(t.title);
  return e;
}

}  // namespace

std::string render_text(const Table& table) {
  const Table t = escaped(table);
  std::vector<size_t> w(t.columns.size(), 0);
  for (size_t c = 0; c < t.columns.size(); ++c) w[c] = width(t.columns[c]);
  for (const auto& row : t.rows)
    for (size_t c = 0; c < row.size() && c < w.size(); ++c) w[c] = std::max(w[c], width(row[c]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < w.size(); ++c) {
      if (c) out += "  ";
      out += pad(c < cells.size() ? cells[c] : "", w[c], is_numeric(t, c));
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out;
  if (!t.title.empty()) out += t.title + "\n";
  out += line(t.columns);
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::string render_markdown(const Table& table) {
  const Table t = escaped(table);
  std::string out;
  if (!t.title.empty()) out += "### " + t.title + "\n\n";
  out += "|";
  for (const auto& c : t.columns) out += " " + md_cell(c) + " |";
  out += "\n|";
  for (size_t c = 0; c < t.columns.size(); ++c) out += is_numeric(t, c) ? "---:|" : "---|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (size_t c = 0; c < t.columns.size(); ++c)
      out += " " + md_cell(c < row.size() ? row[c] : "") + " |";
    out += "\n";
  }
  return out;
}

std::string render_csv(const Table& table) {
  const Table t = escaped(table);
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c)
      out +=
          (c ? "," : "") + csv_field(header || is_numeric(t, c) ? cells[c] : neutralized(cells[c]));
    return out + "\n";
  };
  std::string out = line(t.columns, true);
  for (const auto& row : t.rows) out += line(row, false);
  return out;
}

}  // namespace footprint::detail
