// The checks every subcommand of bin/began shares: strict numbers for numeric flags and paths checked before any
// work. Header-only, for began_main.cpp and the tools beside it (sample, reconstruct, interpolate, eval).
#pragma once

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/error.h"
#include "began/number_text.h"
#include "began/run_files.h"

namespace atelier::began_cli {

// ---- Strict numbers: every numeric flag's text is checked before CLI11 converts it, so a value that does not fit
// its type (--limit 99999999999999999999, --seed -1 for an unsigned seed, --epochs 1e20 for a whole number) is
// refused with one short line instead of wrapping, saturating or being misread. Ranges that depend on meaning
// (--batch >= 1, ...) are checked afterwards, by began::resolve_config for `train` and below for the others.

// At most this many characters of a value are quoted back: a 400-digit argument must not make a 400-digit line.
inline std::string cut_quote(const std::string& text) {
  constexpr size_t kMax = 24;
  return "'" + (text.size() <= kMax ? text : text.substr(0, kMax) + "...") + "'";
}

// A whole number of type T from `lo` to `hi`: an optional '-' then digits, nothing else (began/number_text.h).
template <class T>
CLI::Validator whole_number(T lo = std::numeric_limits<T>::min(), T hi = std::numeric_limits<T>::max()) {
  auto check = [lo, hi](std::string& text) -> std::string {
    T value{};
    const std::string why = began::read_whole_number(text, &value, lo, hi);
    return why.empty() ? why : cut_quote(text) + " is " + why;
  };
  return CLI::Validator(check, "", "whole number");
}

// A finite real number from `lo` to `hi` (both bounds inclusive unless `open_lo`).
inline CLI::Validator real_number(double lo = -std::numeric_limits<double>::max(),
                                  double hi = std::numeric_limits<double>::max(), bool open_lo = false) {
  auto check = [lo, hi, open_lo](std::string& text) -> std::string {
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || std::isspace(static_cast<unsigned char>(text[0]))) {
      return cut_quote(text) + " is not a number";
    }
    if (std::isnan(v)) return cut_quote(text) + " is not a number";
    if (!std::isfinite(v) || errno == ERANGE) return cut_quote(text) + " is outside the range of a double";
    char bounds[96];
    std::snprintf(bounds, sizeof bounds, "must be %s %g and at most %g", open_lo ? "above" : "at least", lo, hi);
    const bool in_range = (open_lo ? v > lo : v >= lo) && v <= hi;
    return in_range ? std::string() : cut_quote(text) + " is out of range: " + bounds;
  };
  return CLI::Validator(check, "", "number");
}

// The strict check for a field's type: whole numbers for integers, finite reals for doubles, none for text.
template <class T>
void check_number(CLI::Option* option) {
  if constexpr (std::is_same_v<T, bool>) {
    return;
  } else if constexpr (std::is_integral_v<T>) {
    option->check(whole_number<T>());
  } else if constexpr (std::is_floating_point_v<T>) {
    option->check(real_number());
  }
}

// CLI11's words for a parse error, in this program's: a single-value flag given twice is "--steps: At Most 1
// required but received 2" in CLI11, "--steps was given 2 times; give it once" here. Other errors pass unchanged.
inline std::string parse_error_text(const std::string& what) {
  const std::string marker = ": At Most 1 required but received ";
  const size_t at = what.find(marker);
  if (at == std::string::npos) return what;
  return what.substr(0, at) + " was given " + what.substr(at + marker.size()) + " times; give it once";
}

// Paths, checked before any work so that a typo costs nothing. Each throws a one-line Error naming the flag.
inline bool is_folder(const std::string& dir) {
  struct stat st {};
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
inline void check_readable_file(const std::string& flag, const std::string& path) {
  ATELIER_CHECK(!is_folder(path), flag << " " << path << ": is a folder, not a file");
  struct stat st {};
  ATELIER_CHECK(::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), R_OK) == 0,
                flag << " " << path << ": no such readable file");
}
// The extension of a file name in lower case (".png" for "grid.PNG"), to check what an output is named.
inline std::string lower_extension(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return extension;
}
// A file to be written: not a folder, in a folder that exists and can be written into.
inline void check_writable_file(const std::string& flag, const std::string& path) {
  ATELIER_CHECK(!path.empty() && path.back() != '/', flag << " '" << path << "': not a file name");
  const std::string too_long = began::path_length_problem(path);
  ATELIER_CHECK(too_long.empty(), flag << " " << began::cut_path(path) << ": " << too_long);
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  ATELIER_CHECK(is_folder(dir), flag << " " << path << ": the folder " << dir << " does not exist");
  ATELIER_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0, flag << " " << path << ": cannot write into " << dir);
  ATELIER_CHECK(!is_folder(path), flag << " " << path << ": is a folder");
}

}  // namespace atelier::began_cli
