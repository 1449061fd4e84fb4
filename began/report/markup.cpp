// Escaping and number formatting for the report's SVG and HTML (began/report/markup.h).
#include "began/report/markup.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace atelier::began {

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_number(double value, int significant) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", significant, value);
  std::string text = buf;
  // 1.25e-05 -> 1.25e-5
  const size_t e = text.find('e');
  if (e != std::string::npos) {
    size_t digits = e + 1;
    if (digits < text.size() && (text[digits] == '-' || text[digits] == '+')) ++digits;
    while (digits + 1 < text.size() && text[digits] == '0') text.erase(digits, 1);
    if (text[e + 1] == '+') text.erase(e + 1, 1);
  }
  return text;
}

void append_coordinate(std::string& out, double value) {
  if (!std::isfinite(value)) value = 0;  // never "nan" in an attribute; callers clamp what they draw
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, 1);
  if (ec != std::errc()) {
    out += '0';
    return;
  }
  out.append(buf, end);
}

}  // namespace atelier::began
