// BEGAN's report (began/report.h): sample grids read back with libpng pixel by pixel, their errors, and
// write_report on generated run folders (0, 1 and many metrics rows, a last line cut short, sample grids of every
// kind): the SVG and HTML are well-formed, hold the series, and reference every grid.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <png.h>
#include <sys/stat.h>

#include "began/image_io.h"
#include "began/report.h"
#include "began/report/loss_plot.h"
#include "began/report/metrics_csv.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

using namespace atelier;
using namespace atelier::began;
using testing::check_throws_with;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

namespace {

namespace fs = std::filesystem;

// A PNG decoded with libpng's own reader, in the file's format (no conversion asked for).
struct DecodedPng {
  int64_t width = 0, height = 0, channels = 0;
  int bit_depth = 0, color_type = 0;  // from the IHDR chunk's bytes
  std::vector<uint8_t> pixels;
  uint8_t at(int64_t y, int64_t x, int64_t c) const {
    return pixels[static_cast<size_t>((y * width + x) * channels + c)];
  }
};

DecodedPng read_png(const std::string& path) {
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() > 33);
  REQUIRE(bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  REQUIRE(bytes.compare(12, 4, "IHDR") == 0);
  DecodedPng png;
  png.bit_depth = static_cast<uint8_t>(bytes[24]);
  png.color_type = static_cast<uint8_t>(bytes[25]);

  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  REQUIRE_MESSAGE(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) != 0, image.message);
  // The format of the file itself (begin_read sets it from IHDR); finish_read then converts nothing.
  png.channels = PNG_IMAGE_SAMPLE_CHANNELS(image.format);
  png.width = image.width;
  png.height = image.height;
  png.pixels.resize(PNG_IMAGE_SIZE(image));
  REQUIRE_MESSAGE(png_image_finish_read(&image, nullptr, png.pixels.data(), 0, nullptr) != 0, image.message);
  return png;
}

// Checks that `text` is well-formed markup: every tag closed in order (HTML's void elements excepted), no stray
// '<' or '&' in text, attribute values quoted. Returns the element names seen, with counts.
std::map<std::string, int> check_markup(const std::string& text, bool html) {
  static const std::vector<std::string> kVoid = {"meta", "img", "br", "link", "input", "hr"};
  std::vector<std::string> open;
  std::map<std::string, int> seen;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '&') {
      const size_t semi = text.find(';', i);
      REQUIRE_MESSAGE(semi != std::string::npos, "a bare '&' at " << i);
      const std::string entity = text.substr(i + 1, semi - i - 1);
      CHECK_MESSAGE((entity == "amp" || entity == "lt" || entity == "gt" || entity == "quot" || entity == "#39" ||
                     entity == "middot" || entity == "times" || entity == "gamma"),
                    "unknown entity &" << entity << ";");
      i = semi + 1;
      continue;
    }
    if (text[i] != '<') {
      ++i;
      continue;
    }
    const size_t close = text.find('>', i);
    REQUIRE_MESSAGE(close != std::string::npos, "an unclosed '<' at " << i);
    std::string tag = text.substr(i + 1, close - i - 1);
    i = close + 1;
    if (tag.starts_with("?") || tag.starts_with("!")) continue;  // <?xml ...?>, <!DOCTYPE html>
    if (tag.starts_with("/")) {
      const std::string name = tag.substr(1);
      REQUIRE_MESSAGE(!open.empty(), "</" << name << "> closes nothing");
      REQUIRE_MESSAGE(open.back() == name, "</" << name << "> closes <" << open.back() << ">");
      open.pop_back();
      continue;
    }
    REQUIRE_MESSAGE(tag.find('<') == std::string::npos, "a '<' inside the tag <" << tag << ">");
    const bool self_closing = tag.ends_with("/");
    const std::string name = tag.substr(0, tag.find_first_of(" /\n"));
    ++seen[name];
    // Attribute values are quoted: an even number of quotes.
    CHECK_MESSAGE(std::count(tag.begin(), tag.end(), '"') % 2 == 0, "unbalanced quotes in <" << tag << ">");
    const bool is_void = html && std::find(kVoid.begin(), kVoid.end(), name) != kVoid.end();
    if (!self_closing && !is_void) open.push_back(name);
  }
  CHECK_MESSAGE(open.empty(), "unclosed elements, innermost <" << (open.empty() ? "" : open.back()) << ">");
  return seen;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char* kHeader = "epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s\n";

// metrics.csv rows shaped like a BEGAN run: M_global falls, k_t rises then decays, small step-to-step noise.
std::string metrics_rows(int64_t rows, int64_t steps_per_epoch = 100) {
  std::string text;
  char line[512];
  for (int64_t s = 0; s < rows; ++s) {
    const double t = static_cast<double>(s) / static_cast<double>(std::max<int64_t>(rows, 2) - 1);
    const double noise = 0.02 * std::sin(static_cast<double>(s) * 12.9898);
    const double real = 0.25 * std::exp(-2 * t) + 0.1 + noise;
    const double fake = 0.5 * real + 0.05 * std::exp(-4 * t) + noise;
    const double k = 0.12 * t * std::exp(1 - 4 * t) * 4;
    std::snprintf(line, sizeof line, "%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.3f\n",
                  static_cast<long long>(s / steps_per_epoch), static_cast<long long>(s), real, fake, fake,
                  real - k * fake, fake, k, real + std::abs(0.5 * real - fake), 1e-4, 0.05 * static_cast<double>(s));
    text += line;
  }
  return text;
}

// A grey (N, 1, 4, 4) batch in [-1, 1].
Tensor small_batch(int64_t n) { return uniform({n, 1, 4, 4}, -1, 1, RandomKey{7, 0, 0}); }

}  // namespace

TEST_CASE("began report: a grey grid reads back with libpng pixel for pixel, border and clamping included") {
  TempDir dir;
  // 4 images of 3 x 2: image i holds the values below, in row-major order, shifted by nothing but its index
  // through the last pixel (so a misplaced image is caught).
  const std::vector<float> base = {-1.0f, 1.0f, 0.0f, 0.5f, -3.0f, 2.0f};
  const std::vector<uint8_t> expected = {0, 255, 128, 191, 0, 255};  // round((v + 1) * 127.5), clamped
  std::vector<float> values;
  for (int i = 0; i < 4; ++i) {
    for (size_t p = 0; p < base.size(); ++p) values.push_back(p == 2 ? -1.0f + 0.5f * static_cast<float>(i) : base[p]);
  }
  const std::string path = dir.file("grid.png");
  save_image_grid(path, from_vector(values, {4, 1, 3, 2}));

  const DecodedPng png = read_png(path);
  CHECK(png.bit_depth == 8);
  CHECK(png.color_type == 0);  // grey
  CHECK(png.channels == 1);
  // nrow 0 -> ceil(sqrt(4)) = 2 per row: 2 * (3 + 2) + 2 high, 2 * (2 + 2) + 2 wide.
  REQUIRE(png.height == 12);
  REQUIRE(png.width == 10);
  for (int64_t y = 0; y < png.height; ++y) {
    for (int64_t x = 0; x < png.width; ++x) {
      const int64_t cy = (y - 2) % 5, cx = (x - 2) % 4;
      const bool border = y < 2 || x < 2 || cy >= 3 || cx >= 2;
      if (border) {
        CHECK_MESSAGE(png.at(y, x, 0) == 255, "border at " << y << "," << x);
        continue;
      }
      const int64_t image = ((y - 2) / 5) * 2 + (x - 2) / 4;
      const auto p = static_cast<size_t>(cy * 2 + cx);
      const uint8_t want =
          p == 2 ? static_cast<uint8_t>(std::lround((0.5 * static_cast<double>(image)) * 127.5)) : expected[p];
      CHECK_MESSAGE(png.at(y, x, 0) == want, "image " << image << " pixel " << p << " at " << y << "," << x);
    }
  }
}

TEST_CASE("began report: an RGB float64 grid keeps the channels apart and whitens the empty cells") {
  TempDir dir;
  // 5 images of 2 x 2, 3 per row: 2 rows, the second with one empty cell. Channel c of image i is the constant
  // -1 + 0.25 * c + 0.1 * i.
  std::vector<double> values;
  for (int i = 0; i < 5; ++i) {
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 4; ++p) values.push_back(-1 + 0.25 * c + 0.1 * i);
    }
  }
  const std::string path = dir.file("rgb.png");
  save_image_grid(path, from_vector(values, {5, 3, 2, 2}, DType::Float64), 3);
  const DecodedPng png = read_png(path);
  CHECK(png.color_type == 2);  // RGB
  REQUIRE(png.channels == 3);
  REQUIRE(png.height == 2 * (2 + 2) + 2);
  REQUIRE(png.width == 3 * (2 + 2) + 2);
  for (int i = 0; i < 6; ++i) {
    const int64_t top = 2 + (i / 3) * 4, left = 2 + (i % 3) * 4;
    for (int c = 0; c < 3; ++c) {
      const double v = -1 + 0.25 * c + 0.1 * i;  // as stored (0.1 * i is inexact: compute it the same way)
      const uint8_t want = i < 5 ? static_cast<uint8_t>(std::lround((v + 1) * 127.5)) : 255;
      for (int64_t y = top; y < top + 2; ++y) {
        for (int64_t x = left; x < left + 2; ++x) CHECK_MESSAGE(png.at(y, x, c) == want, "cell " << i << " c " << c);
      }
    }
  }
  // The 2-pixel border between cells.
  for (int c = 0; c < 3; ++c) CHECK(png.at(2, 4, c) == 255);
  CHECK(png.at(0, 0, 0) == 255);
}

TEST_CASE("began report: a strided view (NHWC permuted to NCHW) and a tensor that requires grad save like a copy") {
  TempDir dir;
  const Tensor nhwc = uniform({3, 5, 4, 3}, -1.2, 1.2, RandomKey{3, 0, 0});
  const Tensor view = nhwc.permute({0, 3, 1, 2});
  REQUIRE_FALSE(view.is_contiguous());
  save_image_grid(dir.file("view.png"), view);
  save_image_grid(dir.file("copy.png"), view.contiguous());
  const Tensor leaf = view.contiguous().detach();
  leaf.requires_grad_();
  save_image_grid(dir.file("leaf.png"), leaf);
  const DecodedPng a = read_png(dir.file("view.png"));
  CHECK(a.pixels == read_png(dir.file("copy.png")).pixels);
  CHECK(a.pixels == read_png(dir.file("leaf.png")).pixels);
  // Spot check: image 0, channel 2, row 1, column 3 is nhwc[0, 1, 3, 2], at grid pixel (2 + 1, 2 + 3).
  const double v = nhwc.to_vector<double>()[((0 * 5 + 1) * 4 + 3) * 3 + 2];
  CHECK(a.at(3, 5, 2) == std::lround((std::clamp(v, -1.0, 1.0) + 1) * 127.5));
}

TEST_CASE("began report: the grid's images per row: nrow, ceil(sqrt(N)) by default, at most N") {
  TempDir dir;
  const std::string path = dir.file("g.png");
  struct Case {
    int64_t n, nrow, width, height;
  };
  // width = per_row * (4 + 2) + 2, height = rows * (4 + 2) + 2.
  for (const Case& c : {Case{1, 0, 8, 8}, Case{5, 0, 20, 14}, Case{9, 0, 20, 20}, Case{10, 0, 26, 20},
                        Case{16, 0, 26, 26}, Case{3, 8, 20, 8}, Case{6, 1, 8, 38}, Case{6, 4, 26, 14}}) {
    save_image_grid(path, small_batch(c.n), c.nrow);
    const DecodedPng png = read_png(path);
    CHECK_MESSAGE(png.width == c.width, "n " << c.n << " nrow " << c.nrow);
    CHECK_MESSAGE(png.height == c.height, "n " << c.n << " nrow " << c.nrow);
  }
  // Overwriting an existing grid leaves no temporary file behind.
  CHECK(dir.list() == std::set<std::string>{"g.png"});
}

TEST_CASE("began report: save_image_grid refuses bad input, naming the path and the shape") {
  TempDir dir;
  const std::string path = dir.file("bad.png");
  check_throws_with([&] { save_image_grid(path, zeros({2, 2, 4, 4})); }, {path, "[2, 2, 4, 4]", "C = 1 or 3"});
  check_throws_with([&] { save_image_grid(path, zeros({2, 4, 4})); }, {path, "[2, 4, 4]"});
  check_throws_with([&] { save_image_grid(path, zeros({0, 1, 4, 4})); }, {path, "[0, 1, 4, 4]"});
  check_throws_with([&] { save_image_grid(path, zeros({2, 1, 4, 4}, DType::Int64)); }, {path, "int64", "float32"});
  check_throws_with([&] { save_image_grid(path, zeros({2, 1, 4, 4}), -1); }, {path, "nrow", "-1"});
  check_throws_with([&] { save_image_grid(path, Tensor()); }, {path, "undefined"});
  Tensor with_nan = zeros({2, 1, 4, 4});
  with_nan.data_ptr<float>()[16 + 5] = std::numeric_limits<float>::quiet_NaN();
  check_throws_with([&] { save_image_grid(path, with_nan); }, {path, "NaN", "image 1", "row 1, column 1"});
  CHECK(dir.list().empty());  // nothing written for refused input

  // An unwritable path: the parent is a regular file (a permission test would pass as root).
  write_bytes(dir.file("file"), "x");
  const std::string unwritable = dir.file("file/grid.png");
  check_throws_with([&] { save_image_grid(unwritable, small_batch(2)); }, {unwritable, "cannot create"});
  // A folder in the way of the rename: the temporary file is removed.
  fs::create_directories(dir.file("taken.png/inside"));
  check_throws_with([&] { save_image_grid(dir.file("taken.png"), small_batch(2)); },
                    {dir.file("taken.png"), "cannot rename"});
  CHECK(dir.list() == std::set<std::string>{"file", "taken.png"});
}

TEST_CASE("began report: save_image_grid creates missing folders; png_size reads the header") {
  TempDir dir;
  const std::string path = dir.file("run/samples/step_0000000.png");
  save_image_grid(path, small_batch(6), 3);
  CHECK(read_png(path).width == 20);
  const auto size = png_size(path);
  REQUIRE(size.has_value());
  CHECK(size->first == 20);
  CHECK(size->second == 14);
  write_bytes(dir.file("not.png"), "GIF89a and more bytes than a header");
  CHECK_FALSE(png_size(dir.file("not.png")).has_value());
  CHECK_FALSE(png_size(dir.file("missing.png")).has_value());
}

TEST_CASE("began report: any legal file name takes a grid; temporary files of killed writes are removed") {
  TempDir dir;
  // NAME_MAX (255 bytes) is legal; "<name>.tmp.<pid>.<n>", the temporary name beside it, was not (after the work).
  const std::string name = std::string(255 - 4, 'g') + ".png";
  // What a killed write leaves (a pid above any pid_max: no process of it runs): the next write removes it.
  write_bytes(dir.file(".atelier-tmp.2147483646.0"), "half a grid");
  save_image_grid(dir.file(name), small_batch(2));
  CHECK(png_size(dir.file(name)).has_value());
  CHECK(dir.list() == std::set<std::string>{name});
}

TEST_CASE("began report: atelier's PNGs carry a mark that other PNGs lack; libpng still reads them") {
  TempDir dir;
  const std::string ours = dir.file("ours.png");
  save_image_grid(ours, small_batch(2), 2);
  CHECK(png_written_by_atelier(ours));
  CHECK(read_png(ours).width == 14);  // libpng's reader checks every chunk's CRC: the mark's must be right
  const std::string bytes = read_bytes(ours);
  CHECK(bytes.find(std::string("tEXtSoftware") + '\0' + "atelier") == 37);  // the chunk right after IHDR

  // The same image without the mark (as atelier wrote PNGs before it, or another program) is not ours.
  std::string unmarked = bytes;
  unmarked.erase(33, 4 + 4 + 16 + 4);
  write_bytes(dir.file("theirs.png"), unmarked);
  CHECK(read_png(dir.file("theirs.png")).width == 14);
  CHECK_FALSE(png_written_by_atelier(dir.file("theirs.png")));
  // A damaged mark (one bit of its text, so the CRC no longer matches) is not ours either.
  std::string damaged = bytes;
  damaged[37 + 13] ^= 1;
  write_bytes(dir.file("damaged.png"), damaged);
  CHECK_FALSE(png_written_by_atelier(dir.file("damaged.png")));
  write_bytes(dir.file("short.png"), bytes.substr(0, 40));
  CHECK_FALSE(png_written_by_atelier(dir.file("short.png")));
  CHECK_FALSE(png_written_by_atelier(dir.file("missing.png")));
  CHECK_FALSE(png_written_by_atelier(dir.path));  // a folder
}

TEST_CASE("began report: metrics.csv: columns by name, a cut last line dropped, a broken middle line refused") {
  TempDir dir;
  const std::string path = dir.file("metrics.csv");
  SUBCASE("missing, empty, or a header still being written: no rows") {
    CHECK(read_metrics_csv(path).rows == 0);
    write_bytes(path, "");
    CHECK(read_metrics_csv(path).rows == 0);
    write_bytes(path, "epoch,step,loss_re");
    CHECK(read_metrics_csv(path).columns.empty());
    write_bytes(path, kHeader);
    const MetricsTable t = read_metrics_csv(path);
    CHECK(t.rows == 0);
    CHECK(t.columns.size() == 11);
    CHECK(std::isnan(t.last("k_t")));
  }
  SUBCASE("a last line cut short, at any byte, is left out") {
    const std::string rows = metrics_rows(3);
    const size_t third = rows.find('\n', rows.find('\n') + 1) + 1;
    for (size_t cut = third + 1; cut < rows.size() - 1; ++cut) {
      write_bytes(path, kHeader + rows.substr(0, cut));
      const MetricsTable t = read_metrics_csv(path);
      // A cut inside the last field may still parse (time_s shortened): then the row counts, else it is dropped.
      CHECK_MESSAGE((t.rows == 2 || (t.rows == 3 && cut > rows.rfind(','))), "cut at " << cut);
      CHECK(t.last("step") == (t.rows == 3 ? 2 : 1));
    }
    write_bytes(path, kHeader + rows + "3,3,0.1,0.1");
    MetricsTable t = read_metrics_csv(path);
    CHECK(t.rows == 3);
    CHECK(t.dropped_partial_line);
    CHECK(t.column("loss_real")->size() == 3);
    write_bytes(path, kHeader + rows + "3,3,0.1,0.1\n\n");  // whole lines, but the last one short: a killed run
    CHECK(read_metrics_csv(path).rows == 3);
  }
  SUBCASE("nan and inf are values; columns in any order") {
    write_bytes(path, "m_global,k_t,step,loss_d,loss_fake_g,loss_real\n0.5,0,0,1,nan,inf\n0.25,0.01,1,1,2,3\n");
    const MetricsTable t = read_metrics_csv(path);
    REQUIRE(t.rows == 2);
    CHECK(std::isnan((*t.column("loss_fake_g"))[0]));
    CHECK(std::isinf((*t.column("loss_real"))[0]));
    CHECK(t.last("m_global") == 0.25);
    CHECK(t.column("lr") == nullptr);
  }
  SUBCASE("errors name the file, the line and the column") {
    write_bytes(path, kHeader + metrics_rows(1) + "1,1,x,0,0,0,0,0,0,0,0\n" + metrics_rows(3).substr(0));
    check_throws_with([&] { read_metrics_csv(path); }, {path, "line 3"});
    write_bytes(path, "epoch,step,loss_real\n0,0,1\n");
    check_throws_with([&] { read_metrics_csv(path); }, {path, "'k_t'", "'m_global'", "'loss_d'"});
    write_bytes(path, "step,step,loss_real,loss_fake_g,loss_d,k_t,m_global\n");
    check_throws_with([&] { read_metrics_csv(path); }, {path, "'step' twice"});
  }
}

TEST_CASE("began report: the moving average skips non-finite values") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> avg = moving_average({1, 2, 3, nan, 5, 6}, 2);
  const std::vector<double> want = {1, 1.5, 2.5, 3, 5, 5.5};
  REQUIRE(avg.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(avg[i] == doctest::Approx(want[i]));
  CHECK(std::isnan(moving_average({nan, nan}, 1)[1]));
  CHECK(moving_average_window(0) == 1);
  CHECK(moving_average_window(5000) == 100);
}

TEST_CASE("began report: write_report on a run without metrics rows or samples") {
  TempDir dir;
  SUBCASE("no metrics.csv") {}
  SUBCASE("only the header") { write_bytes(dir.file("metrics.csv"), kHeader); }
  write_report(dir.path);
  const std::string svg = read_bytes(dir.file("losses.svg"));
  const std::string html = read_bytes(dir.file("report.html"));
  std::map<std::string, int> tags = check_markup(svg, false);
  CHECK(tags["svg"] == 1);
  CHECK(tags["path"] == 0);
  CHECK(svg.find("no metrics yet") != std::string::npos);
  tags = check_markup(html, true);
  CHECK(tags["svg"] == 1);  // inline
  CHECK(tags["img"] == 0);
  CHECK(tags["script"] == 0);
  CHECK(html.find("No sample grids yet") != std::string::npos);
  CHECK(html.find("config.json") == std::string::npos);
  // Only the two outputs (no temporary left), and metrics.csv when written.
  std::set<std::string> names = dir.list();
  names.erase("metrics.csv");
  CHECK(names == std::set<std::string>{"losses.svg", "report.html"});
}

TEST_CASE("began report: write_report on a run with one metrics row draws a dot per series") {
  TempDir dir;
  write_bytes(dir.file("metrics.csv"), kHeader + metrics_rows(1));
  save_image_grid(dir.file("samples/step_0000000.png"), small_batch(4));
  write_report(dir.path);
  const std::string svg = read_bytes(dir.file("losses.svg"));
  std::map<std::string, int> tags = check_markup(svg, false);
  CHECK(tags["circle"] == 6);  // 3 losses, k_t, M_global, lr
  CHECK(svg.find("nan") == std::string::npos);
  const std::string html = read_bytes(dir.file("report.html"));
  tags = check_markup(html, true);
  CHECK(count_of(html, "src=\"samples/step_0000000.png\"") == 2);  // the latest grid and the table
  // The 14 x 14 grid is enlarged by whole factors, kept sharp: 40x as the latest (<= 560 px), 15x in the table.
  CHECK(html.find("width=\"560\" height=\"560\" class=\"grid sharp\"") != std::string::npos);
  CHECK(html.find("width=\"210\" height=\"210\" class=\"grid sharp\"") != std::string::npos);
  CHECK(html.find("1 row logged") != std::string::npos);
}

TEST_CASE("began report: write_report on a long run: every series, every grid, config.json, a cut last line") {
  TempDir dir;
  const int64_t rows = 5000;
  write_bytes(dir.file("metrics.csv"), kHeader + metrics_rows(rows) + "50,5000,0.12");  // a write in progress
  write_bytes(dir.file("config.json"), "{\"gamma\": 0.5, \"batch\": 16, \"note\": \"<b>&\"}\n");
  std::vector<std::string> grids = {"step_0000000.png", "step_0001000.png", "step_0004500.png", "epoch_0000.png",
                                    "epoch_0001.png",   "epoch_0012.png",   "final.png",        "interp.png"};
  for (const std::string& g : grids) save_image_grid(dir.file("samples/" + g), small_batch(4));
  write_bytes(dir.file("samples/notes.txt"), "not an image");
  write_bytes(dir.file("samples/.atelier-tmp.42.0"), "a grid being written");
  write_report(dir.path);

  const std::string svg = read_bytes(dir.file("losses.svg"));
  std::map<std::string, int> tags = check_markup(svg, false);
  // One per-step path for each series (3 losses, k_t, M_global, lr), one moving average for each noisy one, and
  // the dashed gamma * L(x) (gamma from config.json).
  CHECK(tags["path"] == 6 + 4 + 1);
  CHECK(count_of(svg, "stroke-dasharray=\"6,4\"") == 1);
  CHECK(svg.find("\u03b3\u00b7L(x)") != std::string::npos);
  CHECK(tags["clipPath"] == 4);
  for (const char* label : {"L(x)", "L(G(z))", "L_D", "k_t", "M_global", "lr"}) {
    CHECK_MESSAGE(svg.find(label) != std::string::npos, label);
  }
  CHECK(svg.find("moving average over 100 steps") != std::string::npos);
  CHECK(svg.find(">2k<") != std::string::npos);  // a step-axis tick label

  const std::string html = read_bytes(dir.file("report.html"));
  tags = check_markup(html, true);
  for (const std::string& g : grids) {
    CHECK_MESSAGE(html.find("src=\"samples/" + g + "\"") != std::string::npos, g);
  }
  CHECK(html.find("notes.txt") == std::string::npos);
  CHECK(html.find(".tmp.") == std::string::npos);
  CHECK(html.find("href=\"config.json\"") != std::string::npos);
  CHECK(html.find("&lt;b&gt;&amp;") != std::string::npos);  // config.json's text, escaped
  CHECK(html.find("step 4,999") != std::string::npos);      // the last whole row
  CHECK(html.find("5,000 rows logged") != std::string::npos);
  CHECK(html.find("20 steps/s, 320 images/s") != std::string::npos);  // time_s is 0.05 s a step, batch 16
  CHECK(html.find("epoch 12") != std::string::npos);
  // Grids in order: by epoch, then by step.
  CHECK(html.find("epoch_0001.png") < html.find("epoch_0012.png"));
  CHECK(html.find("step_0001000.png") < html.find("step_0004500.png"));
  // Nothing to fetch: the only URL is the SVG namespace name.
  CHECK(count_of(html, "http") == count_of(html, "http://www.w3.org/2000/svg"));
}

TEST_CASE("began report: write_report at 100k rows stays small; a NaN row breaks the lines and shows in the summary") {
  TempDir dir;
  std::string rows = metrics_rows(100000);
  // The run stopped on a non-finite loss: the last row logs it.
  rows += "1000,100000,nan,nan,inf,nan,nan,0.1,nan,1e-4,5000\n";
  write_bytes(dir.file("metrics.csv"), kHeader + rows);
  write_report(dir.path + "/");  // a trailing slash: the run's name is still the folder's
  const std::string svg = read_bytes(dir.file("losses.svg"));
  const std::string html = read_bytes(dir.file("report.html"));
  CHECK(svg.size() < 200 * 1024);
  CHECK(html.size() < 250 * 1024);
  const std::map<std::string, int> tags = check_markup(svg, false);
  CHECK(tags.at("path") == 10);  // no gamma line: no config.json
  CHECK(svg.find("stroke-dasharray=\"6,4\"") == std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
  CHECK(svg.find("100k") != std::string::npos);
  check_markup(html, true);
  CHECK(html.find("last step nan") != std::string::npos);
  CHECK(html.find("<title>BEGAN run " + fs::path(dir.path).filename().string() + ", step 100,000</title>") !=
        std::string::npos);
}

TEST_CASE("began report: the step axis ends at the last step; absurd values still give a well-formed SVG") {
  TempDir dir;
  SUBCASE("36 steps: ticks 0 to 35, none at 40") {
    write_bytes(dir.file("metrics.csv"), kHeader + metrics_rows(37).substr(metrics_rows(1).size()));
    write_report(dir.path);
    const std::string svg = read_bytes(dir.file("losses.svg"));
    check_markup(svg, false);
    CHECK(svg.find(">35</text>") != std::string::npos);
    CHECK(svg.find(">40</text>") == std::string::npos);
  }
  SUBCASE("huge and tiny values") {
    write_bytes(dir.file("metrics.csv"), std::string(kHeader) + "0,0,1e300,0,-1e300,1e-300,0,0,1e308,0,0\n" +
                                             "0,1,-1e300,0,1e300,0,0,1,-1e308,0,1\n");
    write_report(dir.path);
    const std::string svg = read_bytes(dir.file("losses.svg"));
    check_markup(svg, false);
    CHECK(svg.find("nan") == std::string::npos);
    CHECK(svg.size() < 100 * 1024);
  }
}

TEST_CASE("began report: a constant learning rate over many steps gets short, sane tick labels") {
  TempDir dir;
  write_bytes(dir.file("metrics.csv"), kHeader + metrics_rows(1500));  // lr 1e-4 at every step
  write_report(dir.path);
  const std::string svg = read_bytes(dir.file("losses.svg"));
  CHECK(svg.find(">1.00e-4</text>") != std::string::npos);
  // Every tick label (font-size 11) is short: no run of digits from rounding noise.
  size_t labels = 0;
  for (size_t at = svg.find("font-size=\"11\""); at != std::string::npos; at = svg.find("font-size=\"11\"", at + 1)) {
    const size_t open = svg.find('>', at), close = svg.find("</text>", at);
    REQUIRE(close != std::string::npos);
    const std::string label = svg.substr(open + 1, close - open - 1);
    CHECK_MESSAGE(label.size() <= 7, label);
    ++labels;
  }
  CHECK(labels > 20);
}
