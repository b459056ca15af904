// A plain table and its three text renderings (aligned text, Markdown, CSV). Reports build tables;
// the tables know nothing about reports.
#pragma once

#include <string>
#include <vector>

namespace footprint::detail {

struct Table {
  std::string title;  // printed above the table in text and Markdown; not in CSV
  std::vector<std::string> columns;
  std::vector<bool> numeric;  // right-aligned columns
  std::vector<std::vector<std::string>> rows;
};

std::string render_text(const Table& t);
std::string render_markdown(const Table& t);
std::string render_csv(const Table& t);

}  // namespace footprint::detail
