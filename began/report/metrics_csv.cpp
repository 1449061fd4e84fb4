// metrics.csv reader (began/report/metrics_csv.h). The whole file is read at once (100k rows of 11 numbers are a
// few MB) and every field parsed with std::from_chars, which is locale-independent and fast.
#include "began/report/metrics_csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>

#include "backends/error.h"

namespace atelier::began {

const std::vector<std::string> kRequiredMetricsColumns = {"step",   "loss_real", "loss_fake_g",
                                                          "loss_d", "k_t",       "m_global"};

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields.push_back(
        trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return fields;
}

// One number, or nullopt. from_chars takes "nan" and "inf" but not a leading '+', which printf never writes.
std::optional<double> parse_number(std::string_view field) {
  if (field.empty()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return value;
}

// The row's numbers when `line` holds exactly `columns` of them and a finite step (column `step_index`).
std::optional<std::vector<double>> parse_row(std::string_view line, size_t columns, size_t step_index) {
  const std::vector<std::string_view> fields = split_fields(line);
  if (fields.size() != columns) return std::nullopt;
  std::vector<double> row;
  row.reserve(columns);
  for (std::string_view f : fields) {
    std::optional<double> v = parse_number(f);
    if (!v) return std::nullopt;
    row.push_back(*v);
  }
  if (!std::isfinite(row[step_index])) return std::nullopt;
  return row;
}

}  // namespace

const std::vector<double>* MetricsTable::column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return &values[i];
  }
  return nullptr;
}

double MetricsTable::last(const std::string& name) const {
  const std::vector<double>* c = column(name);
  if (c == nullptr || c->empty()) return std::numeric_limits<double>::quiet_NaN();
  return c->back();
}

MetricsTable read_metrics_csv(const std::string& path) {
  MetricsTable table;
  std::ifstream in(path, std::ios::binary);
  if (!in) return table;  // no metrics yet
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string where = "write_report: '" + path + "': ";

  // Lines, each with whether a newline ended it (the last may be a fragment of a write in progress).
  std::vector<std::pair<std::string_view, bool>> lines;
  const std::string_view all(text);
  for (size_t start = 0; start < all.size();) {
    const size_t nl = all.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.emplace_back(all.substr(start), false);
      break;
    }
    lines.emplace_back(all.substr(start, nl - start), true);
    start = nl + 1;
  }
  // A header without its newline may still be growing: no columns yet.
  if (lines.empty() || !lines[0].second) return table;

  for (std::string_view name : split_fields(lines[0].first)) {
    const std::string column(name);
    ATELIER_CHECK(std::find(table.columns.begin(), table.columns.end(), column) == table.columns.end(),
                  where << "the header names the column '" << column << "' twice");
    table.columns.push_back(column);
  }
  table.values.assign(table.columns.size(), {});
  std::vector<std::string> missing;
  for (const std::string& required : kRequiredMetricsColumns) {
    if (table.column(required) == nullptr) missing.push_back(required);
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& m : missing) list += (list.empty() ? "'" : ", '") + m + "'";
    ATELIER_FAIL(where << "not a BEGAN metrics file: the header '" << trim(lines[0].first) << "' lacks " << list);
  }

  const auto step_index = static_cast<size_t>(table.column("step") - table.values.data());
  for (std::vector<double>& v : table.values) v.reserve(lines.size());
  // The last non-empty line may be cut short; any line before it must be whole.
  size_t last_line = lines.size();
  while (last_line > 1 && trim(lines[last_line - 1].first).empty()) --last_line;
  for (size_t i = 1; i < last_line; ++i) {
    const std::string_view line = lines[i].first;
    if (trim(line).empty()) continue;
    std::optional<std::vector<double>> row = parse_row(line, table.columns.size(), step_index);
    if (!row) {
      ATELIER_CHECK(i + 1 == last_line, where << "line " << i + 1 << " is not " << table.columns.size()
                                              << " numbers separated by commas: '" << line << "'");
      table.dropped_partial_line = true;
      break;
    }
    for (size_t c = 0; c < row->size(); ++c) table.values[c].push_back((*row)[c]);
    ++table.rows;
  }
  return table;
}

}  // namespace atelier::began
