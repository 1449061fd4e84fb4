// Whole numbers and text. read_whole_number reads them strictly: an optional '-' then digits, nothing else,
// within the range asked for. Shared by the command line's numeric flags (began/tools/cli_checks.h) and the settings
// a checkpoint's metadata holds (began/run_settings.cpp), so that neither wraps (-1 as an unsigned seed), saturates
// (strtoll's 2^63 - 1) or truncates (a 64-bit value into an int) what it reads. count_text writes a count with its
// noun for the messages a person reads ("1 thread", "2 threads").
#pragma once

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>

namespace atelier::began {

// Reads `text` into *value and returns "", or returns why it is not a whole number from `lo` to `hi` ("not a whole
// number", "out of range: must be from LO to HI") and leaves *value alone.
template <class T>
std::string read_whole_number(const std::string& text, T* value, T lo = std::numeric_limits<T>::min(),
                              T hi = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && sizeof(T) <= sizeof(long long));
  const bool negative = !text.empty() && text[0] == '-';
  const std::string digits = negative ? text.substr(1) : text;
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return "not a whole number";
  const std::string out_of_range = "out of range: must be from " + std::to_string(lo) + " to " + std::to_string(hi);
  errno = 0;
  if (negative) {
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE || !std::is_signed_v<T> || v < static_cast<long long>(lo) || v > static_cast<long long>(hi)) {
      return out_of_range;
    }
    *value = static_cast<T>(v);
  } else {
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE || v > static_cast<unsigned long long>(hi) ||
        (lo > 0 && v < static_cast<unsigned long long>(lo))) {
      return out_of_range;
    }
    *value = static_cast<T>(v);
  }
  return "";
}

// "1 image", "0 images", "2 images": the count and its noun, singular only for 1. `plural` defaults to the
// singular with an "s" ("batch" needs "batches").
inline std::string count_text(long long count, const std::string& singular, const std::string& plural = "") {
  return std::to_string(count) + " " + (count == 1 ? singular : plural.empty() ? singular + "s" : plural);
}

}  // namespace atelier::began
