// The thread pool behind parallel_for/parallel_run: (n - 1) persistent workers plus the calling thread.
//
// One job at a time: a caller takes run_mutex_, publishes the job by bumping `generation_`, runs chunk 0 itself
// and waits for the workers. Workers spin briefly on the generation (ops arrive back to back in a training
// step, so a short spin saves a futex round trip) and then sleep on a condition variable, so an idle pool costs
// no CPU. Chunk t always runs on thread t: results depend on the thread count only, never on timing.
#include "backends/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/error.h"

namespace atelier {
namespace {

// Set for the whole life of a worker, and on the caller while it runs its own chunk.
thread_local bool tl_in_region = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Iterations a waiting thread spins before it sleeps (roughly tens of microseconds).
constexpr int kSpinIterations = 1 << 11;

class ThreadPool {
 public:
  explicit ThreadPool(int n) { start(n); }
  ~ThreadPool() { stop(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if (n == size()) return;
    stop();
    start(n);
  }

  // Calls fn(t, size()) once on each thread; rethrows the exception of the lowest-numbered failing thread.
  void run(const std::function<void(int, int)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    const int n = size();
    if (n == 1) {
      RegionGuard guard;
      fn(0, 1);
      return;
    }
    job_ = &fn;
    errors_.assign(static_cast<size_t>(n), nullptr);
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_cv_.notify_all();

    execute(0);

    for (int spin = 0; spin < kSpinIterations && pending_.load(std::memory_order_acquire) != 0; ++spin) cpu_relax();
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    job_ = nullptr;
    for (auto& error : errors_) {
      if (error) std::rethrow_exception(error);
    }
  }

 private:
  struct RegionGuard {
    bool previous = tl_in_region;
    RegionGuard() { tl_in_region = true; }
    ~RegionGuard() { tl_in_region = previous; }
  };

  void execute(int t) {
    RegionGuard guard;
    try {
      (*job_)(t, size());
    } catch (...) {
      errors_[static_cast<size_t>(t)] = std::current_exception();
    }
  }

  // `seen` is the generation when the worker was made: a job published before the thread first runs is not missed.
  void worker_loop(int t, uint64_t seen) {
    tl_in_region = true;
    for (;;) {
      int spin = 0;
      while (spin < kSpinIterations && generation_.load(std::memory_order_acquire) == seen &&
             !stopping_.load(std::memory_order_acquire)) {
        cpu_relax();
        ++spin;
      }
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_cv_.wait(lock, [&] {
          return stopping_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
        });
      }
      if (stopping_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      execute(t);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_cv_.notify_one();
      }
    }
  }

  // Both called with run_mutex_ held (or from the constructor/destructor).
  void start(int n) {
    stopping_.store(false);
    size_.store(n, std::memory_order_relaxed);
    workers_.reserve(static_cast<size_t>(n - 1));
    const uint64_t generation = generation_.load(std::memory_order_acquire);
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, generation] { worker_loop(t, generation); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true, std::memory_order_release);
    }
    wake_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<int> size_{1};
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job (or resize) at a time
  std::mutex mutex_;      // guards the sleeps on wake_cv_ / done_cv_
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  const std::function<void(int, int)>* job_ = nullptr;
  std::vector<std::exception_ptr> errors_;
};

// Function-local static: made on first use, its workers joined during static destruction.
ThreadPool& pool() {
  static ThreadPool instance(num_threads_from_environment());
  return instance;
}

}  // namespace

int num_threads_from_environment() {
  if (const char* env = std::getenv("ATELIER_NUM_THREADS"); env != nullptr && *env != '\0') {
    // Digits only (strtol alone would accept " 3", "+3" and clamp 99999999999999999999 to LONG_MAX).
    const std::string value(env);
    bool digits = value.size() <= 4;
    for (char c : value) digits = digits && c >= '0' && c <= '9';
    const long n = digits ? std::strtol(env, nullptr, 10) : 0;
    // The value is quoted only in part: an environment variable can be arbitrarily long.
    ATELIER_CHECK(n >= 1 && n <= kMaxThreads, "ATELIER_NUM_THREADS must be an integer in [1, "
                                                  << kMaxThreads << "], got '" << value.substr(0, 32)
                                                  << (value.size() > 32 ? "...'" : "'"));
    return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  ATELIER_CHECK(n >= 1, "set_num_threads: the thread count must be >= 1, got " << n);
  ATELIER_CHECK(!tl_in_region, "set_num_threads(" << n << ") called from inside a parallel region");
  pool().resize(n);
}

bool in_parallel_region() { return tl_in_region; }

void parallel_run(const std::function<void(int t, int nthreads)>& fn) {
  const int n = num_threads();
  if (tl_in_region || n == 1) {
    // Nested: run every chunk here, in order, so the partition (and any result built from it) is unchanged.
    for (int t = 0; t < n; ++t) fn(t, n);
    return;
  }
  pool().run(fn);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = num_threads();
  if (threads == 1 || n < 2 * grain || tl_in_region) {
    fn(0, n);
    return;
  }
  // Whole grains are dealt out evenly: thread t takes grains [t * G / T, (t + 1) * G / T).
  const int64_t grains = (n + grain - 1) / grain;
  pool().run([&](int t, int nthreads) {
    const int64_t begin = std::min(n, t * grains / nthreads * grain);
    const int64_t end = std::min(n, (t + 1) * grains / nthreads * grain);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace atelier
