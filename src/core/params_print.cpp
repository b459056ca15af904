// Printers for the parameter report: an aligned table (default), JSON, CSV and Markdown.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/table.h"
#include "footprint/report.h"

namespace footprint {
namespace {

using detail::Table;
using nlohmann::ordered_json;

std::string roles_name(RoleSource r) {
  return r == RoleSource::kRecorded ? "recorded" : "by-name";
}

// Column headings for the bytes: "stored", then one per requested precision.
std::vector<std::string> byte_headings(const ParamReport& r, const std::string& prefix = "") {
  std::vector<std::string> out{prefix + "stored"};
  for (Precision p : r.precisions) out.push_back(prefix + std::string(precision_name(p)));
  return out;
}

std::vector<std::string> byte_cells(int64_t stored, const std::vector<int64_t>& at, bool human) {
  auto cell = [human](int64_t b) { return human ? human_bytes(b) : std::to_string(b); };
  std::vector<std::string> out{cell(stored)};
  for (int64_t b : at) out.push_back(cell(b));
  return out;
}

Tally sum(const Tally& a, const Tally& b) {
  Tally t = a;
  t.tensors += b.tensors;
  t.numel += b.numel;
  t.bytes += b.bytes;
  for (size_t i = 0; i < t.bytes_at.size(); ++i) t.bytes_at[i] += b.bytes_at[i];
  return t;
}

Table totals_table(const ParamReport& r) {
  Table t;
  t.columns = {"", "tensors", "count"};
  for (auto& h : byte_headings(r)) t.columns.push_back(h);
  t.numeric.assign(t.columns.size(), true);
  t.numeric[0] = false;
  auto add = [&](const std::string& label, const Tally& tally) {
    std::vector<std::string> row{label, with_commas(tally.tensors), with_commas(tally.numel)};
    for (auto& c : byte_cells(tally.bytes, tally.bytes_at, true)) row.push_back(c);
    t.rows.push_back(row);
  };
  add("parameters", r.params);
  add("  trainable", r.trainable);
  add("  frozen", r.frozen);
  add("buffers", r.buffers);
  add("total", r.total);
  return t;
}

Table dtype_table(const ParamReport& r) {
  Table t;
  t.columns = {"dtype", "parameters", "buffers", "bytes"};
  t.numeric = {false, true, true, true};
  for (const auto& d : r.by_dtype)
    t.rows.push_back({std::string(dtype_name(d.dtype)), with_commas(d.params.numel),
                      with_commas(d.buffers.numel), human_bytes(d.params.bytes + d.buffers.bytes)});
  return t;
}

Table module_table(const ParamReport& r, bool human) {
  Table t;
  t.columns = {"module", "type", "depth", "parameters", "buffers"};
  for (auto& h : byte_headings(r, human ? "" : "bytes_")) t.columns.push_back(h);
  t.numeric.assign(t.columns.size(), true);
  t.numeric[0] = t.numeric[1] = false;
  for (const auto& m : r.modules) {
    Tally both = sum(m.params, m.buffers);
    std::string name = m.path.empty() ? "(model)" : m.path;
    if (human)
      name = std::string(2 * m.depth, ' ') +
             (m.path.empty() ? name : name.substr(name.rfind('.') + 1));
    std::vector<std::string> row{
        name, m.type, std::to_string(m.depth),
        human ? with_commas(m.params.numel) : std::to_string(m.params.numel),
        human ? with_commas(m.buffers.numel) : std::to_string(m.buffers.numel)};
    for (auto& c : byte_cells(both.bytes, both.bytes_at, human)) row.push_back(c);
    t.rows.push_back(row);
  }
  if (human) {  // the depth column is shown by indentation
    for (auto& row : t.rows) row.erase(row.begin() + 2);
    t.columns.erase(t.columns.begin() + 2);
    t.numeric.erase(t.numeric.begin() + 2);
  }
  return t;
}

Table tensor_table(const ParamReport& r, bool human) {
  Table t;
  t.columns = {"name", "shape", "dtype", "role", "trainable", "numel"};
  for (auto& h : byte_headings(r, human ? "" : "bytes_")) t.columns.push_back(h);
  t.columns.push_back("tied_to");
  t.numeric.assign(t.columns.size(), false);
  for (size_t c = 5; c + 1 < t.columns.size(); ++c) t.numeric[c] = true;
  for (const auto& row : r.tensors) {
    const TensorInfo& x = row.tensor;
    std::vector<std::string> cells{x.name,
                                   shape_text(x.shape),
                                   std::string(dtype_name(x.dtype)),
                                   x.role == TensorRole::kParameter ? "parameter" : "buffer",
                                   x.trainable ? "yes" : "no",
                                   human ? with_commas(x.numel()) : std::to_string(x.numel())};
    for (auto& c : byte_cells(x.bytes(), row.bytes_at, human)) cells.push_back(c);
    cells.push_back(row.tied_to);
    t.rows.push_back(cells);
  }
  return t;
}

ordered_json tally_json(const ParamReport& r, const Tally& t) {
  ordered_json j{{"tensors", t.tensors}, {"numel", t.numel}, {"bytes", t.bytes}};
  ordered_json at = ordered_json::object();
  for (size_t i = 0; i < r.precisions.size(); ++i)
    at[std::string(precision_name(r.precisions[i]))] = t.bytes_at[i];
  j["bytes_at"] = at;
  return j;
}

ordered_json report_json(const ParamReport& r, bool tensors) {
  ordered_json j;
  j["source"] = r.source;
  j["format"] = r.format;
  j["roles"] = roles_name(r.roles);
  j["precisions"] = ordered_json::array();
  for (Precision p : r.precisions) j["precisions"].push_back(std::string(precision_name(p)));
  j["parameters"] = tally_json(r, r.params);
  j["trainable"] = tally_json(r, r.trainable);
  j["frozen"] = tally_json(r, r.frozen);
  j["buffers"] = tally_json(r, r.buffers);
  j["total"] = tally_json(r, r.total);
  j["tied"] = r.tied;
  j["by_dtype"] = ordered_json::array();
  for (const auto& d : r.by_dtype)
    j["by_dtype"].push_back({{"dtype", dtype_name(d.dtype)},
                             {"parameters", tally_json(r, d.params)},
                             {"buffers", tally_json(r, d.buffers)}});
  j["modules"] = ordered_json::array();
  for (const auto& m : r.modules)
    j["modules"].push_back({{"path", m.path},
                            {"type", m.type},
                            {"depth", m.depth},
                            {"parameters", tally_json(r, m.params)},
                            {"buffers", tally_json(r, m.buffers)}});
  if (tensors) {
    j["tensors"] = ordered_json::array();
    for (const auto& row : r.tensors) {
      const TensorInfo& x = row.tensor;
      ordered_json tj{{"name", x.name},
                      {"shape", x.shape},
                      {"dtype", dtype_name(x.dtype)},
                      {"role", x.role == TensorRole::kParameter ? "parameter" : "buffer"},
                      {"trainable", x.trainable},
                      {"numel", x.numel()},
                      {"bytes", x.bytes()}};
      ordered_json at = ordered_json::object();
      for (size_t i = 0; i < r.precisions.size(); ++i)
        at[std::string(precision_name(r.precisions[i]))] = row.bytes_at[i];
      tj["bytes_at"] = at;
      if (!row.tied_to.empty()) tj["tied_to"] = row.tied_to;
      if (!x.file.empty()) tj["file"] = x.file;
      j["tensors"].push_back(tj);
    }
  }
  j["notes"] = r.notes;
  return j;
}

std::string heading(const ParamReport& r) {
  return fmt::format("{}: {}, {} tensors, parameters/buffers {}", r.source, r.format,
                     r.tensors.size(),
                     r.roles == RoleSource::kRecorded ? "as recorded" : "by name");
}

std::string print_one(const ParamReport& r, const PrintOptions& o) {
  switch (o.format) {
    case Format::kJson:
      return report_json(r, o.tensors).dump(2) + "\n";
    case Format::kCsv:
      return detail::render_csv(o.tensors ? tensor_table(r, false) : module_table(r, false));
    case Format::kMarkdown: {
      std::string out = "## " + heading(r) + "\n\n";
      std::vector<Table> tables{totals_table(r), dtype_table(r), module_table(r, false)};
      tables[0].title = "Totals";
      tables[1].title = "By dtype";
      tables[2].title = "Modules";
      if (o.tensors) tables.push_back(tensor_table(r, false)), tables.back().title = "Tensors";
      for (const auto& t : tables) out += detail::render_markdown(t) + "\n";
      for (const auto& n : r.notes) out += "- note: " + n + "\n";
      return out;
    }
    case Format::kTable:
    default: {
      std::string out = heading(r) + "\n\n" + detail::render_text(totals_table(r)) + "\n" +
                        detail::render_text(dtype_table(r));
      if (r.modules.size() > 1) out += "\n" + detail::render_text(module_table(r, true));
      if (o.tensors) out += "\n" + detail::render_text(tensor_table(r, true));
      for (const auto& n : r.notes) out += "note: " + n + "\n";
      return out;
    }
  }
}

}  // namespace

std::string_view format_name(Format f) {
  switch (f) {
    case Format::kJson:
      return "json";
    case Format::kCsv:
      return "csv";
    case Format::kMarkdown:
      return "md";
    case Format::kTable:
    default:
      return "table";
  }
}

std::optional<Format> format_parse(std::string_view s) {
  for (Format f : {Format::kTable, Format::kJson, Format::kCsv, Format::kMarkdown})
    if (s == format_name(f)) return f;
  if (s == "markdown") return Format::kMarkdown;
  return std::nullopt;
}

std::string print_params(const ParamReport& report, const PrintOptions& options) {
  return print_one(report, options);
}

std::string print_params(const std::vector<ParamReport>& reports, const PrintOptions& options) {
  if (reports.size() == 1) return print_one(reports[0], options);
  if (options.format == Format::kCsv) {  // one table, its rows marked with their file
    std::string out;
    for (size_t i = 0; i < reports.size(); ++i) {
      Table t = options.tensors ? tensor_table(reports[i], false) : module_table(reports[i], false);
      t.columns.insert(t.columns.begin(), "source");
      for (auto& row : t.rows) row.insert(row.begin(), reports[i].source);
      std::string csv = detail::render_csv(t);
      out += i == 0 ? csv : csv.substr(csv.find('\n') + 1);
    }
    return out;
  }
  if (options.format == Format::kJson) {
    ordered_json all = ordered_json::array();
    for (const auto& r : reports) all.push_back(report_json(r, options.tensors));
    return all.dump(2) + "\n";
  }
  std::string out;
  for (size_t i = 0; i < reports.size(); ++i) {
    if (i) out += "\n";
    out += print_one(reports[i], options);
  }
  return out;
}

}  // namespace footprint
