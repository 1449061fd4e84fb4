// Copies and conversions: strided copy with broadcasting, dtype casts, device moves, fill.
#include <algorithm>
#include <cstring>

#include "tensor/creation.h"
#include "tensor/raw/common.h"
#include "tensor/readback.h"

namespace atelier::raw {

using namespace detail;

void copy_(const Tensor& dst, const Tensor& src) {
  Shape out = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  ATELIER_CHECK(out == dst.shape(),
                "copy_: source of shape " << src.shape() << " does not broadcast to destination " << dst.shape());
  check_no_internal_overlap(dst, "copy_");
  Tensor source = src;
  // A source that shares memory with dst (a shifted view of the same bytes) would be overwritten while it is
  // still being read, differently at each thread's chunk: read it from a copy. Copying a view onto itself
  // writes nothing new.
  if (may_share_memory(dst, src)) {
    if (src.offset() == dst.offset() && src.shape() == dst.shape() && src.strides() == dst.strides() &&
        src.dtype() == dst.dtype()) {
      dst.storage()->bump_version();
      return;
    }
    source = clone(src);
  }
  if (src.device() != dst.device()) source = to_device(src, dst.device());
  if (source.dtype() != dst.dtype()) {
    // The cast kernel is strided and broadcasts like copy's, so it converts straight into dst (converting into a
    // fresh tensor and copying that took twice the passes: a float32 -> float64 to() and its backward at 0.56x
    // PyTorch's speed).
    launch<PrimitiveOp::cast>(dst.device(), "copy_", dst.numel(),
                              CastArgs{source.dtype(), dst.dtype(), layout_of(dst), dst.raw_data(),
                                       broadcast_layout(source, dst.shape()), source.raw_data()});
  } else {
    launch<PrimitiveOp::copy>(dst.device(), "copy_", dst.numel(),
                              CopyArgs{dst.dtype(), layout_of(dst), dst.raw_data(),
                                       broadcast_layout(source, dst.shape()), source.raw_data()});
  }
  dst.storage()->bump_version();
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor cast(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = raw::empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor src = contiguous(t);
  Tensor out = raw::empty(t.shape(), t.dtype(), device);
  size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  if (bytes == 0) return out;
  if (device.is_cpu()) {
    count_host_sync_read(src.device());  // the host waits for the device's queued work
    backend_of(src).copy_to_host(out.raw_data(), src.raw_data(), bytes);
  } else if (src.device().is_cpu()) {
    backend_for(device).copy_from_host(out.raw_data(), src.raw_data(), bytes);
  } else {
    // Device to device: through the host (rare; used only to move between GPUs).
    return to_device(to_device(src, Device::cpu()), device);
  }
  return out;
}

void fill_(const Tensor& t, double value) {
  check_no_internal_overlap(t, "fill_");
  launch<PrimitiveOp::fill>(t.device(), "fill_", t.numel(), FillArgs{t.dtype(), layout_of(t), t.raw_data(), value});
  t.storage()->bump_version();
}

}  // namespace atelier::raw
