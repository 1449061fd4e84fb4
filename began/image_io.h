// The file side of a BEGAN run's outputs: 8-bit images encoded as PNG (through libpng) and files written
// atomically, so that a person (or a browser) reading the run folder during training never sees half a file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace atelier::began {

// An 8-bit image, rows top to bottom, pixels interleaved: pixels.size() == height * width * channels.
// channels: 1 (grey) or 3 (RGB).
struct Image8 {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;
};

// The PNG file's bytes (8 bits per channel, grey or RGB, no alpha), marked as atelier's by a tEXt chunk right
// after the header ("Software" = "atelier", kPngSoftware), so that a tool can tell the PNGs it may replace from a
// person's own. `what` names the image in error messages (e.g. the path it is for). Throws atelier::Error for an
// inconsistent Image8 or a libpng failure.
std::string encode_png(const Image8& image, const std::string& what);
inline constexpr const char* kPngSoftware = "atelier";

// True when `path` is a PNG file encode_png wrote: the signature, the header chunk, then the tEXt chunk
// "Software" = "atelier" with a correct checksum. False for anything else (no such file, another program's PNG,
// atelier's PNGs from before the mark). Reads the file's first 64 bytes.
bool png_written_by_atelier(const std::string& path);

// The width and height a PNG file's header gives (its first 24 bytes), or nullopt when `path` cannot be read or
// does not start like a PNG. For laying out pages; reads nothing else.
std::optional<std::pair<int64_t, int64_t>> png_size(const std::string& path);

// Writes `bytes` to `path` atomically with nn::write_file_atomically: a temporary file in the same folder
// (".atelier-tmp.<pid>.<n>", short, so that any legal name can be written), fsynced, then renamed over `path`, so
// readers see the old file or the new one, never a partial one. Missing parent folders are created. On error the
// temporary file is removed and an atelier::Error names `path` (and the errno text); `where` starts the message (e.g.
// "save_image_grid: ").
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& where);

// Why `path` is no folder: "" when it is one; "no such folder", "not a folder", or, when it cannot be looked at (a
// parent without search permission), "cannot look at it: " and the system's reason, since it may well exist.
std::string folder_problem(const std::string& path);

}  // namespace atelier::began
