// Sending tensor values from the host to the device without making the host wait for it.
//
// A copy from ordinary (pageable) host memory, copy_from_host (Tensor::to(cuda) from the CPU), may make the host
// wait for the device's queued work; host_sync_uploads() (backends/backend.h) counts them, so a test can check
// that a training step makes none.
//
// TensorUpload is the mirror image of TensorReadback: upload(host) copies a contiguous CPU tensor of a fixed shape
// and dtype into the staging buffer of a Backend::make_upload (pinned memory on CUDA), queues its copy into a new
// device tensor behind the work already queued, and returns that tensor at once: the work queued after it reads
// the values. It keeps two staging buffers and alternates: a buffer is refilled only once its copy has run (an
// event on CUDA), which in the steady state was long ago (the buffer of two uploads back), so the host does not
// wait (UploadPair); stalls() counts the uploads that did. The device tensor of each upload is held until its buffer's
// next refill, so the copy never lands in memory the caching allocator gave to someone else. The trainer sends each
// batch up this way (began/trainer.cpp).
//   TensorUpload up(Device::cuda(), {16, 3, 64, 64}, DType::Float32);
//   for (...) {
//     Tensor x = up.upload(batch);  // batch: (16, 3, 64, 64) float32 on the CPU; x: the same on cuda:0
//     ...queue the step on x...
//   }
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "backends/backend.h"
#include "tensor/tensor.h"

namespace atelier {

// Makes a staging buffer of `bytes` (Backend::make_upload of the device, unless a test gives a stand-in).
using MakeUpload = std::function<std::unique_ptr<HostUpload>(size_t bytes)>;

// Two staging buffers of `bytes` used in turn, for copies from the host to `device` that the host does not wait
// for: fill staging(), then start(device_dst). A buffer is handed out again only once its copy has run; in the
// steady state that copy was queued an upload earlier than the one just started, so nothing waits. TensorUpload
// (below) and the optimisers' per-step constants (nn/optim.cpp) go up this way.
class UploadPair {
 public:
  UploadPair(Device device, size_t bytes, const MakeUpload& make = {});

  // The next staging buffer (bytes() bytes), free to fill: waits for its previous copy if that has not run yet
  // (counted in stalls()). Refused during a graph capture.
  void* staging();
  // Queues the copy of that buffer into device_dst (bytes() bytes, ordered before the work queued after it) and
  // turns to the other buffer. Refused during a graph capture.
  void start(void* device_dst);
  // Which buffer staging() and start() use now: 0 or 1.
  int current() const { return static_cast<int>(starts_ % 2); }

  Device device() const { return device_; }
  size_t bytes() const { return bytes_; }
  // Calls of staging() that found the buffer still being copied and waited for it.
  int64_t stalls() const { return stalls_; }

 private:
  Device device_;
  size_t bytes_;
  std::array<std::unique_ptr<HostUpload>, 2> copies_;
  uint64_t starts_ = 0;
  int64_t stalls_ = 0;
};

class TensorUpload {
 public:
  // An upload of tensors of `shape` and `dtype` to `device` (the CPU too: a plain copy there).
  TensorUpload(Device device, Shape shape, DType dtype, const MakeUpload& make = {});

  // Queues the copy of `host` (contiguous, on the CPU, of the upload's shape and dtype) into a new tensor on the
  // device and returns it. Waits only if the copy of two uploads back has not run yet (stalls()). Not counted as
  // a synchronous upload; refused during a graph capture.
  Tensor upload(const Tensor& host);

  Device device() const { return copies_.device(); }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  // Uploads that found their staging buffer still being copied and waited for it.
  int64_t stalls() const { return copies_.stalls(); }

 private:
  Shape shape_;
  DType dtype_;
  std::array<Tensor, 2> destinations_;  // what each buffer's last copy writes, held until the buffer is refilled
  UploadPair copies_;  // declared after destinations_, so destroyed first: it waits for copies still in flight
};

}  // namespace atelier
