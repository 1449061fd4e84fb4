// began/report.h: sample grids (tensor -> 8-bit grid -> PNG) and the run's report.html, which embeds the curves
// of began/report/loss_plot.h and lists the grids of samples/ by epoch and by step.
#include "began/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/error.h"
#include "began/image_io.h"
#include "began/report/loss_plot.h"
#include "began/report/markup.h"
#include "began/report/metrics_csv.h"

namespace atelier::began {

namespace {

constexpr uint8_t kBorderValue = 255;  // white: separates dark-background samples and matches the page
constexpr int64_t kBorder = 2;

// [-1, 1] -> [0, 255]: -1 -> 0, 0 -> 128, 1 -> 255, rounded to nearest, clamped outside.
uint8_t to_byte(double v) { return static_cast<uint8_t>(std::lround((std::clamp(v, -1.0, 1.0) + 1.0) * 127.5)); }

}  // namespace

void save_image_grid(const std::string& path, const Tensor& images, int64_t nrow) {
  const std::string where = "save_image_grid: '" + path + "': ";
  ATELIER_CHECK(images.defined(), where << "undefined tensor");
  ATELIER_CHECK(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3),
                where << "expected images (N, C, H, W) with C = 1 or 3, got shape " << images.shape());
  ATELIER_CHECK(
      images.dtype() == DType::Float32 || images.dtype() == DType::Float64,
      where << "expected float32 or float64 images, got " << images.dtype() << " of shape " << images.shape());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  ATELIER_CHECK(n > 0 && h > 0 && w > 0, where << "no pixels to draw in images of shape " << images.shape());
  ATELIER_CHECK(nrow >= 0, where << "nrow must be >= 0 (0: ceil(sqrt(N))), got " << nrow);

  int64_t per_row = nrow;
  if (per_row == 0) {
    per_row = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    while (per_row * per_row < n) ++per_row;  // exact for any n, whatever sqrt rounds to
    while (per_row > 1 && (per_row - 1) * (per_row - 1) >= n) --per_row;
  }
  per_row = std::min(per_row, n);
  const int64_t rows = (n + per_row - 1) / per_row;

  Image8 grid;
  grid.channels = c;
  grid.height = rows * (h + kBorder) + kBorder;
  grid.width = per_row * (w + kBorder) + kBorder;
  ATELIER_CHECK(grid.height <= 1000000 && grid.width <= 1000000,
                where << "a grid of " << rows << " x " << per_row << " images of shape " << images.shape()
                      << " would be " << grid.height << " x " << grid.width << " pixels (at most 1000000 a side)");
  grid.pixels.assign(static_cast<size_t>(grid.height * grid.width * c), kBorderValue);

  const std::vector<double> values = images.to_vector<double>();  // NCHW, on the host
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = kBorder + (i / per_row) * (h + kBorder);
    const int64_t left = kBorder + (i % per_row) * (w + kBorder);
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          const double v = values[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
          ATELIER_CHECK(!std::isnan(v), where << "image " << i << " of shape " << images.shape()
                                              << " holds NaN at channel " << ch << ", row " << y << ", column " << x);
          grid.pixels[static_cast<size_t>(((top + y) * grid.width + left + x) * c + ch)] = to_byte(v);
        }
      }
    }
  }
  write_file_atomically(path, encode_png(grid, "'" + path + "'"), "save_image_grid: ");
}

namespace {

namespace fs = std::filesystem;

// The PNG grids of run_dir/samples, by kind, each sorted by its number (steps and epochs) or name (others).
struct SampleFiles {
  std::vector<std::pair<int64_t, std::string>> steps;   // step_NNNNNNN.png
  std::vector<std::pair<int64_t, std::string>> epochs;  // epoch_NNNN.png
  std::string final_grid;                               // final.png, or empty
  std::vector<std::string> others;                      // any other *.png
};

// Whether `name` is prefix + 1 to 18 digits + ".png"; the number goes to `number`.
bool numbered_png(const std::string& name, const std::string& prefix, int64_t& number) {
  const std::string suffix = ".png";
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  number = std::stoll(digits);
  return true;
}

SampleFiles find_samples(const std::string& run_dir) {
  SampleFiles found;
  const fs::path dir = fs::path(run_dir) / "samples";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file(ec) || name.size() < 4 || name.substr(name.size() - 4) != ".png") continue;
    int64_t number = 0;
    if (numbered_png(name, "step_", number)) {
      found.steps.emplace_back(number, name);
    } else if (numbered_png(name, "epoch_", number)) {
      found.epochs.emplace_back(number, name);
    } else if (name == "final.png") {
      found.final_grid = name;
    } else {
      found.others.push_back(name);
    }
  }
  std::sort(found.steps.begin(), found.steps.end());
  std::sort(found.epochs.begin(), found.epochs.end());
  std::sort(found.others.begin(), found.others.end());
  return found;
}

// 1234567 -> "1,234,567".
std::string with_commas(int64_t v) {
  const std::string digits = std::to_string(v);
  const size_t sign = v < 0 ? 1 : 0;
  std::string out = digits.substr(0, sign);
  for (size_t i = sign; i < digits.size(); ++i) {
    if (i > sign && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Seconds -> "1 h 02 min", "3 min 05 s", "42 s".
std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[64];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(s));
  }
  return buf;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// When run_dir/samples/name was last written (the oldest possible time when it cannot be read).
fs::file_time_type modified(const std::string& run_dir, const std::string& name) {
  std::error_code ec;
  const fs::file_time_type t = fs::last_write_time(fs::path(run_dir) / "samples" / name, ec);
  return ec ? fs::file_time_type::min() : t;
}

// The first max_bytes of the file, or nullopt when it cannot be opened.
std::optional<std::string> read_text(const fs::path& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string text;
  if (!in) return std::nullopt;
  text.resize(max_bytes);
  in.read(text.data(), static_cast<std::streamsize>(max_bytes));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

const char* kStyle = R"(
  :root { color-scheme: light; }
  body { margin: 0; background: #f3f4f6; color: #111827;
         font: 15px/1.45 "DejaVu Sans", system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
  main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 40px; }
  header h1 { font-size: 26px; margin: 0 0 2px; }
  header h1 .run { color: #4b5563; font-weight: normal; }
  header p { margin: 0; color: #6b7280; font-size: 13px; }
  a { color: #1d4ed8; }
  section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 16px 20px; margin-top: 18px; }
  h2 { font-size: 18px; margin: 0 0 12px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 10px; }
  .card { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px; background: #f9fafb; }
  .card .label { font-size: 12px; color: #6b7280; }
  .card .value { font-size: 20px; font-weight: bold; font-variant-numeric: tabular-nums; }
  .card .detail { font-size: 11px; color: #6b7280; }
  .note { color: #6b7280; font-size: 13px; margin: 8px 0 0; }
  .curves svg { display: block; width: 100%; height: auto; }
  .latest { display: flex; gap: 20px; align-items: flex-start; }
  img.grid { border: 1px solid #d1d5db; background: #fff; display: block; max-width: 100%; height: auto; }
  img.sharp { image-rendering: pixelated; }
  table.grids { border-collapse: separate; border-spacing: 10px; margin: -10px; }
  table.grids td { vertical-align: top; text-align: center; width: 25%; }
  table.grids img { margin: 0 auto; }
  table.grids .caption { font-size: 13px; color: #374151; margin-top: 4px; font-variant-numeric: tabular-nums; }
  details pre { background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 6px; padding: 10px; overflow-x: auto;
                font-size: 12px; }
  footer { color: #9ca3af; font-size: 12px; margin-top: 16px; text-align: center; }
)";

// One summary card: label, value and an optional detail line.
void append_card(std::string& html, const std::string& label, const std::string& value,
                 const std::string& detail = "") {
  html += "<div class=\"card\"><div class=\"label\">" + xml_escape(label) + "</div><div class=\"value\">" +
          xml_escape(value) + "</div>";
  if (!detail.empty()) html += "<div class=\"detail\">" + xml_escape(detail) + "</div>";
  html += "</div>\n";
}

// A section with a table of grids (file name, caption), four to a row: the image (a link to the full-size file)
// over its caption. Nothing when there are no files.
// <img> of run_dir/samples/name, at most max_width pixels wide: small grids are enlarged by a whole factor and kept
// sharp (pixelated), large ones shrunk smoothly. Width and height are given so the page does not jump as the
// (lazily loaded) images arrive.
std::string grid_img(const std::string& run_dir, const std::string& name, const std::string& alt, int64_t max_width,
                     bool lazy) {
  std::string tag = "<img src=\"" + xml_escape("samples/" + name) + "\" alt=\"" + xml_escape(alt) + "\"";
  if (lazy) tag += " loading=\"lazy\"";
  const auto size = png_size((fs::path(run_dir) / "samples" / name).string());
  if (size && size->first > 0 && size->second > 0) {
    const auto [w, h] = *size;
    const bool enlarge = w <= max_width;
    const int64_t width = enlarge ? w * (max_width / w) : max_width;
    const int64_t height = enlarge ? h * (max_width / w) : std::max<int64_t>(1, h * max_width / w);
    tag += " width=\"" + std::to_string(width) + "\" height=\"" + std::to_string(height) + "\"";
    tag += enlarge ? " class=\"grid sharp\"" : " class=\"grid\"";
  } else {
    tag += " class=\"grid\" width=\"" + std::to_string(max_width) + "\"";
  }
  return tag + ">";
}

void append_grid_section(std::string& html, const std::string& run_dir, const std::string& title,
                         const std::vector<std::pair<std::string, std::string>>& files) {
  constexpr size_t kPerRow = 4;
  if (files.empty()) return;
  html += "<section><h2>" + xml_escape(title) + "</h2>\n<table class=\"grids\">\n";
  for (size_t i = 0; i < files.size(); i += kPerRow) {
    html += "<tr>";
    for (size_t j = i; j < i + kPerRow; ++j) {
      if (j >= files.size()) {
        html += "<td></td>";
        continue;
      }
      html += "<td><a href=\"" + xml_escape("samples/" + files[j].first) + "\">" +
              grid_img(run_dir, files[j].first, files[j].second, 220, true) + "</a><div class=\"caption\">" +
              xml_escape(files[j].second) + "</div></td>";
    }
    html += "</tr>\n";
  }
  html += "</table>\n</section>\n";
}

// config.json's top-level number `key`, NaN when the text is not JSON or the key is absent or not a number (the
// report is drawn from whatever a run left behind, so a damaged config.json costs a reference line, not the page).
double json_number(const std::string& json, const std::string& key) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::numeric_limits<double>::quiet_NaN();
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

// What the report takes from config.json (NaN where absent): gamma for the reference line, batch for images/s.
struct RunConfig {
  std::optional<std::string> text;  // the file's first 64 KB, shown on the page
  double gamma = std::numeric_limits<double>::quiet_NaN();
  double batch = std::numeric_limits<double>::quiet_NaN();
};

// The folder's own name, also for "runs/x/" and ".".
std::string folder_name(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(dir, ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string name = p.filename().string();
  return name.empty() ? dir : name;
}

std::string render_html(const std::string& run_dir, const MetricsTable& table, const std::string& svg,
                        const SampleFiles& samples, const RunConfig& config) {
  const std::string run_name = folder_name(run_dir);
  const bool has_config = config.text.has_value();
  const double gamma = config.gamma;
  const int64_t window = moving_average_window(table.rows);
  const auto last_step = static_cast<int64_t>(table.rows > 0 ? table.last("step") : 0);

  std::string html;
  html.reserve(svg.size() + 16 * 1024);
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>BEGAN run " + xml_escape(run_name) + (table.rows > 0 ? ", step " + with_commas(last_step) : "") +
          "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<main>\n";

  html += "<header><h1>BEGAN run <span class=\"run\">" + xml_escape(run_name) + "</span></h1><p>";
  html += table.rows > 0 ? "step " + with_commas(last_step) + " &middot; " : "no training step logged yet &middot; ";
  html += "report written " + utc_now();
  if (has_config) html += " &middot; settings: <a href=\"config.json\">config.json</a>";
  html += "</p></header>\n";

  // Run summary: the last row, with each noisy quantity also as its moving average.
  html += "<section class=\"summary\"><h2>Run summary</h2>\n";
  if (table.rows == 0) {
    html +=
        "<p class=\"note\">metrics.csv has no rows yet: the summary and the curves appear after the first "
        "step.</p>\n";
  } else {
    html += "<div class=\"cards\">\n";
    append_card(html, "step", with_commas(last_step),
                with_commas(table.rows) + (table.rows == 1 ? " row logged" : " rows logged"));
    if (table.column("epoch") != nullptr) append_card(html, "epoch", format_number(table.last("epoch"), 6));
    // The noisy quantities as their moving average, with the last step's value below.
    const std::pair<const char*, const char*> averaged[] = {
        {"loss_real", "L(x)"}, {"loss_fake_g", "L(G(z))"}, {"loss_d", "L_D"}, {"m_global", "M_global"}};
    for (const auto& [column, label] : averaged) {
      const std::vector<double> avg = moving_average(*table.column(column), window);
      if (window > 1) {
        append_card(html, label, format_number(avg.back()),
                    "last step " + format_number(table.last(column)) + ", average of " + std::to_string(window));
      } else {
        append_card(html, label, format_number(table.last(column)));
      }
    }
    append_card(html, "k_t", format_number(table.last("k_t")));
    // The equilibrium BEGAN steers to: L(G(z)) = gamma L(x).
    const double ratio = moving_average(*table.column("loss_fake_g"), window).back() /
                         moving_average(*table.column("loss_real"), window).back();
    append_card(html, "L(G(z)) / L(x)", format_number(ratio, 3),
                std::isfinite(gamma) ? "target: \u03b3 = " + format_number(gamma) : "target: \u03b3 (config.json)");
    if (table.column("lr") != nullptr) append_card(html, "learning rate", format_number(table.last("lr"), 3));
    if (table.column("time_s") != nullptr) {
      const std::vector<double>& t = *table.column("time_s");
      const std::vector<double>& s = *table.column("step");
      std::string rate;
      if (table.rows > 1 && t.back() > t.front()) {
        const double steps_per_s = (s.back() - s.front()) / (t.back() - t.front());
        rate = format_number(steps_per_s, 3) + " steps/s";
        if (std::isfinite(config.batch) && config.batch > 0) {
          rate += ", " + format_number(steps_per_s * config.batch, 3) + " images/s";
        }
      }
      append_card(html, "training time", duration_text(t.back()), rate);
    }
    html += "</div>\n";
  }
  html += "</section>\n";

  html += "<section class=\"curves\"><h2>Training curves</h2>\n";
  const size_t svg_start = svg.find("<svg");  // inline: without the XML declaration
  html += svg.substr(svg_start == std::string::npos ? 0 : svg_start);
  html +=
      "<p class=\"note\">What to expect: M_global falls; k_t rises from 0, peaks, then decays; L(G(z)) "
      "approaches &gamma; &times; L(x) (dashed). The same curves as a file: <a "
      "href=\"losses.svg\">losses.svg</a>.</p>\n";
  html += "</section>\n";

  // The newest grid, large: final.png, else the latest step or epoch grid.
  std::string latest, latest_caption;
  if (!samples.final_grid.empty()) {
    latest = samples.final_grid;
    latest_caption = "final samples (end of training)";
  } else if (!samples.steps.empty() &&
             (samples.epochs.empty() ||
              modified(run_dir, samples.steps.back().second) >= modified(run_dir, samples.epochs.back().second))) {
    latest = samples.steps.back().second;
    latest_caption = "step " + with_commas(samples.steps.back().first);
  } else if (!samples.epochs.empty()) {
    latest = samples.epochs.back().second;
    latest_caption = "end of epoch " + with_commas(samples.epochs.back().first);
  }
  html += "<section><h2>Samples</h2>\n";
  if (latest.empty()) {
    html += "<p class=\"note\">No sample grids yet (samples/*.png).</p>\n";
  } else {
    const std::string src = xml_escape("samples/" + latest);
    html += "<div class=\"latest\"><a href=\"" + src + "\">" + grid_img(run_dir, latest, latest_caption, 560, false) +
            "</a><div><p><b>Latest: " + xml_escape(latest_caption) +
            "</b></p><p class=\"note\">G(z) for the same fixed z at every sampling point, so the grids below "
            "show how each sample evolves. Click a grid for the full-size image.</p></div></div>\n";
  }
  html += "</section>\n";

  // The tables: each grid captioned with its epoch or step number, or its file name.
  const auto numbered = [](const std::vector<std::pair<int64_t, std::string>>& grids, const std::string& word) {
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& [number, name] : grids) files.emplace_back(name, word + " " + with_commas(number));
    return files;
  };
  std::vector<std::pair<std::string, std::string>> others;
  for (const std::string& name : samples.others) others.emplace_back(name, name);
  append_grid_section(html, run_dir, "By epoch", numbered(samples.epochs, "epoch"));
  append_grid_section(html, run_dir, "By step", numbered(samples.steps, "step"));
  append_grid_section(html, run_dir, "Other images", others);

  if (has_config) {
    html += "<section><details><summary>Settings (<a href=\"config.json\">config.json</a>)</summary><pre>" +
            xml_escape(*config.text) + "</pre></details></section>\n";
  }
  html +=
      "<footer>Written by atelier's BEGAN trainer from metrics.csv and samples/; rewritten at every sampling "
      "point (reload to update).</footer>\n";
  html += "</main>\n</body>\n</html>\n";
  return html;
}

}  // namespace

void write_report(const std::string& run_dir) {
  const std::string where = "write_report: ";
  std::error_code ec;
  ATELIER_CHECK(fs::is_directory(run_dir, ec), where << "'" << run_dir << "' is not a folder");
  const MetricsTable table = read_metrics_csv((fs::path(run_dir) / "metrics.csv").string());
  RunConfig config;
  config.text = read_text(fs::path(run_dir) / "config.json", 64 * 1024);
  if (config.text) {
    config.gamma = json_number(*config.text, "gamma");
    config.batch = json_number(*config.text, "batch");
  }
  const std::string svg = render_loss_svg(table, config.gamma);
  const std::string html = render_html(run_dir, table, svg, find_samples(run_dir), config);
  write_file_atomically((fs::path(run_dir) / "losses.svg").string(), svg, where);
  write_file_atomically((fs::path(run_dir) / "report.html").string(), html, where);
}

}  // namespace atelier::began
