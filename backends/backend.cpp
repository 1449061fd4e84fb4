// The primitive names, the support check, the default bodies of the primitives, the default readback, upload and
// timeline, and graph capture: the pool and the refusals every backend shares, and the default capture (the
// recorder behind launch()).
#include "backends/backend.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "backends/caching_allocator.h"
#include "backends/error.h"

namespace atelier {

const char* primitive_name(PrimitiveOp op) {
  switch (op) {
#define X(name, Args)     \
  case PrimitiveOp::name: \
    return #name;
#include "backends/primitives.def"
#undef X
  }
  return "?";
}

void check_supported(const Backend& backend, PrimitiveOp op, DType dtype, const char* what) {
  ATELIER_CHECK(backend.supports(op, dtype), what << ": " << primitive_name(op) << " on " << dtype
                                                  << " is not supported by the " << backend.name() << " backend");
}

void throw_out_of_memory(const Backend& backend, PrimitiveOp op, const char* what, int64_t work) {
  ATELIER_OUT_OF_MEMORY(what << ": out of memory (std::bad_alloc) in " << primitive_name(op) << " on the "
                             << backend.name() << " backend, working on " << work << " elements");
}

namespace {

// The default readback: copy_to_host at once into a host buffer (on the CPU, a memcpy that waits for nothing).
class CopyReadback final : public HostReadback {
 public:
  CopyReadback(Backend& backend, size_t bytes) : HostReadback(bytes), backend_(backend), buffer_(bytes) {}
  void start(const void* device_src) override { backend_.copy_to_host(buffer_.data(), device_src, bytes()); }
  const void* wait() override { return buffer_.data(); }

 private:
  Backend& backend_;
  std::vector<unsigned char> buffer_;
};

std::atomic<uint64_t> g_host_sync_uploads{0};

// An upload that copies at once in start(), so a copy is always done: through `backend`'s copy_from_host (the
// default for a backend without an upload of its own; counted as a synchronous upload, which it is), or, with no
// backend, by a memcpy into memory the host writes (make_host_memory_upload).
class CopyUpload final : public HostUpload {
 public:
  CopyUpload(Backend* backend, size_t bytes) : HostUpload(bytes), backend_(backend), buffer_(bytes) {}
  void* staging() override { return buffer_.data(); }
  void start(void* device_dst) override {
    if (backend_ != nullptr) {
      backend_->copy_from_host(device_dst, buffer_.data(), bytes());
    } else if (bytes() > 0) {
      std::memcpy(device_dst, buffer_.data(), bytes());
    }
  }
  bool done() override { return true; }
  void wait() override {}

 private:
  Backend* backend_;
  std::vector<unsigned char> buffer_;
};

}  // namespace

std::unique_ptr<HostUpload> make_host_memory_upload(size_t bytes) {
  return std::make_unique<CopyUpload>(nullptr, bytes);
}

uint64_t host_sync_uploads() { return g_host_sync_uploads.load(std::memory_order_relaxed); }
void count_host_sync_upload() { g_host_sync_uploads.fetch_add(1, std::memory_order_relaxed); }

std::unique_ptr<HostReadback> Backend::make_readback(size_t bytes) {
  return std::make_unique<CopyReadback>(*this, bytes);
}

std::unique_ptr<HostUpload> Backend::make_upload(size_t bytes) { return std::make_unique<CopyUpload>(this, bytes); }

namespace {

// The default timeline: the host's steady clock, right for a backend whose primitives have finished when they
// return (the CPU's).
class HostTimeline final : public DeviceTimeline {
 public:
  void mark() override { marks_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> seconds() override {
    std::vector<double> out;
    out.reserve(marks_.size());
    for (const auto& t : marks_) out.push_back(std::chrono::duration<double>(t - marks_.front()).count());
    return out;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

}  // namespace

std::unique_ptr<DeviceTimeline> Backend::make_timeline() { return std::make_unique<HostTimeline>(); }

// ---- Graph capture ----

void Backend::begin_capture() {
  ATELIER_CHECK(!capture_state_.load(std::memory_order_acquire),
                name() << ": begin_capture while a capture is under way: captures do not nest");
  CachingAllocator* allocator = caching_allocator();
  ATELIER_CHECK(allocator != nullptr,
                "the " << name() << " backend cannot capture graphs (it has no caching allocator)");
  capture_pool_ = allocator->begin_capture();
  capture_thread_.store(std::this_thread::get_id());
  capture_state_.store(true, std::memory_order_release);
  ++captures_begun_;
  try {
    capture_begin();
  } catch (...) {
    capture_state_.store(false, std::memory_order_release);
    recorder_.reset();
    allocator->end_capture();
    allocator->release_pool(capture_pool_);
    throw;
  }
}

std::unique_ptr<CapturedGraph> Backend::end_capture() {
  ATELIER_CHECK(capturing(), name() << ": end_capture without a capture under way on this thread");
  CachingAllocator* allocator = caching_allocator();
  allocator->end_capture();
  GraphPool pool(allocator, capture_pool_);  // released if capture_end throws
  capture_state_.store(false, std::memory_order_release);
  return capture_end(std::move(pool));
}

void Backend::record(RecordedCall call) {
  ATELIER_ASSERT(recording(), "record() outside a recording capture");
  recorder_->push_back(std::move(call));
}

void Backend::refuse_in_capture(const char* what) const {
  ATELIER_CHECK(!capturing(), what << " on " << name()
                                   << " during a graph capture: a captured step must not read or copy host memory "
                                      "(on CUDA the capture would fail, and a replay would not repeat it); do it "
                                      "before or after the captured step");
}

void Backend::start_recording() { recorder_ = std::make_unique<std::vector<RecordedCall>>(); }

std::vector<RecordedCall> Backend::stop_recording() {
  std::vector<RecordedCall> calls;
  if (recorder_ != nullptr) calls = std::move(*recorder_);
  recorder_.reset();
  return calls;
}

namespace {

// The default capture's graph: the recorded calls, run in order on the same pointers.
class RecordedGraph final : public CapturedGraph {
 public:
  RecordedGraph(Backend& backend, std::vector<RecordedCall> calls, GraphPool pool)
      : backend_(backend), calls_(std::move(calls)), pool_(std::move(pool)) {}
  void replay() override {
    ATELIER_CHECK(!backend_.capturing(),
                  "replay of a captured graph on " << backend_.name() << " during another capture");
    try {
      for (const RecordedCall& call : calls_) call(backend_);
    } catch (const std::bad_alloc&) {
      ATELIER_OUT_OF_MEMORY("replay of a captured graph on " << backend_.name() << ": out of memory (std::bad_alloc)");
    }
  }
  int64_t recorded_calls() const override { return static_cast<int64_t>(calls_.size()); }

 private:
  Backend& backend_;
  std::vector<RecordedCall> calls_;
  GraphPool pool_;
};

}  // namespace

void Backend::capture_begin() { start_recording(); }

std::unique_ptr<CapturedGraph> Backend::capture_end(GraphPool pool) {
  return std::make_unique<RecordedGraph>(*this, stop_recording(), std::move(pool));
}

template <>
RecordedCall recorded_call<PrimitiveOp::adam_step_multi>(const AdamMultiStepArgs& args) {
  // The per-tensor arrays live on the caller's stack: keep copies, and point the stored args at them.
  struct Stored {
    AdamMultiStepArgs args;
    std::vector<void*> params, exp_avgs, exp_avg_sqs;
    std::vector<const void*> grads;
    std::vector<int64_t> numels, steps;
  };
  const size_t n = args.count > 0 ? static_cast<size_t>(args.count) : 0;
  auto stored = std::make_shared<Stored>();
  stored->params.assign(args.params, args.params + n);
  stored->grads.assign(args.grads, args.grads + n);
  stored->exp_avgs.assign(args.exp_avgs, args.exp_avgs + n);
  stored->exp_avg_sqs.assign(args.exp_avg_sqs, args.exp_avg_sqs + n);
  stored->numels.assign(args.numels, args.numels + n);
  stored->steps.assign(args.steps, args.steps + n);
  stored->args = args;
  stored->args.params = stored->params.data();
  stored->args.grads = stored->grads.data();
  stored->args.exp_avgs = stored->exp_avgs.data();
  stored->args.exp_avg_sqs = stored->exp_avg_sqs.data();
  stored->args.numels = stored->numels.data();
  stored->args.steps = stored->steps.data();
  return [stored](Backend& backend) { backend.adam_step_multi(stored->args); };
}

void Backend::not_implemented(PrimitiveOp op) const {
  throw Error(std::string(primitive_name(op)) + " is not implemented on " + name());
}

#define X(op_name, Args) \
  void Backend::op_name(const Args&) { not_implemented(PrimitiveOp::op_name); }
#include "backends/primitives.def"
#undef X

}  // namespace atelier
