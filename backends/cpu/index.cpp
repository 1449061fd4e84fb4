// gather and scatter_add along one dimension on the CPU, with every index checked.
//
// Shapes (contiguous): gather   src (outer, src_dim, inner), index/dst (outer, index_dim, inner)
//                      scatter  src/index (outer, index_dim, inner), dst (outer, dst_dim, inner)
// scatter_add is deterministic: each thread owns whole `outer` slices of dst and adds in index order, so no two
// threads ever touch one element and the order of the adds is fixed.
#include <algorithm>

#include "backends/cpu/kernels.h"
#include "backends/cpu/strided.h"
#include "backends/error.h"

namespace atelier::cpu {
namespace {

void check_index(const char* primitive, int64_t value, int64_t size, int64_t o, int64_t j, int64_t i) {
  ATELIER_CHECK(value >= 0 && value < size, "cpu " << primitive << ": index " << value << " at position (outer " << o
                                                   << ", " << j << ", inner " << i << ") is out of range [0, " << size
                                                   << ")");
}

template <typename T>
void gather_typed(const GatherArgs& args) {
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t inner = args.inner, rows = args.outer * args.index_dim;
  // One row = one (o, j) pair: `inner` contiguous elements.
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t o = row / args.index_dim, j = row % args.index_dim;
      const int64_t* idx = args.index_data + row * inner;
      T* d = dst + row * inner;
      const T* s = src + o * args.src_dim * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t v = idx[i];
        if (v < 0 || v >= args.src_dim) check_index("gather", v, args.src_dim, o, j, i);
        d[i] = s[v * inner + i];
      }
    }
  };
  if (rows * inner >= kParallelThreshold) {
    parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(inner, 1)), body);
  } else {
    body(0, rows);
  }
}

template <typename T>
void scatter_add_typed(const ScatterAddArgs& args) {
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t inner = args.inner, index_dim = args.index_dim, dst_dim = args.dst_dim;
  const int64_t count = args.outer * index_dim * inner;
  // Check every index before writing anything, so a bad index leaves dst untouched.
  for (int64_t n = 0; n < count; ++n) {
    const int64_t v = args.index_data[n];
    if (v < 0 || v >= dst_dim)
      check_index("scatter_add", v, dst_dim, n / (index_dim * inner), n / inner % index_dim, n % inner);
  }
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      T* d = dst + o * dst_dim * inner;
      for (int64_t j = 0; j < index_dim; ++j) {
        const int64_t* idx = args.index_data + (o * index_dim + j) * inner;
        const T* s = src + (o * index_dim + j) * inner;
        for (int64_t i = 0; i < inner; ++i) d[idx[i] * inner + i] += s[i];
      }
    }
  };
  if (count >= kParallelThreshold) {
    parallel_for(args.outer, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(index_dim * inner, 1)), body);
  } else {
    body(0, args.outer);
  }
}

}  // namespace

// gather moves bytes: every dtype of one element size shares one instantiation.
void gather(const GatherArgs& args) {
  dispatch(gather_types{}, args.dtype, "cpu gather", [&]<class T> { gather_typed<SameSize<T>>(args); });
}

void scatter_add(const ScatterAddArgs& args) {
  dispatch(scatter_add_types{}, args.dtype, "cpu scatter_add", [&]<class T> { scatter_add_typed<T>(args); });
}

}  // namespace atelier::cpu
