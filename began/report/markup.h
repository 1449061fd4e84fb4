// Small text helpers shared by the SVG and HTML writers of the report: escaping and number formatting.
#pragma once

#include <string>
#include <string_view>

namespace atelier::began {

// `text` with &, <, >, " and ' replaced by entities: safe inside XML/HTML text and attribute values.
std::string xml_escape(std::string_view text);

// `value` with `significant` significant digits, without trailing zeros ("0.0841", "1e-04" for small values,
// "nan" and "inf" as such): for tick labels and the run summary.
std::string format_number(double value, int significant = 4);

// Appends `value` with one decimal (SVG coordinates: a tenth of a pixel is below what a screen shows).
void append_coordinate(std::string& out, double value);

}  // namespace atelier::began
