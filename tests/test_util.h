// Helpers shared by the test files: error-message checks, temporary directories, whole-file byte I/O, a scoped thread
// count and CPU convolution algorithm, the relative L2 error, bit-for-bit tensor comparison.
#pragma once

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <stdlib.h>

#include "backends/conv_algo.h"
#include "backends/error.h"
#include "backends/precision.h"
#include "backends/thread_pool.h"
#include "tensor/grad_mode.h"
#include "tensor/tensor.h"

namespace atelier::testing {

// Runs f and expects an atelier::Error whose message contains every fragment.
template <typename F>
void check_throws_with(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    FAIL("expected an atelier::Error");
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& frag : fragments) {
      INFO("message: " << msg);
      INFO("expected fragment: " << frag);
      CHECK(msg.find(frag) != std::string::npos);
    }
  }
}

// The error message of fn(), or "" if it does not throw.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The fraction of rows of `logits` (N, C) whose argmax is the int64 label.
inline double argmax_accuracy(const Tensor& logits, const Tensor& labels) {
  NoGradGuard no_grad;
  std::vector<int64_t> predicted = logits.argmax(1).to_vector<int64_t>();
  std::vector<int64_t> truth = labels.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(truth.size());
}

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/atelier-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
  // The names in the directory, sorted.
  std::set<std::string> list() const {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path)) names.insert(e.path().filename().string());
    return names;
  }
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Restores the thread pool's size at scope exit, for a test that changes it.
struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
  ThreadCountGuard() = default;
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;
};

// Sets an environment variable for the scope (std::nullopt unsets it) and puts back what was there at scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    set(value);
  }
  ~ScopedEnv() { set(saved_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> saved_;
};

// Sets a library-wide setting (read by Get, written by Set) for the scope and restores the previous value at scope
// exit.
template <typename T, T (*Get)(), void (*Set)(T)>
struct SettingScope {
  T saved = Get();
  explicit SettingScope(T value) { Set(value); }
  ~SettingScope() { Set(saved); }
  SettingScope(const SettingScope&) = delete;
  SettingScope& operator=(const SettingScope&) = delete;
};
// The convolution algorithm (both backends, backends/conv_algo.h) and the library precision (backends/precision.h).
using ConvAlgoScope = SettingScope<ConvAlgo, conv_algo, set_conv_algo>;
using PrecisionScope = SettingScope<Precision, precision, set_precision>;

// The relative L2 error ||got - want|| / ||want|| (||got - want|| where want is all zeros), over the elements in
// order: the figure the precision and Winograd tests state.
inline double relative_l2(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// The same over two tensors' elements, read as float64.
inline double relative_l2(const Tensor& got, const Tensor& want) {
  return relative_l2(got.to(DType::Float64).to_vector<double>(), want.to(DType::Float64).to_vector<double>());
}

// True when a and b have the same dtype, shape and elements bit for bit (read back to the host), except that a
// NaN matches any NaN: NaN bits (sign, payload) are no backend's promise. A GPU has one float32 NaN, 0x7fffffff,
// which every float32 NaN it computes or converts becomes (a cast from float64 too), where the CPU keeps
// 0x7fc00000. -0.0 and 0.0 still differ.
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  const size_t size = dtype_size(x.dtype());
  const auto* p = static_cast<const unsigned char*>(x.raw_data());
  const auto* q = static_cast<const unsigned char*>(y.raw_data());
  for (size_t i = 0; i < static_cast<size_t>(x.numel()); ++i, p += size, q += size) {
    if (std::memcmp(p, q, size) == 0) continue;
    if (x.dtype() == DType::Float32) {
      float u = 0, v = 0;
      std::memcpy(&u, p, size);
      std::memcpy(&v, q, size);
      if (std::isnan(u) && std::isnan(v)) continue;
    } else if (x.dtype() == DType::Float64) {
      double u = 0, v = 0;
      std::memcpy(&u, p, size);
      std::memcpy(&v, q, size);
      if (std::isnan(u) && std::isnan(v)) continue;
    }
    return false;
  }
  return true;
}

}  // namespace atelier::testing
