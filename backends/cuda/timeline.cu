// The CUDA backend's DeviceTimeline (backends/backend.h), for the profiler (backends/profiler.h): each mark() records
// an event on the context's stream, so a mark's time is when the device got there in the queued work, however far
// ahead the host is. seconds() waits for the last event and measures every mark from the first with
// cudaEventElapsedTime (resolution about half a microsecond). The events are made as marks need them and kept.
#include <memory>
#include <vector>

#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/error.h"

namespace atelier {

namespace {

class EventTimeline final : public DeviceTimeline {
 public:
  EventTimeline() = default;
  EventTimeline(const EventTimeline&) = delete;
  EventTimeline& operator=(const EventTimeline&) = delete;
  ~EventTimeline() override {
    // A destructor must not throw: a failure is reported and cleared (ATELIER_CUDA_CLEANUP), or it would stay in
    // the runtime's last-error slot and the next kernel launch's check would report it as its own.
    for (cudaEvent_t event : events_) ATELIER_CUDA_CLEANUP(cudaEventDestroy(event));
  }

  void mark() override {
    cudaEvent_t event = nullptr;
    ATELIER_CUDA_CHECK(cudaEventCreate(&event));
    events_.push_back(event);
    ATELIER_CUDA_CHECK(cudaEventRecord(event, cuda::context().stream()));
  }

  std::vector<double> seconds() override {
    std::vector<double> out;
    if (events_.empty()) return out;
    ATELIER_CUDA_CHECK(cudaEventSynchronize(events_.back()));
    out.reserve(events_.size());
    for (cudaEvent_t event : events_) {
      float ms = 0;
      ATELIER_CUDA_CHECK(cudaEventElapsedTime(&ms, events_.front(), event));
      out.push_back(static_cast<double>(ms) * 1e-3);
    }
    return out;
  }

 private:
  std::vector<cudaEvent_t> events_;
};

}  // namespace

std::unique_ptr<DeviceTimeline> CudaBackend::make_timeline() {
  refuse_in_capture("make_timeline");
  return std::make_unique<EventTimeline>();
}

}  // namespace atelier
