// The narrow interface every device implements, and the registry that maps a Device to its Backend.
//
// A Backend owns its device's memory (allocate/deallocate through a caching allocator, host<->device copies)
// and runs primitives. The primitives are listed once in backends/primitives.def; each becomes a virtual here
// whose default body throws "<op> is not implemented on <backend>", so a backend overrides only what it
// implements and says so through supports(). The floors above never call a virtual directly: launch() (below)
// checks supports() on the way in.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "backends/args.h"
#include "backends/dtype.h"

namespace atelier {

enum class PrimitiveOp {
#define X(name, Args) name,
#include "backends/primitives.def"
#undef X
};

const char* primitive_name(PrimitiveOp op);

// Counters of a caching allocator (bytes unless named otherwise).
struct AllocatorStats {
  size_t in_use = 0;        // handed out and not yet returned
  size_t cached = 0;        // returned and kept for reuse (the graphs' pools included)
  size_t graph_cached = 0;  // of `cached`: kept in the private pools of captured graphs (empty_cache keeps them)
  size_t peak_in_use = 0;
  size_t system_allocs = 0;  // calls that reached the system allocator (malloc / cudaMalloc)
  size_t cache_hits = 0;
};

// A copy of device bytes into host memory that the host does not wait for when it queues it: start() queues the
// copy behind the work already queued on the device, wait() blocks until it has landed and returns the host bytes.
// The trainer reads a step's scalars this way one step later, so a step never waits for the device. The CUDA
// backend copies into pinned memory and records an event; the default (the CPU's) copies at once in start().
//   std::unique_ptr<HostReadback> r = backend.make_readback(8 * sizeof(double));
//   r->start(device_ptr);  ...queue more work...;  const double* v = static_cast<const double*>(r->wait());
class HostReadback {
 public:
  explicit HostReadback(size_t bytes) : bytes_(bytes) {}
  virtual ~HostReadback() = default;
  HostReadback(const HostReadback&) = delete;
  HostReadback& operator=(const HostReadback&) = delete;

  size_t bytes() const { return bytes_; }
  // Queues the copy of bytes() bytes from device_src (which must stay valid for the work queued before it).
  virtual void start(const void* device_src) = 0;
  // Waits for the copy that start() queued and returns the host bytes (valid until the next start()).
  virtual const void* wait() = 0;

 private:
  size_t bytes_;
};

// The mirror image of HostReadback: a copy of host bytes into device memory that the host does not wait for. The
// caller fills staging() (bytes() bytes of host memory), then start(device_dst) queues the copy behind the work
// already queued on the device and returns at once. The staging buffer is the copy's source until it has run:
// fill it again only once done() says so (or after wait()). Keeping two and alternating, the host never waits in
// the steady state: the buffer of two batches ago was copied long ago (TensorUpload, tensor/upload.h, does this).
// The CUDA backend stages in pinned memory (cudaHostAlloc: cudaMemcpyAsync from pageable memory may make the host
// wait for the stream) and records an event after the copy; the CPU's copies at once in start() (a memcpy), and
// the default, for a backend without its own, calls copy_from_host there (a synchronous upload, counted).
//   std::unique_ptr<HostUpload> u = backend.make_upload(bytes);
//   if (!u->done()) u->wait();  std::memcpy(u->staging(), batch, bytes);  u->start(device_ptr);
class HostUpload {
 public:
  explicit HostUpload(size_t bytes) : bytes_(bytes) {}
  virtual ~HostUpload() = default;
  HostUpload(const HostUpload&) = delete;
  HostUpload& operator=(const HostUpload&) = delete;

  size_t bytes() const { return bytes_; }
  // The host buffer the copy reads (bytes() bytes): the caller fills it before start().
  virtual void* staging() = 0;
  // Queues the copy of the staging buffer to device_dst (bytes() bytes; it must stay allocated until the copy has
  // run, which the work queued after it may take for granted: it is ordered before that work).
  virtual void start(void* device_dst) = 0;
  // True when the copy start() queued has finished reading the staging buffer (and true before any start()).
  // Never waits.
  virtual bool done() = 0;
  // Waits until done().
  virtual void wait() = 0;

 private:
  size_t bytes_;
};

// An upload into memory the host can write directly (the CPU's; the CUDA emulation's host memory): start() is a
// memcpy, so a copy is done when it returns. The CPU backend's make_upload.
std::unique_ptr<HostUpload> make_host_memory_upload(size_t bytes);

// Copies from host memory to the device that may make the host wait for the device's queued work, since the
// program started: every backend's copy_from_host counts one (on CUDA, from pageable memory, which the driver may
// have to stage; on the CPU, counted too, as a GPU would wait there). A HostUpload's copy from its staging buffer
// is not one. Tests check with it that a training step makes none, as host_sync_reads() (tensor/readback.h) does
// for reads.
uint64_t host_sync_uploads();
// Called by each backend's copy_from_host.
void count_host_sync_upload();

class Backend;
class CachingAllocator;
class GraphPool;

// A captured sequence of primitive calls (Backend::end_capture), replayed on the very device addresses it was
// captured with: the inputs it reads are written into the same tensors before each replay, and what it writes
// lands in the same tensors each time. While it lives, its private pool (backends/caching_allocator.h) keeps every
// block it uses reserved. replay() queues the work (on CUDA, one cudaGraphLaunch on the context's stream; on the
// CPU, the recorded calls run in order).
class CapturedGraph {
 public:
  virtual ~CapturedGraph() = default;
  virtual void replay() = 0;
  // The primitive calls recorded (the CPU's recorder), or -1 where the backend does not count them (CUDA).
  virtual int64_t recorded_calls() const { return -1; }
};

// One recorded primitive call: runs it on a backend (launch below, Backend::record).
using RecordedCall = std::function<void(Backend&)>;

// A clock that reads the device's progress through the queued work (backends/profiler.h): mark() notes the moment
// the device reaches this point of the work queued so far, seconds() waits for the device and returns every mark's
// time since the first, in seconds. On CUDA each mark is an event recorded on the context's stream; the default
// (the CPU's, whose primitives have finished when they return) reads the host's steady clock.
class DeviceTimeline {
 public:
  virtual ~DeviceTimeline() = default;
  virtual void mark() = 0;
  virtual std::vector<double> seconds() = 0;
};

// What launch() tells an open profiler (backends/profiler.h) about a primitive call of the calling thread:
// before() as the call starts, after() once it has returned (not if it threw).
class ProfileHook {
 public:
  virtual void before() = 0;
  virtual void after(PrimitiveOp op, const char* what) = 0;

 protected:
  ~ProfileHook() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // True when the device can be used now (a CUDA backend without a driver or GPU says false).
  virtual bool available() const = 0;
  // Why available() is false ("" when it is true), for a message: e.g. the CUDA runtime's error.
  virtual std::string unavailable_reason() const { return available() ? "" : "not available"; }

  // Memory: aligned to 64 bytes, uninitialised. deallocate gets the size that allocate was given.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual AllocatorStats allocator_stats() const = 0;
  // Starts allocator_stats().peak_in_use again from what is in use now (PyTorch: reset_peak_memory_stats).
  virtual void reset_peak_in_use() = 0;
  // Returns every cached block to the system.
  virtual void empty_cache() = 0;
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t bytes) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual void synchronize() { refuse_in_capture("synchronize"); }
  // A reusable asynchronous copy of `bytes` device bytes to the host (HostReadback above). The default copies
  // with copy_to_host in start().
  virtual std::unique_ptr<HostReadback> make_readback(size_t bytes);
  // A reusable asynchronous copy of `bytes` host bytes to the device (HostUpload above). The default copies with
  // copy_from_host in start(); the CPU's with a memcpy.
  virtual std::unique_ptr<HostUpload> make_upload(size_t bytes);

  // Whether this backend implements `op` for elements of type `dtype`.
  virtual bool supports(PrimitiveOp op, DType dtype) const = 0;

  // ---- Profiling (backends/profiler.h) ----
  // A timeline of this device's work (DeviceTimeline above). The default reads the host's steady clock.
  virtual std::unique_ptr<DeviceTimeline> make_timeline();
  // The device kernels this backend has launched since the program started, counted where they are launched (on
  // CUDA: our kernels, cuBLAS calls, device-side copies and fills); -1 where the backend launches none (the CPU).
  virtual int64_t kernels_launched() const { return -1; }

  // ---- Graph capture (docs/gpu.md, "--cuda-graph") ----
  // Between begin_capture() and end_capture(), the primitives the calling thread launches on this backend are
  // captured, not run, and end_capture() returns them as a graph to replay. Captures do not nest, and only the
  // capturing thread's work is captured (another thread's launches and allocations go on as usual). During the
  // capture, the capturing thread's allocations and frees go to the graph's private pool. Host reads and copies
  // (copy_to_host, copy_from_host, synchronize, a readback's or an upload's start, Tensor::item ...) are refused with
  // an atelier::Error: on CUDA they would break the capture, and a replay would not repeat them. The default (the
  // CPU's) records each call with its arguments through launch() and replays the calls in order; CUDA captures its
  // stream (cudaStreamBeginCapture). Nothing captured has run when end_capture() returns: replay() runs it. If
  // the captured code throws, call end_capture() anyway (it ends the capture) and drop the graph.
  void begin_capture();
  std::unique_ptr<CapturedGraph> end_capture();
  // True while a capture started by the calling thread is under way.
  bool capturing() const {
    return capture_state_.load(std::memory_order_acquire) && std::this_thread::get_id() == capture_thread_.load();
  }
  // How many captures this backend has begun (a capture's number while it runs): lets a caller refuse to
  // capture the same thing twice in one graph.
  uint64_t captures_begun() const { return captures_begun_; }
  // True while launch() records the calling thread's calls (the default capture).
  bool recording() const { return capturing() && recorder_ != nullptr; }
  // Stores one call for the graph (launch() calls it while recording()).
  void record(RecordedCall call);
  // Throws the error of a host read or copy (`what`) during a capture, if the calling thread is capturing.
  void refuse_in_capture(const char* what) const;

#define X(name, Args) virtual void name(const Args& args);
#include "backends/primitives.def"
#undef X

  // The recorder behind the default capture, also what a backend that captures natively may use where it has no
  // device.
  void start_recording();
  std::vector<RecordedCall> stop_recording();

 protected:
  [[noreturn]] void not_implemented(PrimitiveOp op) const;

  // The caching allocator whose private pool a capture uses (nullptr: this backend cannot capture).
  virtual CachingAllocator* caching_allocator() { return nullptr; }
  // The backend's part of begin_capture (the pool is already routing): the default starts the recorder.
  virtual void capture_begin();
  // The backend's part of end_capture: ends what capture_begin started and makes the graph, which must keep
  // `pool` for as long as it lives. The default makes a graph of the recorded calls.
  virtual std::unique_ptr<CapturedGraph> capture_end(GraphPool pool);

 private:
  std::atomic<bool> capture_state_{false};
  std::atomic<std::thread::id> capture_thread_{};
  uint64_t captures_begun_ = 0;
  uint64_t capture_pool_ = 0;                            // the allocator's pool of the capture under way
  std::unique_ptr<std::vector<RecordedCall>> recorder_;  // the calls recorded so far (the default capture)
};

// The args struct of each primitive and the call that runs it, for code generic over primitives (launch below):
// Primitive<PrimitiveOp::unary>::Args is UnaryArgs, and run(backend, args) calls backend.unary(args).
template <PrimitiveOp op>
struct Primitive;
#define X(name, ArgsStruct)                                                     \
  template <>                                                                   \
  struct Primitive<PrimitiveOp::name> {                                         \
    using Args = ArgsStruct;                                                    \
    static void run(Backend& backend, const Args& args) { backend.name(args); } \
  };
#include "backends/primitives.def"
#undef X

// The dtype a backend is asked to support for a call: the args' dtype, or a cast's source dtype.
template <class Args>
DType primitive_dtype(const Args& args) {
  if constexpr (requires { args.dtype; }) {
    return args.dtype;
  } else {
    return args.src_dtype;
  }
}

// Throws, naming `what`, the primitive, the dtype and the backend, unless `backend` supports `op` on `dtype`.
void check_supported(const Backend& backend, PrimitiveOp op, DType dtype, const char* what);
// The profiler the calling thread has open on `backend` (backends/profiler.h), or nullptr: a thread-local read.
ProfileHook* profile_hook(const Backend& backend);
// Throws the atelier::OutOfMemoryError that stands for a std::bad_alloc in primitive `op` (see launch).
[[noreturn]] void throw_out_of_memory(const Backend& backend, PrimitiveOp op, const char* what, int64_t work);

// A primitive call as the recorder stores it: a copy of the args, run later on the same device pointers. An args
// struct that points at host memory (AdamMultiStepArgs' per-tensor arrays, valid only during the call) gets its own
// overload below that copies that memory too: a new such struct needs one.
template <PrimitiveOp op>
RecordedCall recorded_call(const typename Primitive<op>::Args& args) {
  return [args](Backend& backend) { Primitive<op>::run(backend, args); };
}
template <>
RecordedCall recorded_call<PrimitiveOp::adam_step_multi>(const AdamMultiStepArgs& args);

// The one way the floors above call a primitive: the support check (the only one in the project), then the call,
// skipped when `work` (the number of output elements, or whatever the op computes) is 0. `what` is the name the
// caller knows the op by, for the error message. While the calling thread records a capture (Backend::recording),
// the call is stored for the graph instead of run; while the thread has a Profiler open on the backend, the call is
// bracketed by the profiler's marks.
//   launch<PrimitiveOp::unary>(backend_for(t.device()), "exp", out.numel(), UnaryArgs{...});
// A std::bad_alloc from inside a kernel (host scratch it could not get) becomes an atelier::OutOfMemoryError naming the
// op, the primitive and the work size.
template <PrimitiveOp op>
void launch(Backend& backend, const char* what, int64_t work, const typename Primitive<op>::Args& args) {
  check_supported(backend, op, primitive_dtype(args), what);
  if (work <= 0) return;
  if (backend.recording()) {
    backend.record(recorded_call<op>(args));
    return;
  }
  ProfileHook* const profiler = profile_hook(backend);
  if (profiler != nullptr) profiler->before();
  try {
    Primitive<op>::run(backend, args);
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(backend, op, what, work);
  }
  if (profiler != nullptr) profiler->after(op, what);
}

// The backend of a device. The CPU backend always exists; asking for an unavailable device throws, naming it.
Backend& backend_for(Device device);
// The CUDA backend if it was built, even when no device is present (nullptr in a CPU-only build).
Backend* cuda_backend_or_null();

}  // namespace atelier
