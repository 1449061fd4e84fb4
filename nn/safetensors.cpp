// The safetensors codec (nn/safetensors.h): the byte layout, the atomic write, and the reader's checks, each of
// which names the file and the fault. Both directions are a short list of steps, one helper each.
#include "nn/safetensors.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {
namespace {

// Tensor bytes go to and from the file as they are in memory.
static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; atelier copies bytes as-is");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
// A valid header nests 3 deep (the header object > a tensor entry > its "shape" array). Unknown fields may hold
// more, so the limit is generous, but bounded: a header nested 100,000 deep is refused before anything walks it
// recursively (nlohmann's dump() and comparisons recurse once per level).
constexpr int kMaxHeaderDepth = 64;
// Values and names quoted in error messages are cut to this many characters: a hostile header must not turn one
// message into megabytes.
constexpr size_t kMaxQuotedChars = 80;
constexpr const char* kMetadataKey = "__metadata__";

// ordered_json keeps keys in insertion (file) order, so tensors come back in the order they were written.
using Json = nlohmann::ordered_json;

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

// The dtype of a spec name atelier holds; false for every other name.
bool supported_dtype(const std::string& name, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {{"F32", DType::Float32},
                                                         {"F64", DType::Float64},
                                                         {"I64", DType::Int64},
                                                         {"U8", DType::UInt8},
                                                         {"BOOL", DType::Bool}};
  for (const auto& [n, t] : kTable) {
    if (name == n) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Spec dtypes atelier has no DType for: refused as "unsupported", not as "unknown".
bool unsupported_spec_dtype(const std::string& name) {
  static const std::set<std::string> kNames = {"F16",     "BF16",    "I32",     "I16",     "I8",
                                               "U64",     "U32",     "U16",     "F8_E4M3", "F8_E5M2",
                                               "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",      "C64"};
  return kNames.count(name) != 0;
}

// `text` cut to kMaxQuotedChars characters, with what was cut said, for error messages.
std::string brief(const std::string& text, size_t max_chars = kMaxQuotedChars) {
  if (text.size() <= max_chars) return text;
  return text.substr(0, max_chars) + "... (" + std::to_string(text.size()) + " characters)";
}

// A JSON value as error messages quote it: its text, cut short (the header's depth is already bounded).
std::string brief(const Json& value) {
  return brief(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

uint64_t byte_size(const Tensor& t) { return static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype()); }

// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// ---------------------------------------------------------------------------------------------------------------
// Writing: check and lay out everything (nothing touches the disk), then write it atomically.

// What goes into the file: the padded JSON header and the tensors' host bytes in header order.
struct Layout {
  std::string header;        // JSON, padded with spaces so that 8 + header.size() is a multiple of 8
  std::vector<Tensor> data;  // contiguous CPU tensors (copies, or the tensors themselves when already so)
};

// Everything that can be refused is refused here, before a file exists.
Layout lay_out(const std::string& where, const NamedTensors& tensors,
               const std::map<std::string, std::string>& metadata) {
  Layout layout;
  layout.data.reserve(tensors.size());
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = Json(metadata);
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    ATELIER_CHECK(!name.empty(), where << "a tensor has an empty name");
    ATELIER_CHECK(name != kMetadataKey, where << "the name \"" << kMetadataKey << "\" is reserved for metadata");
    ATELIER_CHECK(seen.insert(name).second, where << "duplicate tensor name '" << name << "'");
    ATELIER_CHECK(t.defined(), where << "tensor '" << name << "' is undefined");
    Tensor host = raw::contiguous(t.device().is_cpu() ? t : raw::to_device(t, Device::cpu()));
    const uint64_t end = offset + byte_size(host);
    header[name] = {
        {"dtype", safetensors_dtype(host.dtype())}, {"shape", host.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
    layout.data.push_back(std::move(host));
  }
  try {
    layout.header = header.dump();
  } catch (const nlohmann::json::exception& e) {
    // dump() refuses strings that are not valid UTF-8 (a name or a metadata entry).
    ATELIER_FAIL(where << "a tensor name or metadata string is not valid UTF-8 (" << e.what() << ")");
  }
  layout.header.append((8 - (8 + layout.header.size()) % 8) % 8, ' ');
  return layout;
}

// The directory holding `path` ("." for a bare file name): the temporary file goes there so rename() is atomic.
std::string directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Temporary files are named ".atelier-tmp.<pid>.<n>" in the target's directory: short, so any file name of legal
// length can be saved (a suffix on the target's own name could push it past NAME_MAX), and recognisable, so the
// files of a save that was killed can be found and removed later.
constexpr const char* kTempPrefix = ".atelier-tmp.";

// Removes the temporary files that saves of dead processes left in `dir`: names "<kTempPrefix><pid>.<n>" whose
// pid is no running process. Files of live processes (another save in progress) are left alone; a pid reused by
// an unrelated process only delays the clean-up. Best effort: an unreadable directory or a failed unlink is no
// error here (the save itself reports real I/O faults).
void remove_stale_temp_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  const size_t prefix_len = std::strlen(kTempPrefix);
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name.compare(0, prefix_len, kTempPrefix) != 0) continue;
    const char* digits = name.c_str() + prefix_len;
    char* end = nullptr;
    errno = 0;
    const long pid = std::strtol(digits, &end, 10);
    if (errno != 0 || end == digits || *end != '.' || pid <= 0 || pid > INT32_MAX) continue;
    if (pid == ::getpid()) continue;  // this process's own saves clean up after themselves
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to probe)
    ::unlinkat(::dirfd(d), name.c_str(), 0);
  }
  ::closedir(d);
}

// A temporary file beside the target, removed on destruction unless release()d after the rename.
class TempFile {
 public:
  // A name unique per process and per call, so concurrent saves (threads or processes) never share a temp file.
  TempFile(const std::string& path, const std::string& where) {
    static std::atomic<uint64_t> counter{0};
    const std::string dir = directory_of(path);
    name_ = (dir == "/" ? dir : dir + "/") + kTempPrefix + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ATELIER_CHECK_ERRNO(fd_ >= 0, where << "cannot create the temporary file '" << name_ << "'");
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!name_.empty()) ::unlink(name_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& name() const { return name_; }

  void write(const void* data, size_t bytes, const std::string& where) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      ssize_t n = ::write(fd_, p, bytes);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = EIO;  // write() made no progress without saying why
      ATELIER_CHECK_ERRNO(n > 0, where << "cannot write the temporary file '" << name_ << "'");
      p += n;
      bytes -= static_cast<size_t>(n);
    }
  }

  // fsync before rename: otherwise a crash can leave the new name pointing at a file whose data never hit the disk.
  void sync_and_close(const std::string& where) {
    ATELIER_CHECK_ERRNO(::fsync(fd_) == 0, where << "cannot fsync '" << name_ << "'");
    int rc = ::close(fd_);
    fd_ = -1;
    ATELIER_CHECK_ERRNO(rc == 0, where << "cannot close '" << name_ << "'");
  }

  void release() { name_.clear(); }

 private:
  std::string name_;
  int fd_ = -1;
};

// fsync the directory so a rename in it survives a crash.
void sync_directory(const std::string& dir, const std::string& where) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ATELIER_CHECK_ERRNO(fd.get() >= 0, where << "cannot open the directory '" << dir << "' to fsync it");
  ATELIER_CHECK_ERRNO(::fsync(fd.get()) == 0, where << "cannot fsync the directory '" << dir << "'");
}

// Writes a temporary file beside `path` with `fill`, then renames it over `path`.
template <class Fill>
void write_atomically(const std::string& path, const std::string& where, const Fill& fill) {
  remove_stale_temp_files(directory_of(path));
  TempFile tmp(path, where);
  fill(tmp);
  tmp.sync_and_close(where);
  ATELIER_CHECK_ERRNO(::rename(tmp.name().c_str(), path.c_str()) == 0,
                      where << "cannot rename '" << tmp.name() << "' to '" << path << "'");
  tmp.release();
  // The new file is complete either way, so a failure here is still an error (the caller asked for a durable
  // checkpoint) but leaves no temporary behind.
  sync_directory(directory_of(path), where);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: the header length, the JSON header, its entries, the offsets' tiling, then the data.

// Reads exactly `bytes` at `offset`; a short read means the file changed under us or the disk failed.
void read_at(int fd, void* data, size_t bytes, uint64_t offset, const std::string& where, const std::string& what) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    ATELIER_CHECK_ERRNO(n >= 0, where << "cannot read " << what);
    ATELIER_CHECK(n > 0, where << "unexpected end of file while reading " << what);
    p += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

// The open file and its size in bytes.
struct OpenFile {
  FileDescriptor fd;
  uint64_t size;
};

OpenFile open_regular_file(const std::string& path, const std::string& where) {
  // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer; no effect on files.
  OpenFile file{FileDescriptor(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)), 0};
  ATELIER_CHECK_ERRNO(file.fd.get() >= 0, where << "cannot open");
  struct stat st {};
  ATELIER_CHECK_ERRNO(::fstat(file.fd.get(), &st) == 0, where << "cannot stat");
  ATELIER_CHECK(S_ISREG(st.st_mode), where << "not a regular file");
  file.size = static_cast<uint64_t>(st.st_size);
  return file;
}

// The header's bytes: an 8-byte little-endian length, then that many bytes of JSON.
std::string read_header_text(const OpenFile& file, const std::string& where) {
  ATELIER_CHECK(file.size >= 8, where << "file is " << file.size
                                      << " bytes, shorter than the 8-byte header length; not a safetensors file");
  unsigned char length_bytes[8];
  read_at(file.fd.get(), length_bytes, 8, 0, where, "the header length");
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(length_bytes[i]) << (8 * i);
  ATELIER_CHECK(length <= kMaxHeaderBytes,
                where << "header length " << length << " exceeds the 100 MB limit; not a safetensors file?");
  ATELIER_CHECK(length <= file.size - 8,
                where << "header length " << length << " runs past the end of the file (" << file.size << " bytes)");
  std::string text(length, '\0');
  read_at(file.fd.get(), text.data(), length, 8, where, "the header");
  return text;
}

// nlohmann::json keeps the last of two equal keys silently; a parse callback sees every key first. One set of keys
// per open object; the first duplicate is remembered (with the key of its enclosing object, e.g. the tensor whose
// entry repeats "dtype") and reported after parsing.
struct DuplicateKeyFinder {
  struct Frame {
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> frames;
  std::string duplicate;  // empty: none found
  std::string parent;     // the key of the object holding the duplicate; empty at the top level

  bool on_event(nlohmann::json::parse_event_t event, const Json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      frames.emplace_back();
    } else if (event == Event::object_end) {
      if (!frames.empty()) frames.pop_back();
    } else if (event == Event::key && !frames.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      Frame& top = frames.back();
      if (!top.keys.insert(key).second && duplicate.empty()) {
        duplicate = key;
        parent = frames.size() >= 2 ? frames[frames.size() - 2].last_key : "";
      }
      top.last_key = key;
    }
    return true;  // keep everything
  }
};

// The header as JSON: an object, at most kMaxHeaderDepth deep, with every duplicate key caught.
Json parse_header(const std::string& text, const std::string& where) {
  ATELIER_CHECK(!text.empty() && text[0] == '{', where << "header is not a JSON object (it must start with '{')");
  // JSON text never holds a NUL byte (inside strings it must be escaped), and a parser that stops at one would
  // accept whatever follows it unread.
  const size_t nul = text.find('\0');
  ATELIER_CHECK(nul == std::string::npos,
                where << "header holds a NUL byte at offset " << nul << " of " << text.size() << "; not valid JSON");
  DuplicateKeyFinder finder;
  bool too_deep = false;
  Json header;
  try {
    header = Json::parse(text, [&](int depth, nlohmann::json::parse_event_t event, Json& parsed) {
      using Event = nlohmann::json::parse_event_t;
      // `depth` counts the containers already open; stop at the first one past the limit. Throwing from here is
      // how nlohmann's callback aborts a parse (returning false would only discard the value).
      if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxHeaderDepth) {
        too_deep = true;
        throw std::runtime_error("too deep");
      }
      return finder.on_event(event, parsed);
    });
  } catch (const nlohmann::json::exception& e) {
    ATELIER_FAIL(where << "header is not valid JSON: " << brief(std::string(e.what()), 3 * kMaxQuotedChars));
  } catch (const std::runtime_error&) {
    if (!too_deep) throw;
    ATELIER_FAIL(where << "header nests JSON more than " << kMaxHeaderDepth
                       << " levels deep; a safetensors header needs 3");
  }
  ATELIER_CHECK(header.is_object(), where << "header is not a JSON object");
  if (!finder.duplicate.empty()) {
    if (finder.parent.empty())
      ATELIER_FAIL(where << "duplicate name '" << brief(finder.duplicate) << "' in the header");
    ATELIER_FAIL(where << "duplicate key '" << brief(finder.duplicate) << "' in the entry of '" << brief(finder.parent)
                       << "'");
  }
  return header;
}

// "__metadata__": an object of strings.
std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& where) {
  ATELIER_CHECK(value.is_object(),
                where << "\"" << kMetadataKey << "\" is not an object of strings (got " << value.type_name() << ")");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, entry] : value.items()) {
    ATELIER_CHECK(entry.is_string(), where << "\"" << kMetadataKey << "\" entry '" << brief(key)
                                           << "' is not a string (got " << brief(entry) << ")");
    metadata[key] = entry.get<std::string>();
  }
  return metadata;
}

// One tensor entry of the header, checked.
struct Entry {
  std::string name;
  std::string shown;  // the name as messages quote it (brief)
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// The field `key` of a tensor entry, which must exist.
const Json& field(const Json& entry, const char* key, const std::string& where) {
  auto it = entry.find(key);
  ATELIER_CHECK(it != entry.end(), where << "missing field \"" << key << "\"");
  return *it;
}

DType parse_dtype(const Json& value, const std::string& path, const std::string& name, const std::string& where) {
  ATELIER_CHECK(value.is_string(), where << "field \"dtype\" is not a string (got " << value.type_name() << ")");
  const std::string& dtype = value.get_ref<const std::string&>();
  DType out;
  if (supported_dtype(dtype, &out)) return out;
  ATELIER_CHECK(!unsupported_spec_dtype(dtype), "load_safetensors: '" << path << "': unsupported dtype " << dtype
                                                                      << " for tensor '" << brief(name)
                                                                      << "' (atelier reads F32, F64, I64, U8, BOOL)");
  ATELIER_FAIL(where << "unknown dtype \"" << brief(dtype) << "\": not a safetensors dtype");
}

Shape parse_shape(const Json& value, const std::string& where) {
  ATELIER_CHECK(value.is_array(), where << "field \"shape\" is not an array (got " << value.type_name() << ")");
  Shape shape;
  for (const Json& d : value) {
    ATELIER_CHECK(d.is_number_unsigned(),
                  where << "field \"shape\" holds " << brief(d) << ", not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    ATELIER_CHECK(v <= static_cast<uint64_t>(INT64_MAX), where << "dimension " << v << " in \"shape\" is too large");
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

// numel x element size, refusing overflow: a hostile shape must not wrap around to a small byte count.
uint64_t checked_byte_size(const Shape& shape, DType dtype, const std::string& where) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    ATELIER_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes),
                  where << "shape " << brief(shape_str(shape)) << " of " << safetensors_dtype(dtype)
                        << " overflows 64 bits of bytes");
  }
  // A zero-sized dimension makes the byte count 0 whatever the others are, but row-major strides multiply the
  // non-zero dimensions, and they must fit in int64.
  uint64_t stride_product = 1;
  for (int64_t d : shape) {
    if (d == 0) continue;
    ATELIER_CHECK(
        !__builtin_mul_overflow(stride_product, static_cast<uint64_t>(d), &stride_product) &&
            stride_product <= static_cast<uint64_t>(INT64_MAX),
        where << "shape " << brief(shape_str(shape)) << " is too large (its non-zero dimensions multiply past 2^63)");
  }
  return bytes;
}

Entry parse_entry(const std::string& path, const std::string& name, const Json& value) {
  const std::string where = "load_safetensors: '" + path + "': tensor '" + brief(name) + "': ";
  ATELIER_CHECK(value.is_object(), where << "entry is not a JSON object (got " << value.type_name() << ")");
  Entry e;
  e.name = name;
  e.shown = brief(name);
  e.dtype = parse_dtype(field(value, "dtype", where), path, name, where);
  e.shape = parse_shape(field(value, "shape", where), where);

  const Json& offsets = field(value, "data_offsets", where);
  ATELIER_CHECK(offsets.is_array() && offsets.size() == 2,
                where << "field \"data_offsets\" is not an array of 2 integers (got " << brief(offsets) << ")");
  for (const Json& o : offsets) {
    ATELIER_CHECK(o.is_number_unsigned(),
                  where << "field \"data_offsets\" holds " << brief(o) << ", not a non-negative integer");
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  ATELIER_CHECK(e.begin <= e.end, where << "data_offsets [" << e.begin << ", " << e.end << ") end before they begin");

  const uint64_t bytes = checked_byte_size(e.shape, e.dtype, where);
  ATELIER_CHECK(e.end - e.begin == bytes, where << "data_offsets [" << e.begin << ", " << e.end << ") hold "
                                                << e.end - e.begin << " bytes, but shape " << brief(shape_str(e.shape))
                                                << " of " << safetensors_dtype(e.dtype) << " needs " << bytes);
  return e;
}

// The offsets must tile [0, data_len) exactly: sorted by position, each tensor begins where the last ended.
void check_tiling(const std::vector<Entry>& entries, uint64_t data_len, const std::string& where) {
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) {
    ATELIER_CHECK(e.end <= data_len, where << "tensor '" << e.shown << "': data_offsets [" << e.begin << ", " << e.end
                                           << ") run past the end of the data (" << data_len << " bytes)");
    by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    ATELIER_CHECK(e->begin >= cursor, where << "tensor '" << e->shown << "': data_offsets [" << e->begin << ", "
                                            << e->end << ") overlap tensor '" << previous->shown << "' ["
                                            << previous->begin << ", " << previous->end << ")");
    ATELIER_CHECK(e->begin == cursor, where << "hole in the data: bytes [" << cursor << ", " << e->begin
                                            << ") before tensor '" << e->shown << "' belong to no tensor");
    cursor = e->end;
    previous = e;
  }
  ATELIER_CHECK(cursor == data_len, where << "hole in the data: bytes [" << cursor << ", " << data_len
                                          << ") at the end belong to no tensor");
}

// One tensor's bytes, read straight into a fresh CPU tensor's storage.
Tensor read_tensor(const OpenFile& file, uint64_t data_start, const Entry& e, const std::string& where) {
  Tensor t = raw::empty(e.shape, e.dtype, Device::cpu());
  const uint64_t bytes = e.end - e.begin;
  if (bytes > 0) read_at(file.fd.get(), t.raw_data(), bytes, data_start + e.begin, where, "tensor '" + e.shown + "'");
  if (e.dtype == DType::Bool) {
    // Any byte but 0 or 1 would be an invalid C++ bool.
    const unsigned char* b = static_cast<const unsigned char*>(t.raw_data());
    for (uint64_t i = 0; i < bytes; ++i) {
      ATELIER_CHECK(b[i] <= 1, where << "tensor '" << e.shown << "' (BOOL) holds byte " << static_cast<int>(b[i])
                                     << " at element " << i << ", not 0 or 1");
    }
  }
  return t;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "save_safetensors: '" + path + "': ";
  const Layout layout = lay_out(where, tensors, metadata);
  write_atomically(path, where, [&](TempFile& tmp) {  // the header length, the header, then the data
    unsigned char length[8];
    for (int i = 0; i < 8; ++i)
      length[i] = static_cast<unsigned char>(static_cast<uint64_t>(layout.header.size()) >> (8 * i));
    tmp.write(length, 8, where);
    tmp.write(layout.header.data(), layout.header.size(), where);
    for (const Tensor& t : layout.data) tmp.write(t.raw_data(), byte_size(t), where);
  });
}

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& where) {
  write_atomically(path, where, [&](TempFile& tmp) { tmp.write(bytes.data(), bytes.size(), where); });
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  ATELIER_FAIL("SafetensorsFile: no tensor named '" << name << "'");
}

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string where = "load_safetensors: '" + path + "': ";
  const OpenFile file = open_regular_file(path, where);
  const std::string text = read_header_text(file, where);
  const Json header = parse_header(text, where);

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      out.metadata = parse_metadata(value, where);
    } else {
      entries.push_back(parse_entry(path, key, value));
    }
  }
  const uint64_t data_start = 8 + text.size();
  check_tiling(entries, file.size - data_start, where);
  for (const Entry& e : entries) out.tensors.emplace_back(e.name, read_tensor(file, data_start, e, where));
  return out;
}

std::string metadata_summary(const std::map<std::string, std::string>& metadata) {
  constexpr size_t kShown = 6;  // a training checkpoint has dozens of entries; the first few say what it is
  std::string out;
  size_t shown = 0;
  for (const auto& [key, value] : metadata) {
    if (shown++ == kShown) break;
    out += (out.empty() ? "" : ", ") + key + " " + (value.size() <= 24 ? value : value.substr(0, 24) + "...");
  }
  if (metadata.size() > kShown) out += " and " + std::to_string(metadata.size() - kShown) + " more";
  return out.empty() ? "none" : out;
}

}  // namespace atelier::nn
