// Host reads of tensor values: the counter of synchronous reads and TensorReadback (tensor/readback.h).
#include "tensor/readback.h"

#include <atomic>
#include <cstring>

#include "backends/error.h"

namespace atelier {

namespace {
std::atomic<uint64_t> g_host_sync_reads{0};
}

uint64_t host_sync_reads() { return g_host_sync_reads.load(std::memory_order_relaxed); }
void count_host_sync_read(Device device) {
  backend_for(device).refuse_in_capture("a host read of tensor values (item, to_vector, to(cpu))");
  g_host_sync_reads.fetch_add(1, std::memory_order_relaxed);
}

TensorReadback::TensorReadback(Device device, int64_t numel)
    : device_(device),
      numel_(numel),
      copy_(backend_for(device).make_readback(static_cast<size_t>(numel) * sizeof(double))) {
  ATELIER_CHECK(numel >= 1, "TensorReadback: numel must be >= 1, got " << numel);
}

void TensorReadback::start(const Tensor& t) {
  ATELIER_CHECK(t.defined() && t.dtype() == DType::Float64 && t.numel() == numel_ && t.is_contiguous(),
                "TensorReadback.start: expected a contiguous float64 tensor of "
                    << numel_ << " elements, got " << (t.defined() ? t.shape() : Shape{}));
  ATELIER_CHECK(t.device() == device_,
                "TensorReadback.start: the tensor is on " << t.device() << " but the readback on " << device_);
  backend_for(device_).refuse_in_capture("TensorReadback.start");
  source_ = t;
  copy_->start(t.raw_data());
  pending_ = true;
}

std::vector<double> TensorReadback::wait() {
  ATELIER_CHECK(pending_, "TensorReadback.wait: no copy was started");
  std::vector<double> values(static_cast<size_t>(numel_));
  std::memcpy(values.data(), copy_->wait(), values.size() * sizeof(double));
  source_ = Tensor();
  pending_ = false;
  return values;
}

}  // namespace atelier
