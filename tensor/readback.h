// Reading tensor values on the host without making it wait for the device, and counting the reads that do wait.
//
// host_sync_reads() counts the host's synchronous reads of tensor values: Tensor::item and to_vector, and copies
// to the CPU from another device. On a GPU each one waits for all queued work; on the CPU the same calls are
// counted (they would wait on a GPU), so a CPU test can check that a code path (a training step) reads nothing.
//
// TensorReadback reads a small float64 tensor later instead: start(t) queues the copy behind the work that makes
// t (Backend::make_readback: pinned memory and an event on CUDA, a copy at once on the CPU), wait() returns the
// values. The trainer starts the copy of step s's scalars and waits for it after queueing step s + 1, so the
// device always has the next step's work while the host writes metrics.csv.
//   TensorReadback r(device, 8);
//   r.start(scalars);               // (8,) float64 on `device`
//   ...queue the next step...
//   std::vector<double> v = r.wait();
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "tensor/tensor.h"

namespace atelier {

// Synchronous reads of tensor values by the host since the program started (see above).
uint64_t host_sync_reads();
// Called by the reads that count (Tensor::to_vector, raw::to_device to the CPU), with the device read from: throws
// while the calling thread captures a graph on it (Backend::begin_capture; a captured step must not read).
void count_host_sync_read(Device device);

class TensorReadback {
 public:
  // A readback of `numel` float64 values from tensors on `device`.
  TensorReadback(Device device, int64_t numel);

  // Queues the copy of t: float64, contiguous, numel elements, on the readback's device. Replaces what an
  // earlier start() queued (its values are lost unless wait() was called).
  void start(const Tensor& t);
  // True between start() and wait().
  bool pending() const { return pending_; }
  // The values of the tensor given to the last start(); waits for its copy only (not counted as a sync read).
  std::vector<double> wait();

 private:
  Device device_;
  int64_t numel_;
  std::unique_ptr<HostReadback> copy_;
  Tensor source_;  // kept alive until the copy has landed
  bool pending_ = false;
};

}  // namespace atelier
