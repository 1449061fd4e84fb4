// Reading a run's metrics.csv for the report, while the trainer may be appending to it: a last line cut short
// by a write in progress (or a killed run) is dropped, never an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace atelier::began {

// The columns of metrics.csv, column-major: values[i] holds column columns[i], one entry per row.
struct MetricsTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> values;
  int64_t rows = 0;
  bool dropped_partial_line = false;  // the last line was incomplete and left out

  // The values of column `name`, or nullptr when the file has no such column.
  const std::vector<double>* column(const std::string& name) const;
  // The last value of column `name`; NaN when there is no such column or no row.
  double last(const std::string& name) const;
};

// The columns write_report plots; a metrics.csv without any of them is refused.
extern const std::vector<std::string> kRequiredMetricsColumns;

// Reads `path`. A missing file, an empty file or a header still being written give a table without rows (and
// without columns when there is no complete header). Fields are numbers as written by printf or iostreams ("nan"
// and "inf" included). The last line is dropped when it does not hold one number per column, or it is a fragment
// without a newline that does not parse. Throws atelier::Error naming the file (and the line) for a header missing
// one of kRequiredMetricsColumns, a repeated column name, or a malformed line before the last.
MetricsTable read_metrics_csv(const std::string& path);

}  // namespace atelier::began
