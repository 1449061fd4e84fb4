#include "tensor/creation.h"

#include <cmath>
#include <mutex>

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// The default generator: a seed and the next free Philox block of stream 0.
struct DefaultGenerator {
  std::mutex mutex;
  uint64_t seed = 0;
  uint64_t offset = 0;
};

DefaultGenerator& default_generator() {
  static DefaultGenerator generator;
  return generator;
}

Tensor random_tensor(const Shape& shape, RandomKind kind, double a, double b, const RandomKey& key, DType dtype,
                     Device device) {
  ATELIER_CHECK(is_floating(dtype), "random tensors must be float32 or float64, got " << dtype);
  Tensor out = raw::empty(shape, dtype, device);
  launch<PrimitiveOp::random>(
      backend_for(device), "random", out.numel(),
      RandomArgs{dtype, out.numel(), out.raw_data(), kind, key.seed, key.stream, key.offset, a, b});
  return out;
}

}  // namespace

void manual_seed(uint64_t seed) {
  DefaultGenerator& g = default_generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  g.seed = seed;
  g.offset = 0;
}

RandomKey next_random_key(int64_t numel) {
  DefaultGenerator& g = default_generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  RandomKey key{g.seed, 0, g.offset};
  g.offset += static_cast<uint64_t>((numel + 3) / 4);
  return key;
}

Tensor empty(const Shape& shape, DType dtype, Device device) { return raw::empty(shape, dtype, device); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = raw::empty(shape, dtype, device);
  raw::fill_(out, value);
  return out;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  ATELIER_CHECK(step != 0, "arange: step must be non-zero");
  ATELIER_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
                "arange: start, end and step must be finite (got " << start << ", " << end << ", " << step << ")");
  // The count is checked as a double before it becomes an integer (a cast of a value beyond int64 is undefined).
  const double count = std::ceil((end - start) / step);
  ATELIER_CHECK(!(count > 0x1p62), "arange: [" << start << ", " << end << ") in steps of " << step << " has " << count
                                               << " elements, too many for a tensor");
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  // Computed in float64 on the host (the allocator reports a size it cannot serve), then converted and moved.
  Tensor values = raw::empty({n}, DType::Float64, Device::cpu());
  double* v = values.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return raw::to_device(raw::cast(values, dtype), device);
}

Tensor arange(int64_t end, DType dtype) { return arange(0.0, static_cast<double>(end), 1.0, dtype); }

Tensor rand(const Shape& shape, DType dtype, Device device) { return uniform(shape, 0.0, 1.0, dtype, device); }
Tensor randn(const Shape& shape, DType dtype, Device device) { return normal(shape, 0.0, 1.0, dtype, device); }

namespace {

// The default generator's next key for a draw on `device`. Inside a graph capture the draw would be recorded with
// this one key and give the same numbers at every replay (the generator moves once, at capture time): refused.
RandomKey default_key(const Shape& shape, Device device, const char* what) {
  ATELIER_CHECK(!backend_for(device).capturing(),
                what << ": a draw from the default generator inside a graph capture would give the same numbers at "
                        "every replay; draw outside the capture into a tensor the graph reads, or pass a RandomKey "
                        "for fixed numbers");
  return next_random_key(shape_numel(shape));
}

}  // namespace

Tensor uniform(const Shape& shape, double lo, double hi, DType dtype, Device device) {
  return uniform(shape, lo, hi, default_key(shape, device, "uniform"), dtype, device);
}

Tensor normal(const Shape& shape, double mean, double std, DType dtype, Device device) {
  return normal(shape, mean, std, default_key(shape, device, "normal"), dtype, device);
}

Tensor uniform(const Shape& shape, double lo, double hi, const RandomKey& key, DType dtype, Device device) {
  ATELIER_CHECK(lo <= hi, "uniform: lo " << lo << " is greater than hi " << hi);
  return random_tensor(shape, RandomKind::Uniform, lo, hi, key, dtype, device);
}

Tensor normal(const Shape& shape, double mean, double std, const RandomKey& key, DType dtype, Device device) {
  ATELIER_CHECK(std >= 0, "normal: std must be non-negative, got " << std);
  return random_tensor(shape, RandomKind::Normal, mean, std, key, dtype, device);
}

template <typename T>
Tensor from_vector(const std::vector<T>& data, const Shape& shape, DType dtype, Device device) {
  ATELIER_CHECK(
      static_cast<int64_t>(data.size()) == shape_numel(shape),
      "from_vector: " << data.size() << " values for shape " << shape << " (" << shape_numel(shape) << " elements)");
  // Wrap the host data as a tensor of T on the CPU, then convert and move in one copy_.
  Tensor host = raw::empty(shape, dtype_of<T>(), Device::cpu());
  if (!data.empty()) std::copy(data.begin(), data.end(), host.data_ptr<T>());
  if (dtype == dtype_of<T>() && device.is_cpu()) return host;
  Tensor out = raw::empty(shape, dtype, device);
  raw::copy_(out, host);
  return out;
}

template Tensor from_vector<float>(const std::vector<float>&, const Shape&, DType, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, DType, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, DType, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, DType, Device);

template <>
Tensor from_vector<bool>(const std::vector<bool>& data, const Shape& shape, DType dtype, Device device) {
  // std::vector<bool> is bit-packed: go through bytes.
  std::vector<uint8_t> bytes(data.begin(), data.end());
  return raw::cast(from_vector(bytes, shape, DType::UInt8, device), dtype);
}

Tensor tensor(std::initializer_list<double> values, const Shape& shape, DType dtype) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  return from_vector(std::vector<double>(values), s, dtype);
}

Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

}  // namespace atelier
