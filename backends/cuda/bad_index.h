// The report of an out-of-range index that a gather or scatter_add found on the device (backends/cuda/index.cu):
// the calls queue their checks without waiting, and every host read of the CUDA backend calls report_bad_index()
// once its wait for the stream is over.
#pragma once

namespace atelier::cuda {

// Throws atelier::Error with the CPU's message for the first bad index found since the last report (naming the
// primitive, the index, its position and the valid range), and forgets it; returns when there is none. Call only
// after waiting for the work queued so far (the record is written by the device).
void report_bad_index();

}  // namespace atelier::cuda
