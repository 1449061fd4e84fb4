// Data movement on the GPU: strided copy, dtype cast and fill, for every dtype
// (CPU twin: backends/cpu/copy_fill.cpp).
//
// Each kernel is one thread per element of the simplified strided plan
// (backends/strided.h, launch_strided). copy moves bytes, so it dispatches on
// the element size (1, 4 or 8 bytes) rather than the dtype. cast and fill
// convert each element by the rule of backends/convert.h (float -> integer
// saturates, NaN -> 0), the very function the CPU calls.
#include "backends/convert.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/launch.h"
#include "backends/host_device.h"

namespace atelier {
namespace {

// dst[off0] = src[off1]. CPU twin: copy_typed in backends/cpu/copy_fill.cpp.
template <typename T>
struct CopyOp {
  T* dst;
  const T* src;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[2]) const { dst[off[0]] = src[off[1]]; }
};

// dst[off0] = convert_element<D>(src[off1]). CPU twin: cast_typed.
template <typename D, typename S>
struct CastOp {
  D* dst;
  const S* src;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[2]) const { dst[off[0]] = convert_element<D>(src[off[1]]); }
};

// dst[off0] = value (converted once, on the host). CPU twin: fill_typed.
template <typename T>
struct FillOp {
  T* dst;
  T value;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[1]) const { dst[off[0]] = value; }
};

template <typename T>
void copy_typed(const CopyArgs& args) {
  const Layout* layouts[2] = {&args.dst, &args.src};
  const auto plan = make_plan<2>(args.dst, layouts);
  // Nothing to copy: nothing queued or counted, as launch_strided does for an empty plan (a 0-byte
  // cudaMemcpyAsync would count a kernel for nothing, and what it does inside a stream capture is not documented).
  if (plan.numel <= 0) return;
  if (plan.ndim <= 1 && (plan.ndim == 0 || (plan.strides[0][0] == 1 && plan.strides[1][0] == 1))) {
    // Both contiguous: one device-to-device copy on the stream.
    ATELIER_CUDA_CHECK(cudaMemcpyAsync(args.dst_data, args.src_data, static_cast<size_t>(plan.numel) * sizeof(T),
                                       cudaMemcpyDeviceToDevice, cuda::context().stream()));
    cuda::count_kernel();
    return;
  }
  cuda::launch_strided(plan, CopyOp<T>{static_cast<T*>(args.dst_data), static_cast<const T*>(args.src_data)});
}

template <typename D, typename S>
void cast_typed(const CastArgs& args) {
  const Layout* layouts[2] = {&args.dst, &args.src};
  cuda::launch_strided(make_plan<2>(args.dst, layouts),
                       CastOp<D, S>{static_cast<D*>(args.dst_data), static_cast<const S*>(args.src_data)});
}

template <typename T>
void fill_typed(const FillArgs& args) {
  const Layout* layouts[1] = {&args.dst};
  cuda::launch_strided(make_plan<1>(args.dst, layouts),
                       FillOp<T>{static_cast<T*>(args.dst_data), convert_element<T>(args.value)});
}

}  // namespace

// copy moves bytes: every dtype of one element size shares one instantiation.
void CudaBackend::copy(const CopyArgs& args) {
  dispatch(cuda::copy_types{}, args.dtype, "cuda copy", [&]<class T> { copy_typed<SameSize<T>>(args); });
}

void CudaBackend::cast(const CastArgs& args) {
  if (args.src_dtype == args.dst_dtype) {
    return copy(CopyArgs{args.dst_dtype, args.dst, args.dst_data, args.src, args.src_data});
  }
  dispatch(cuda::cast_types{}, args.dst_dtype, "cuda cast", [&]<class D> {
    dispatch(cuda::cast_types{}, args.src_dtype, "cuda cast", [&]<class S> { cast_typed<D, S>(args); });
  });
}

void CudaBackend::fill(const FillArgs& args) {
  dispatch(cuda::fill_types{}, args.dtype, "cuda fill", [&]<class T> { fill_typed<T>(args); });
}

}  // namespace atelier
