// IDX files (the MNIST and Fashion-MNIST format), plain or gzip-compressed: a 4-byte magic (0, 0, element type,
// number of dimensions), each dimension as a big-endian uint32, then the elements in row-major order. Only
// unsigned bytes (type 0x08) are read, the type of every MNIST-family file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace atelier::nn {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. (60000, 28, 28) for images, (60000) for labels
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

// Reads `path`, gzip-compressed or not (zlib tells them apart by the gzip magic). Throws atelier::Error naming the
// file and the fault: missing or unreadable file, corrupt gzip stream, bad magic, an element type other than 0x08,
// zero dimensions, truncated data, or bytes after the data. The size the header claims is checked against the
// file before anything is allocated (a gzip stream is read in bounded chunks, so memory follows the bytes that
// actually arrive): a 12-byte file claiming 2^30 bytes is refused, not zero-filled.
IdxArray read_idx(const std::string& path);

// Writes `array` as an IDX file of unsigned bytes, gzip-compressed when `gzip` is true (tests and tools make small
// data sets with it). Requires data.size() == prod(dims), 1 to 255 dims, each < 2^32.
void write_idx(const std::string& path, const IdxArray& array, bool gzip);

}  // namespace atelier::nn
