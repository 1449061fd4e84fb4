// The emulated stream capture (scripts/cuda-emulate.sh): between the emulated cudaStreamBeginCapture and
// cudaStreamEndCapture (tests/cuda_emulation/emulated_backend.cpp) the stream is capturing, and device work queued
// on it (a kernel of the fake launchers, a copy, a memset, a GEMM) is recorded for the graph instead of run; each
// cudaGraphLaunch runs the recorded work in order. The primitives' host code runs once, at the capture, as on the
// device: their allocations and workspace come from the capture's pool, their arguments are what the capture saw.
//
//   run_or_capture([=] { for (int64_t i = 0; i < n; ++i) op(i); });
#pragma once

#include <functional>
#include <utility>

namespace atelier::cuda {

// True while the emulated stream is being captured.
bool stream_capturing();
// Appends `work` to the graph being captured.
void capture_work(std::function<void()> work);

// Runs `work` now, or records it for the graph when the stream is being captured. `work` must hold what it needs
// by value (the functor, the sizes), as a kernel's arguments are copied at its launch.
template <class F>
void run_or_capture(F&& work) {
  if (stream_capturing()) {
    capture_work(std::function<void()>(std::forward<F>(work)));
  } else {
    work();
  }
}

}  // namespace atelier::cuda
