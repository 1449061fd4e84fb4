// IDX reading and writing through zlib's gz* functions, which read gzip and plain files alike.
#include "nn/data/idx.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <sys/stat.h>
#include <zlib.h>

#include "backends/error.h"

namespace atelier::nn {
namespace {

constexpr uint8_t kTypeUByte = 0x08;

// The gzFile of one open file, closed on every path out.
class GzFile {
 public:
  GzFile(const std::string& path, const char* mode) : file_(gzopen(path.c_str(), mode)) {}
  ~GzFile() {
    if (file_) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  gzFile get() const { return file_; }
  // Closes now, returning zlib's status (a write error may surface only here).
  int close() {
    int rc = gzclose(file_);
    file_ = nullptr;
    return rc;
  }

 private:
  gzFile file_;
};

std::string gz_error_text(gzFile f) {
  int errnum = Z_OK;
  const char* msg = gzerror(f, &errnum);
  if (errnum == Z_ERRNO) return std::strerror(errno);
  return msg ? msg : "unknown zlib error";
}

// Reads up to `bytes` (in chunks: gzread takes an unsigned int and returns an int); returns how many it got,
// fewer only at the end of the data. A zlib error (corrupt or cut-off gzip stream) throws.
size_t read_some(gzFile f, void* data, size_t bytes, const std::string& path, const char* what) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < bytes) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - got, 1u << 30));
    int n = gzread(f, p + got, chunk);
    ATELIER_CHECK(n >= 0, "read_idx: '" << path << "': cannot read " << what << ": " << gz_error_text(f)
                                        << " (corrupt or truncated gzip data?)");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  struct stat st {};
  ATELIER_CHECK_ERRNO(::stat(path.c_str(), &st) == 0, "read_idx: '" << path << "'");
  ATELIER_CHECK(S_ISREG(st.st_mode), "read_idx: '" << path << "': not a regular file");
  GzFile file(path, "rb");
  ATELIER_CHECK_ERRNO(file.get() != nullptr, "read_idx: '" << path << "': cannot open");
  gzFile f = file.get();

  uint8_t magic[4];
  ATELIER_CHECK(read_some(f, magic, 4, path, "the magic number") == 4,
                "read_idx: '" << path << "': truncated: shorter than the 4-byte magic number");
  ATELIER_CHECK(magic[0] == 0 && magic[1] == 0, "read_idx: '" << path << "': bad magic number (first bytes "
                                                              << int(magic[0]) << ", " << int(magic[1])
                                                              << ", expected 0, 0): not an IDX file");
  ATELIER_CHECK(magic[2] == kTypeUByte, "read_idx: '" << path << "': element type 0x" << std::hex << int(magic[2])
                                                      << std::dec
                                                      << " is not supported (only 0x08, unsigned byte, is read)");
  const int ndim = magic[3];
  ATELIER_CHECK(ndim >= 1, "read_idx: '" << path << "': the magic number says 0 dimensions");

  IdxArray out;
  std::vector<uint8_t> dim_bytes(static_cast<size_t>(4 * ndim));
  ATELIER_CHECK(read_some(f, dim_bytes.data(), dim_bytes.size(), path, "the dimensions") == dim_bytes.size(),
                "read_idx: '" << path << "': truncated: the header ends before its " << ndim << " dimensions");
  uint64_t numel = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint8_t* b = &dim_bytes[static_cast<size_t>(4 * d)];
    const uint64_t v = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
    out.dims.push_back(static_cast<int64_t>(v));
    // Each dimension is below 2^32 and there are at most 255: refuse products past 2^62 before multiplying.
    ATELIER_CHECK(v == 0 || numel <= (uint64_t{1} << 62) / v,
                  "read_idx: '" << path << "': the dimensions multiply to more than 2^62 elements");
    numel *= v;
  }
  ATELIER_CHECK(numel <= static_cast<uint64_t>(SIZE_MAX), "read_idx: '" << path << "': too large for memory");

  // Never allocate what the header merely claims: a 12-byte file may claim 2^62 bytes. A plain file's data is its
  // size less the header, known before reading; a gzip stream's size is known only by decompressing it, so it is
  // read in bounded chunks and the buffer grows only with bytes that actually arrived.
  const uint64_t header_bytes = 4 + 4 * static_cast<uint64_t>(ndim);
  if (gzdirect(f)) {
    const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
    const uint64_t held = file_bytes > header_bytes ? file_bytes - header_bytes : 0;
    ATELIER_CHECK(held >= numel, "read_idx: '" << path << "': truncated: the dimensions promise " << numel
                                               << " bytes of data, the file holds " << held << " (" << file_bytes
                                               << " bytes in all)");
    out.data.resize(static_cast<size_t>(numel));
    const size_t got = read_some(f, out.data.data(), out.data.size(), path, "the data");
    ATELIER_CHECK(got == out.data.size(), "read_idx: '" << path << "': truncated: the dimensions promise " << numel
                                                        << " bytes of data, the file holds " << got);
  } else {
    constexpr uint64_t kChunk = uint64_t{16} << 20;
    while (out.data.size() < numel) {
      const size_t before = out.data.size();
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kChunk, numel - before));
      out.data.resize(before + chunk);  // grows geometrically: amortised linear copying
      const size_t got = read_some(f, out.data.data() + before, chunk, path, "the data");
      out.data.resize(before + got);
      if (got < chunk) break;
    }
    ATELIER_CHECK(out.data.size() == numel, "read_idx: '" << path << "': truncated: the dimensions promise " << numel
                                                          << " bytes of data, the gzip stream holds "
                                                          << out.data.size());
    out.data.shrink_to_fit();
  }
  uint8_t extra;
  ATELIER_CHECK(read_some(f, &extra, 1, path, "past the data") == 0,
                "read_idx: '" << path << "': bytes after the " << numel << " bytes of data the dimensions promise");
  return out;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  const size_t ndim = array.dims.size();
  ATELIER_CHECK(ndim >= 1 && ndim <= 255, "write_idx: '" << path << "': needs 1 to 255 dimensions, got " << ndim);
  uint64_t numel = 1;
  std::vector<uint8_t> header = {0, 0, kTypeUByte, static_cast<uint8_t>(ndim)};
  for (int64_t d : array.dims) {
    ATELIER_CHECK(d >= 0 && d <= int64_t{UINT32_MAX},
                  "write_idx: '" << path << "': dimension " << d << " does not fit in 32 bits");
    numel *= static_cast<uint64_t>(d);
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<uint8_t>(d >> shift));
  }
  ATELIER_CHECK(numel == array.data.size(), "write_idx: '" << path << "': the dimensions hold " << numel
                                                           << " elements, the data " << array.data.size());
  // "T" writes plain bytes through the same gz* calls.
  GzFile file(path, gzip ? "wb" : "wbT");
  ATELIER_CHECK_ERRNO(file.get() != nullptr, "write_idx: '" << path << "': cannot create");
  auto write = [&](const uint8_t* p, size_t bytes) {
    while (bytes > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes, 1u << 30));
      ATELIER_CHECK(gzwrite(file.get(), p, chunk) == static_cast<int>(chunk),
                    "write_idx: '" << path << "': cannot write: " << gz_error_text(file.get()));
      p += chunk;
      bytes -= chunk;
    }
  };
  write(header.data(), header.size());
  write(array.data.data(), array.data.size());
  ATELIER_CHECK(file.close() == Z_OK, "write_idx: '" << path << "': cannot finish writing (disk full?)");
}

}  // namespace atelier::nn
