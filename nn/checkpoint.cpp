// Safetensors reading and writing (nn/checkpoint.h): the byte layout, the atomic write, and the reader's checks,
// each of which names the file and the fault.
#include "nn/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/error.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {
namespace {

// Tensor bytes go to and from the file as they are in memory.
static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; atelier copies bytes as-is");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
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

// ---------------------------------------------------------------------------------------------------------------
// Writing

// The directory holding `path` ("." for a bare file name): the temporary file goes there so rename() is atomic.
std::string directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void write_all(int fd, const void* data, size_t bytes, const std::string& path, const std::string& tmp) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;  // write() made no progress without saying why
    ATELIER_CHECK_ERRNO(n > 0, "save_safetensors: '" << path << "': cannot write the temporary file '" << tmp << "'");
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

// Removes the temporary file unless the write succeeded (release() after the rename).
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string tmp) : tmp_(std::move(tmp)) {}
  ~TempFileGuard() {
    if (fd_ >= 0) ::close(fd_);
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
  }
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void set_fd(int fd) { fd_ = fd; }
  int close_fd() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void release() { tmp_.clear(); }

 private:
  std::string tmp_;
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------------------------
// Reading

// Reads exactly `bytes` at `offset`; a short read means the file changed under us or the disk failed.
void read_at(int fd, void* data, size_t bytes, uint64_t offset, const std::string& path, const char* what) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    ATELIER_CHECK_ERRNO(n >= 0, "load_safetensors: '" << path << "': cannot read " << what);
    ATELIER_CHECK(n > 0, "load_safetensors: '" << path << "': unexpected end of file while reading " << what);
    p += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

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

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Checks one tensor entry of the header and returns it parsed.
Entry parse_entry(const std::string& path, const std::string& name, const Json& value) {
  const std::string where = "load_safetensors: '" + path + "': tensor '" + name + "': ";
  ATELIER_CHECK(value.is_object(), where << "entry is not a JSON object (got " << value.type_name() << ")");
  Entry e;
  e.name = name;

  auto dtype_it = value.find("dtype");
  ATELIER_CHECK(dtype_it != value.end(), where << "missing field \"dtype\"");
  ATELIER_CHECK(dtype_it->is_string(),
                where << "field \"dtype\" is not a string (got " << dtype_it->type_name() << ")");
  const std::string& dtype = dtype_it->get_ref<const std::string&>();
  if (!supported_dtype(dtype, &e.dtype)) {
    ATELIER_CHECK(!unsupported_spec_dtype(dtype), "load_safetensors: '" << path << "': unsupported dtype " << dtype
                                                                        << " for tensor '" << name
                                                                        << "' (atelier reads F32, F64, I64, U8, BOOL)");
    ATELIER_FAIL(where << "unknown dtype \"" << dtype << "\": not a safetensors dtype");
  }

  auto shape_it = value.find("shape");
  ATELIER_CHECK(shape_it != value.end(), where << "missing field \"shape\"");
  ATELIER_CHECK(shape_it->is_array(), where << "field \"shape\" is not an array (got " << shape_it->type_name() << ")");
  for (const Json& d : *shape_it) {
    ATELIER_CHECK(d.is_number_unsigned(),
                  where << "field \"shape\" holds " << d.dump() << ", not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    ATELIER_CHECK(v <= static_cast<uint64_t>(INT64_MAX), where << "dimension " << v << " in \"shape\" is too large");
    e.shape.push_back(static_cast<int64_t>(v));
  }

  auto off_it = value.find("data_offsets");
  ATELIER_CHECK(off_it != value.end(), where << "missing field \"data_offsets\"");
  ATELIER_CHECK(off_it->is_array() && off_it->size() == 2,
                where << "field \"data_offsets\" is not an array of 2 integers (got " << off_it->dump() << ")");
  for (const Json& o : *off_it) {
    ATELIER_CHECK(o.is_number_unsigned(),
                  where << "field \"data_offsets\" holds " << o.dump() << ", not a non-negative integer");
  }
  e.begin = (*off_it)[0].get<uint64_t>();
  e.end = (*off_it)[1].get<uint64_t>();
  ATELIER_CHECK(e.begin <= e.end, where << "data_offsets [" << e.begin << ", " << e.end << ") end before they begin");

  // numel x element size, refusing overflow: a hostile shape must not wrap around to a small byte count.
  uint64_t bytes = dtype_size(e.dtype);
  for (int64_t d : e.shape) {
    ATELIER_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes),
                  where << "shape " << shape_str(e.shape) << " of " << dtype << " overflows 64 bits of bytes");
  }
  // A zero-sized dimension makes the byte count 0 whatever the others are, but row-major strides multiply the
  // non-zero dimensions, and they must fit in int64.
  uint64_t stride_product = 1;
  for (int64_t d : e.shape) {
    if (d == 0) continue;
    ATELIER_CHECK(
        !__builtin_mul_overflow(stride_product, static_cast<uint64_t>(d), &stride_product) &&
            stride_product <= static_cast<uint64_t>(INT64_MAX),
        where << "shape " << shape_str(e.shape) << " is too large (its non-zero dimensions multiply past 2^63)");
  }
  ATELIER_CHECK(e.end - e.begin == bytes, where << "data_offsets [" << e.begin << ", " << e.end << ") hold "
                                                << e.end - e.begin << " bytes, but shape " << shape_str(e.shape)
                                                << " of " << dtype << " needs " << bytes);
  return e;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "save_safetensors: '" + path + "': ";

  // Everything that can be refused is refused before a file exists.
  std::set<std::string> seen;
  std::vector<Tensor> host;  // contiguous CPU copies (or the tensors themselves when already so)
  host.reserve(tensors.size());
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    ATELIER_CHECK(!name.empty(), where << "a tensor has an empty name");
    ATELIER_CHECK(name != kMetadataKey, where << "the name \"" << kMetadataKey << "\" is reserved for metadata");
    ATELIER_CHECK(seen.insert(name).second, where << "duplicate tensor name '" << name << "'");
    ATELIER_CHECK(t.defined(), where << "tensor '" << name << "' is undefined");
    Tensor h = raw::contiguous(t.device().is_cpu() ? t : raw::to_device(t, Device::cpu()));
    uint64_t bytes = static_cast<uint64_t>(h.numel()) * dtype_size(h.dtype());
    header[name] = {
        {"dtype", safetensors_dtype(h.dtype())}, {"shape", h.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(std::move(h));
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    // dump() refuses strings that are not valid UTF-8 (a name or a metadata entry).
    ATELIER_FAIL(where << "a tensor name or metadata string is not valid UTF-8 (" << e.what() << ")");
  }
  json.append((8 - (8 + json.size()) % 8) % 8, ' ');
  const uint64_t header_len = json.size();

  // A name unique per process and per call, so concurrent saves (threads or processes) never share a temp file.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ATELIER_CHECK_ERRNO(fd >= 0, where << "cannot create the temporary file '" << tmp << "'");
  TempFileGuard guard(tmp);
  guard.set_fd(fd);

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(header_len >> (8 * i));
  write_all(fd, len_bytes, 8, path, tmp);
  write_all(fd, json.data(), json.size(), path, tmp);
  for (const Tensor& h : host) {
    write_all(fd, h.raw_data(), static_cast<size_t>(h.numel()) * dtype_size(h.dtype()), path, tmp);
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at a file whose data never hit the disk.
  ATELIER_CHECK_ERRNO(::fsync(fd) == 0, where << "cannot fsync '" << tmp << "'");
  ATELIER_CHECK_ERRNO(guard.close_fd() == 0, where << "cannot close '" << tmp << "'");
  ATELIER_CHECK_ERRNO(::rename(tmp.c_str(), path.c_str()) == 0,
                      where << "cannot rename '" << tmp << "' to '" << path << "'");
  guard.release();
  // fsync the directory so the rename itself survives a crash. The new file is complete either way, so a failure
  // here is still an error (the caller asked for a durable checkpoint) but leaves no temporary behind.
  const std::string dir = directory_of(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ATELIER_CHECK_ERRNO(dfd >= 0, where << "cannot open the directory '" << dir << "' to fsync it");
  FileDescriptor dir_fd(dfd);
  ATELIER_CHECK_ERRNO(::fsync(dfd) == 0, where << "cannot fsync the directory '" << dir << "'");
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  ATELIER_FAIL("SafetensorsFile: no tensor named '" << name << "'");
}

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string where = "load_safetensors: '" + path + "': ";
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ATELIER_CHECK_ERRNO(fd.get() >= 0, where << "cannot open");
  struct stat st {};
  ATELIER_CHECK_ERRNO(::fstat(fd.get(), &st) == 0, where << "cannot stat");
  ATELIER_CHECK(S_ISREG(st.st_mode), where << "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  // 1. The header length.
  ATELIER_CHECK(file_size >= 8, where << "file is " << file_size
                                      << " bytes, shorter than the 8-byte header length; not a safetensors file");
  unsigned char len_bytes[8];
  read_at(fd.get(), len_bytes, 8, 0, path, "the header length");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len_bytes[i]) << (8 * i);
  ATELIER_CHECK(header_len <= kMaxHeaderBytes,
                where << "header length " << header_len << " exceeds the 100 MB limit; not a safetensors file?");
  ATELIER_CHECK(header_len <= file_size - 8, where << "header length " << header_len
                                                   << " runs past the end of the file (" << file_size << " bytes)");

  // 2. The JSON header: an object, parsed with every duplicate key caught.
  std::string json(header_len, '\0');
  read_at(fd.get(), json.data(), header_len, 8, path, "the header");
  ATELIER_CHECK(!json.empty() && json[0] == '{', where << "header is not a JSON object (it must start with '{')");
  DuplicateKeyFinder finder;
  Json header;
  try {
    header = Json::parse(json, [&finder](int, nlohmann::json::parse_event_t event, Json& parsed) {
      return finder.on_event(event, parsed);
    });
  } catch (const nlohmann::json::exception& e) {
    ATELIER_FAIL(where << "header is not valid JSON: " << e.what());
  }
  ATELIER_CHECK(header.is_object(), where << "header is not a JSON object");
  if (!finder.duplicate.empty()) {
    if (finder.parent.empty()) {
      ATELIER_FAIL(where << "duplicate name '" << finder.duplicate << "' in the header");
    }
    ATELIER_FAIL(where << "duplicate key '" << finder.duplicate << "' in the entry of '" << finder.parent << "'");
  }

  // 3. Entries and metadata.
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      ATELIER_CHECK(value.is_object(), where << "\"" << kMetadataKey << "\" is not an object of strings (got "
                                             << value.type_name() << ")");
      for (const auto& [mk, mv] : value.items()) {
        ATELIER_CHECK(mv.is_string(), where << "\"" << kMetadataKey << "\" entry '" << mk << "' is not a string (got "
                                            << mv.dump() << ")");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value));
  }

  // 4. The offsets must tile [0, data_len) exactly: sorted by position, each tensor begins where the last ended.
  const uint64_t data_len = file_size - 8 - header_len;
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) {
    ATELIER_CHECK(e.end <= data_len, where << "tensor '" << e.name << "': data_offsets [" << e.begin << ", " << e.end
                                           << ") run past the end of the data (" << data_len << " bytes)");
    by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    ATELIER_CHECK(e->begin >= cursor, where << "tensor '" << e->name << "': data_offsets [" << e->begin << ", "
                                            << e->end << ") overlap tensor '" << previous->name << "' ["
                                            << previous->begin << ", " << previous->end << ")");
    ATELIER_CHECK(e->begin == cursor, where << "hole in the data: bytes [" << cursor << ", " << e->begin
                                            << ") before tensor '" << e->name << "' belong to no tensor");
    cursor = e->end;
    previous = e;
  }
  ATELIER_CHECK(cursor == data_len, where << "hole in the data: bytes [" << cursor << ", " << data_len
                                          << ") at the end belong to no tensor");

  // 5. The data, straight into each tensor's storage.
  const uint64_t data_start = 8 + header_len;
  for (const Entry& e : entries) {
    Tensor t = raw::empty(e.shape, e.dtype, Device::cpu());
    if (e.end > e.begin) {
      read_at(fd.get(), t.raw_data(), e.end - e.begin, data_start + e.begin, path, ("tensor '" + e.name + "'").c_str());
    }
    if (e.dtype == DType::Bool) {
      // Any byte but 0 or 1 would be an invalid C++ bool.
      const unsigned char* b = static_cast<const unsigned char*>(t.raw_data());
      for (uint64_t i = 0; i < e.end - e.begin; ++i) {
        ATELIER_CHECK(b[i] <= 1, where << "tensor '" << e.name << "' (BOOL) holds byte " << static_cast<int>(b[i])
                                       << " at element " << i << ", not 0 or 1");
      }
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

namespace {
constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimPrefix = "optim.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const std::map<std::string, std::string>& metadata) {
  NamedTensors all;
  for (auto& [name, t] : model.state_dict()) all.emplace_back(kModelPrefix + name, t);
  if (optimizer) {
    for (auto& [name, t] : optimizer->state_dict()) all.emplace_back(kOptimPrefix + name, t);
  }
  save_safetensors(path, all, metadata);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer) {
  SafetensorsFile file = load_safetensors(path);
  NamedTensors model_state, optim_state;
  std::vector<std::string> stray;
  const std::string model_prefix = kModelPrefix, optim_prefix = kOptimPrefix;
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, model_prefix)) {
      model_state.emplace_back(name.substr(model_prefix.size()), t);
    } else if (starts_with(name, optim_prefix)) {
      optim_state.emplace_back(name.substr(optim_prefix.size()), t);
    } else {
      stray.push_back(name);
    }
  }
  if (!stray.empty()) {
    std::ostringstream os;
    for (size_t i = 0; i < stray.size(); ++i) os << (i ? ", " : "") << "'" << stray[i] << "'";
    ATELIER_FAIL("load_checkpoint: '" << path
                                      << "': unexpected tensors with neither the \"model.\" nor the \"optim.\" "
                                         "prefix: "
                                      << os.str());
  }

  // A snapshot of the model, to undo its load if the optimizer's then fails (each load is all-or-nothing alone).
  NamedTensors snapshot;
  if (optimizer) {
    for (auto& [name, t] : model.state_dict()) snapshot.emplace_back(name, raw::clone(t));
  }
  try {
    model.load_state_dict(model_state);
  } catch (const Error& e) {
    ATELIER_FAIL("load_checkpoint: '" << path << "': the model does not match: " << e.what());
  }
  if (optimizer) {
    try {
      optimizer->load_state_dict(optim_state);
    } catch (const Error& e) {
      model.load_state_dict(snapshot);
      ATELIER_FAIL("load_checkpoint: '" << path << "': the optimizer does not match: " << e.what());
    }
  }
  return file.metadata;
}

}  // namespace atelier::nn
