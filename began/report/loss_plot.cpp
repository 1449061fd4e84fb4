// The SVG of the training curves (began/report/loss_plot.h). Hand-written SVG: a few rects, lines, texts and one
// path per series, in plain attributes (no CSS, no script) so every viewer renders it the same way.
#include "began/report/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "began/report/markup.h"

namespace atelier::began {

namespace {

// Layout, in SVG pixels.
constexpr double kWidth = 960;
constexpr double kLeft = 68;  // room for the y tick labels
constexpr double kRight = 24;
constexpr double kTop = 44;      // the note above the panels
constexpr double kTitle = 30;    // a panel's title and legend band
constexpr double kPlot = 170;    // a panel's plot area height
constexpr double kXLabels = 22;  // x tick labels under each plot area
constexpr double kGap = 16;
constexpr double kPlotWidth = kWidth - kLeft - kRight;
constexpr int64_t kColumnPixels = 2;  // decimation: one min/max pair per this many pixels
constexpr const char* kFont = "DejaVu Sans, Helvetica, Arial, sans-serif";

struct Series {
  const char* column;
  const char* label;
  const char* color;
  bool smooth = true;  // noisy per step: draw faint, with a moving average; else (k_t, lr) drawn as is
  double scale = 1;    // drawn: scale * column
  bool dashed = false;
  bool average_only = false;  // only the moving average (a reference line, not a measurement)
};

struct Panel {
  const char* title;
  std::vector<Series> series;
  bool optional;  // drawn only when the table has the column (the learning rate)
};

const std::vector<Panel>& panels() {
  static const std::vector<Panel> kPanels = {
      {"Losses",
       {{"loss_real", "L(x) real images", "#2563eb"},
        {"loss_fake_g", "L(G(z)) generated", "#ea580c"},
        {"loss_d", "L_D", "#059669"}},
       false},
      {"k_t (equilibrium term: rises, then decays)", {{"k_t", "k_t", "#7c3aed", false}}, false},
      {"M_global (convergence measure: lower is better)", {{"m_global", "M_global", "#dc2626"}}, false},
      {"Learning rate", {{"lr", "lr (both optimisers)", "#0891b2", false}}, true},
  };
  return kPanels;
}

// A value range and its ticks, at 1, 2 or 5 times a power of ten apart.
struct Axis {
  double lo = 0;
  double hi = 1;
  double step = 1;
  std::vector<double> ticks;
};

double nice_step(double span, int target_ticks) {
  const double raw = span / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / magnitude;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * magnitude;
}

// An axis covering [lo, hi], widened to whole ticks unless `tight` (the step axis ends at the last step: widening
// 36 steps to 40 would leave a blank strip). `min_step` keeps integer axes (steps) integer.
Axis make_axis(double lo, double hi, int target_ticks, double min_step = 0, bool tight = false) {
  lo = std::clamp(lo, -1e300, 1e300);  // keeps hi - lo and its padding finite
  hi = std::clamp(hi, -1e300, 1e300);
  // One value (or values equal but for rounding, as a constant learning rate is): a small range around it.
  if (!(hi - lo > 1e-9 * std::max(std::abs(lo), std::abs(hi)))) {
    lo = hi = (lo + hi) / 2;
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo = lo >= 0 ? std::max(0.0, lo - pad) : lo - pad;  // steps and losses never below 0
    hi += pad;
  }
  Axis axis;
  axis.step = std::max(nice_step(hi - lo, target_ticks), min_step);
  const double first = std::floor(lo / axis.step + 1e-9), last = std::ceil(hi / axis.step - 1e-9);
  const double count = last - first;
  if (!std::isfinite(axis.step) || !(count >= 0 && count <= 100)) {  // absurd values (1e300): no nice ticks
    axis.lo = lo;
    axis.hi = hi;
    axis.step = hi - lo;
    axis.ticks = {lo, hi};
    return axis;
  }
  axis.lo = tight ? lo : first * axis.step;
  axis.hi = tight ? hi : std::max(last, first + 1) * axis.step;
  for (int64_t i = 0; i <= static_cast<int64_t>(count); ++i) {
    const double v = (first + static_cast<double>(i)) * axis.step;
    if (v >= axis.lo - 1e-9 * axis.step && v <= axis.hi + 1e-9 * axis.step) axis.ticks.push_back(v);
  }
  return axis;
}

// A tick label: as many decimals as the step needs; 12k for large step counts; %g for tiny values (lr).
std::string tick_label(double value, double step, bool is_step_axis) {
  if (!std::isfinite(step) || !(step > 0) || std::abs(value) >= 1e7) return format_number(value, 3);
  if (std::abs(value) < step * 1e-6) return "0";  // not -0, 1e-17 or 0k from the tick arithmetic
  char buf[64];
  if (is_step_axis && step >= 1000) {
    const int decimals = std::max(0, 3 - static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*fk", decimals, value / 1000);
    return buf;
  }
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  if (step < 1e-3) {  // 5.0e-5, 1.0e-4, 1.5e-4: one form for the whole axis
    const int exponent = static_cast<int>(std::floor(std::log10(std::abs(value)) + 1e-9));
    std::snprintf(buf, sizeof buf, "%.*fe%d", std::clamp(exponent + decimals, 0, 3), value / std::pow(10.0, exponent),
                  exponent);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// The value at quantile q in [0, 1] of the finite entries of `values` (NaN when there are none).
double quantile(std::vector<double> finite, double q) {
  if (finite.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto k = static_cast<size_t>(q * static_cast<double>(finite.size() - 1));
  std::nth_element(finite.begin(), finite.begin() + static_cast<std::ptrdiff_t>(k), finite.end());
  return finite[k];
}

std::vector<double> finite_only(const std::vector<double>& values) {
  std::vector<double> out;
  out.reserve(values.size());
  for (double v : values) {
    if (std::isfinite(v)) out.push_back(v);
  }
  return out;
}

// Maps data to pixels inside a panel's plot area.
struct Frame {
  double x0, y0, width, height;  // plot area
  Axis x, y;
  double px(double step) const { return x0 + (step - x.lo) / (x.hi - x.lo) * width; }
  double py(double value) const {
    const double p = y0 + height - (value - y.lo) / (y.hi - y.lo) * height;
    return std::clamp(p, y0 - 1e4, y0 + height + 1e4);  // far spikes: clipped anyway, keep the numbers short
  }
};

// The indices to draw of an n-point series: all of them when few, else per column of kColumnPixels pixels the
// lowest and highest finite value (in step order) and the NaN breaks.
std::vector<int64_t> decimate(const std::vector<double>& steps, const std::vector<double>& values, const Frame& f) {
  const auto n = static_cast<int64_t>(values.size());
  std::vector<int64_t> keep;
  const auto columns = static_cast<int64_t>(f.width) / kColumnPixels;
  if (n <= 2 * columns) {
    keep.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) keep[static_cast<size_t>(i)] = i;
    return keep;
  }
  int64_t i = 0;
  while (i < n) {
    const auto column = static_cast<int64_t>((f.px(steps[static_cast<size_t>(i)]) - f.x0) / kColumnPixels);
    int64_t lo = -1, hi = -1, nan = -1;
    for (; i < n && static_cast<int64_t>((f.px(steps[static_cast<size_t>(i)]) - f.x0) / kColumnPixels) == column; ++i) {
      const double v = values[static_cast<size_t>(i)];
      if (!std::isfinite(v)) {
        if (nan < 0) nan = i;
        continue;
      }
      if (lo < 0 || v < values[static_cast<size_t>(lo)]) lo = i;
      if (hi < 0 || v > values[static_cast<size_t>(hi)]) hi = i;
    }
    std::vector<int64_t> picked;
    for (int64_t k : {lo, hi, nan}) {
      if (k >= 0 && std::find(picked.begin(), picked.end(), k) == picked.end()) picked.push_back(k);
    }
    std::sort(picked.begin(), picked.end());
    keep.insert(keep.end(), picked.begin(), picked.end());
  }
  return keep;
}

// One <path> through the kept points; a non-finite value ends the current run of line segments. A lone finite
// point (one row, or between two NaNs) gets a dot so that it is visible.
void append_series(std::string& out, const std::vector<double>& steps, const std::vector<double>& values,
                   const std::vector<int64_t>& keep, const Frame& f, const char* color, double width, double opacity,
                   bool dashed) {
  std::string d;
  std::string dots;
  bool in_run = false;
  for (size_t j = 0; j < keep.size(); ++j) {
    const auto i = static_cast<size_t>(keep[j]);
    if (!std::isfinite(values[i])) {
      in_run = false;
      continue;
    }
    const bool next_finite = j + 1 < keep.size() && std::isfinite(values[static_cast<size_t>(keep[j + 1])]);
    if (!in_run && !next_finite) {
      dots += "<circle cx=\"";
      append_coordinate(dots, f.px(steps[i]));
      dots += "\" cy=\"";
      append_coordinate(dots, f.py(values[i]));
      dots += "\" r=\"3\"/>";
      continue;
    }
    d += in_run ? ' ' : 'M';
    append_coordinate(d, f.px(steps[i]));
    d += ',';
    append_coordinate(d, f.py(values[i]));
    if (!in_run) d += 'L';
    in_run = true;
  }
  if (!d.empty()) {
    out += "<path fill=\"none\" stroke=\"";
    out += color;
    out += "\" stroke-width=\"" + format_number(width) + "\" stroke-opacity=\"" + format_number(opacity) +
           (dashed ? "\" stroke-dasharray=\"6,4" : "") + "\" stroke-linejoin=\"round\" d=\"" + d + "\"/>\n";
  }
  if (!dots.empty()) out += std::string("<g fill=\"") + color + "\">" + dots + "</g>\n";
}

void append_text(std::string& out, double x, double y, const std::string& text, const char* anchor, int size,
                 const char* color, bool bold = false) {
  out += "<text x=\"";
  append_coordinate(out, x);
  out += "\" y=\"";
  append_coordinate(out, y);
  out += std::string("\" text-anchor=\"") + anchor + "\" font-size=\"" + std::to_string(size) + "\" fill=\"" + color +
         "\"" + (bold ? " font-weight=\"bold\"" : "") + ">" + xml_escape(text) + "</text>\n";
}

void append_line(std::string& out, double x1, double y1, double x2, double y2, const char* color, double width,
                 bool dashed = false) {
  out += "<line x1=\"";
  append_coordinate(out, x1);
  out += "\" y1=\"";
  append_coordinate(out, y1);
  out += "\" x2=\"";
  append_coordinate(out, x2);
  out += "\" y2=\"";
  append_coordinate(out, y2);
  out += std::string("\" stroke=\"") + color + "\" stroke-width=\"" + format_number(width) +
         (dashed ? "\" stroke-dasharray=\"5,3" : "") + "\"/>\n";
}

// The legend, right-aligned in the title band: a thick swatch and the label per series.
void append_legend(std::string& out, const Panel& panel, double y) {
  double x = kWidth - kRight;
  for (auto it = panel.series.rbegin(); it != panel.series.rend(); ++it) {
    const double text_width = 6.6 * static_cast<double>(std::string(it->label).size());  // ~12px sans-serif
    x -= text_width;
    append_text(out, x, y + 4, it->label, "start", 12, "#374151");
    append_line(out, x - 24, y, x - 6, y, it->color, it->dashed ? 2 : 3, it->dashed);
    x -= 24 + 18;
  }
}

}  // namespace

std::vector<double> moving_average(const std::vector<double>& values, int64_t window) {
  window = std::max<int64_t>(window, 1);
  std::vector<double> out(values.size(), std::numeric_limits<double>::quiet_NaN());
  double sum = 0;
  int64_t count = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) {
      sum += values[i];
      ++count;
    }
    if (i >= static_cast<size_t>(window)) {
      const double old = values[i - static_cast<size_t>(window)];
      if (std::isfinite(old)) {
        sum -= old;
        --count;
      }
    }
    if (count > 0) out[i] = sum / static_cast<double>(count);
  }
  return out;
}

int64_t moving_average_window(int64_t rows) { return std::max<int64_t>(1, rows / 50); }

std::string render_loss_svg(const MetricsTable& table, double gamma) {
  std::vector<Panel> shown;
  for (const Panel& p : panels()) {
    if (!p.optional || (table.rows > 0 && table.column(p.series[0].column) != nullptr &&
                        !finite_only(*table.column(p.series[0].column)).empty())) {
      shown.push_back(p);
    }
  }
  if (std::isfinite(gamma) && gamma > 0) {  // the equilibrium L(G(z)) = gamma L(x) that k_t steers towards
    shown[0].series.push_back({"loss_real", "\u03b3\u00b7L(x) target of L(G(z))", "#374151", true, gamma, true, true});
  }
  const double panel_height = kTitle + kPlot + kXLabels + kGap;
  const double height = kTop + panel_height * static_cast<double>(shown.size()) + 8;
  const int64_t window = moving_average_window(table.rows);

  std::string out;
  out.reserve(64 * 1024);
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + format_number(kWidth) + "\" height=\"" +
         format_number(height) + "\" viewBox=\"0 0 " + format_number(kWidth) + " " + format_number(height) +
         "\" font-family=\"" + kFont + "\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";

  const std::vector<double>* steps_column = table.rows > 0 ? table.column("step") : nullptr;
  std::string note;
  if (steps_column == nullptr) {
    note = "No metrics yet: the curves appear after the first training step.";
  } else {
    const bool decimated = table.rows > 2 * static_cast<int64_t>(kPlotWidth) / kColumnPixels;
    note = window == 1 ? std::string("Every step.")
                       : "Losses and M_global: thin lines every step" +
                             std::string(decimated ? " (lowest and highest per 2 pixels)" : "") +
                             ", thick lines their moving average over " + std::to_string(window) + " steps.";
  }
  append_text(out, kLeft, 24, note, "start", 13, "#4b5563");

  // The step axis, shared by every panel.
  Axis x_axis;
  if (steps_column != nullptr) {
    const std::vector<double> finite = finite_only(*steps_column);
    const double lo = finite.empty() ? 0 : *std::min_element(finite.begin(), finite.end());
    const double hi = finite.empty() ? 1 : *std::max_element(finite.begin(), finite.end());
    x_axis = make_axis(std::min(lo, 0.0), std::max(hi, 1.0), 8, 1, /*tight=*/true);  // from step 0
  }

  for (size_t p = 0; p < shown.size(); ++p) {
    const Panel& panel = shown[p];
    const double top = kTop + panel_height * static_cast<double>(p);
    Frame f{kLeft, top + kTitle, kPlotWidth, kPlot, x_axis, Axis{}};
    append_text(out, kLeft, top + 18, panel.title, "start", 14, "#111827", true);
    append_legend(out, panel, top + 14);

    // Each series' values (scaled when asked) and moving average; empty when the table lacks the column.
    std::vector<std::vector<double>> values(panel.series.size()), averages(panel.series.size());
    for (size_t s = 0; s < panel.series.size() && steps_column != nullptr; ++s) {
      const std::vector<double>* column = table.column(panel.series[s].column);
      if (column == nullptr) continue;
      values[s] = *column;
      if (panel.series[s].scale != 1) {
        for (double& v : values[s]) v *= panel.series[s].scale;
      }
      averages[s] = moving_average(values[s], window);
    }

    // The y range: the 0.5% to 99.5% quantiles of the per-step values (an early spike must not flatten the rest
    // of the curve; it is clipped) and the whole moving average.
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (size_t s = 0; s < panel.series.size(); ++s) {
      const std::vector<double> finite = finite_only(panel.series[s].average_only ? averages[s] : values[s]);
      const double trim = finite.size() >= 200 ? 0.005 : 0.0;
      if (!finite.empty()) {
        lo = std::min(lo, quantile(finite, trim));
        hi = std::max(hi, quantile(finite, 1 - trim));
      }
      const bool average_drawn = panel.series[s].average_only || (panel.series[s].smooth && window > 1);
      for (double v : average_drawn ? averages[s] : std::vector<double>{}) {
        if (std::isfinite(v)) {
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
    }
    const bool have_data = lo <= hi;
    if (have_data) {
      const double pad = (hi - lo) * 0.05;
      f.y = make_axis(lo >= 0 ? std::max(0.0, lo - pad) : lo - pad, hi + pad, 4);
    }

    // Frame, grid and tick labels.
    out += "<rect x=\"" + format_number(f.x0) + "\" y=\"" + format_number(f.y0) + "\" width=\"" +
           format_number(f.width) + "\" height=\"" + format_number(f.height) +
           "\" fill=\"#f9fafb\" stroke=\"#9ca3af\" stroke-width=\"1\"/>\n";
    if (!have_data) {
      append_text(out, f.x0 + f.width / 2, f.y0 + f.height / 2 + 5, "no metrics yet", "middle", 14, "#6b7280");
      continue;
    }
    for (double t : f.y.ticks) {
      const double y = f.py(t);
      if (t != f.y.lo && t != f.y.hi) append_line(out, f.x0, y, f.x0 + f.width, y, "#e5e7eb", 1);
      append_text(out, f.x0 - 8, y + 4, tick_label(t, f.y.step, false), "end", 11, "#4b5563");
    }
    for (double t : f.x.ticks) {
      const double x = f.px(t);
      if (t != f.x.lo && t != f.x.hi) append_line(out, x, f.y0, x, f.y0 + f.height, "#e5e7eb", 1);
      append_text(out, x, f.y0 + f.height + 16, tick_label(t, f.x.step, true), "middle", 11, "#4b5563");
    }
    if (p + 1 == shown.size()) {
      append_text(out, f.x0 + f.width, f.y0 + f.height + 16 + 18, "training step", "end", 12, "#374151");
    }

    // The series, clipped to the plot area: per step first (faint), then the moving averages on top.
    const std::string clip = "plot" + std::to_string(p);
    out += "<clipPath id=\"" + clip + "\"><rect x=\"" + format_number(f.x0) + "\" y=\"" + format_number(f.y0) +
           "\" width=\"" + format_number(f.width) + "\" height=\"" + format_number(f.height) + "\"/></clipPath>\n";
    out += "<g clip-path=\"url(#" + clip + ")\">\n";
    // Later series on the bottom: L_D (close to L(x) while k_t is small) must not hide L(x).
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t s = panel.series.size(); s-- > 0;) {
        const Series& series = panel.series[s];
        if (values[s].empty()) continue;
        const bool averaged = series.smooth && window > 1;
        if (pass == 1 && !averaged) continue;
        if (pass == 0 && averaged && series.average_only) continue;
        const std::vector<double>& drawn = pass == 0 ? values[s] : averages[s];
        const double width = series.dashed ? 1.6 : pass == 1 ? 2.2 : averaged ? 1.0 : 1.8;
        append_series(out, *steps_column, drawn, decimate(*steps_column, drawn, f), f, series.color, width,
                      pass == 0 && averaged ? 0.3 : 1.0, series.dashed);
      }
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

}  // namespace atelier::began
