// Making tensors: from data, constant fills, ranges, and random numbers from the counter-based generator.
//
// Random numbers: every call draws from Philox4x32-10 keyed by a seed, at a (stream, offset) counter. The
// default generator hands out consecutive offsets of stream 0 from the seed given to manual_seed() (default
// 0), so the same seed gives the same numbers. The explicit forms (`uniform(shape, lo, hi, RandomKey{...})`) take
// the counter from the caller, as the BEGAN trainer does to key z by (seed, step). Inside a graph capture the
// default generator's forms are refused: the capture would record one key, and every replay repeat its numbers.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace atelier {

struct RandomKey {
  uint64_t seed = 0;
  uint64_t stream = 0;
  uint64_t offset = 0;  // in Philox blocks of 4 words
};

// Resets the default generator: the seed and offset 0.
void manual_seed(uint64_t seed);
// Takes a key for `numel` numbers from the default generator and advances its offset past them.
RandomKey next_random_key(int64_t numel);

Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// [start, end) in steps of step (step may be negative).
Tensor arange(double start, double end, double step = 1, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor arange(int64_t end, DType dtype = DType::Int64);

// U[0, 1), U[lo, hi), N(0, 1), N(mean, std). Float dtypes only.
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor uniform(const Shape& shape, double lo, double hi, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor normal(const Shape& shape, double mean, double std, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor uniform(const Shape& shape, double lo, double hi, const RandomKey& key, DType dtype = DType::Float32,
               Device device = Device::cpu());
Tensor normal(const Shape& shape, double mean, double std, const RandomKey& key, DType dtype = DType::Float32,
              Device device = Device::cpu());

// From host data in row-major order; the values are converted to dtype. Throws when data.size() != numel.
template <typename T>
Tensor from_vector(const std::vector<T>& data, const Shape& shape, DType dtype = dtype_of<T>(),
                   Device device = Device::cpu());
// tensor({1, 2, 3}) is a float32 vector; tensor({1, 2, 3, 4}, {2, 2}) a matrix.
Tensor tensor(std::initializer_list<double> values, const Shape& shape = {}, DType dtype = DType::Float32);
// A 0-d tensor.
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = Device::cpu());

}  // namespace atelier
