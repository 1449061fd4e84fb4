// Fibers standing in for the threads of a CUDA block, for the emulated launch_blocks
// (tests/cuda_emulation/fake/backends/cuda/launch.h): run_blocks<Shared, Threads>(blocks, op) calls
// op(BlockContext&) for every block index b < blocks and thread index t < Threads, with a typed array of Threads
// `Shared` elements that the block's threads share and a sync() standing for __syncthreads. C++ with POSIX ucontext
// (a fiber's start) and GCC's setjmp builtins (its switches; FiberGang says why): the CPU suite tests it
// (tests/test_block_threads.cpp) where no nvcc is.
//
// How it runs. A block's threads are fibers (user-level contexts, each on its own stack) on the calling OS thread,
// which switch only at sync() and at the end of op: the block runs in phases, each thread running alone from one
// sync() to the next, and a phase starts only once every thread has reached the previous one (or returned).
// Within a phase the threads run in a pseudo-random permutation drawn from (seed, block index, phase index): the
// seed is ATELIER_EMULATION_SEED (an unsigned 64-bit integer, default kDefaultSeed), printed to stderr at the
// first launch, so a failing run replays exactly with the same seed, and another seed tries other orders. A
// random order rather than alternating forward and reverse: a missing sync shows up whichever direction the data
// flows (thread 0 reading thread 16's element is caught by an order that runs 0 first; 16 reading 0's by one that
// runs 16 first; a fixed forward or reverse phase catches only one of the two, and which one depends on the phase
// the missing sync falls in), and it does not depend on launch history, so a test run alone (-tc=...) sees the
// orders it saw in the whole suite. Blocks run one after another on the same fibers and the same shared array,
// which is filled with 0xFF bytes (NaN for floats, -1 for integers) at each block's start when `Shared` is
// trivially copyable: a kernel must not expect anything in it at entry (launch.h), and reading it before writing
// it reads that poison, the same every run.
//
// What it proves: a kernel's result does not depend on the order its threads run in between two syncs, for the
// orders the seed draws (one permutation per block and phase: many orders per launch); a missing sync before
// reading another thread's shared element reads a stale or poisoned value, deterministically for a given seed
// (with 256 threads a random permutation breaks any read-before-write pattern over more than a few threads for
// virtually every seed; a single writer-reader pair is caught with probability 1/2 per block and phase); a sync()
// that some threads of a block reach and others do not (a sync inside a thread-dependent branch, undefined on a
// GPU) is an atelier::Error naming the functor, the block and the counts, where host threads would hang. What it
// does not: anything about warps (no lockstep, no warp-synchronous code, no shuffles), the GPU's memory model
// beyond what the phases order (they are stronger than __syncthreads: one thread runs at a time, so nothing
// within a phase is ever torn or reordered), bank conflicts, occupancy or speed. Blocks never run concurrently,
// so races between blocks (which the kernels must not have: no atomics) are not exercised either.
//
// Sanitizers. Under AddressSanitizer every switch is announced (__sanitizer_start/finish_switch_fiber), so ASan
// knows which stack is live. Under ThreadSanitizer each fiber is a TSan fiber, switched to without
// synchronisation (__tsan_switch_to_fiber_no_sync), and the only happens-before edges are the barrier's: a thread
// releases at each sync() and at its return, and the launcher acquires those at a phase's end and releases them
// to the next phase, which every thread acquires when it resumes. Two threads of one phase are thus unordered, as
// on a GPU, and a missing sync() is reported as a data race on the shared array at its line, whatever order the
// seed gives (scripts/cuda-emulate.sh's header says how to build that).
//
// Exceptions. The kernels' functors do not throw; the CPU tests' do. An exception escaping op in any thread ends
// the launch: the threads waiting in sync() are unwound (sync() throws a private type in them, which op must not
// swallow), no later block runs, and run_blocks rethrows the first exception to its caller. A divergent sync()
// ends the launch the same way with an atelier::Error. The launcher is usable again afterwards. Each OS thread
// that launches has its own fibers; op must not launch a block kernel itself (an atelier::Error).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <cxxabi.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "backends/error.h"
#include "backends/host_device.h"

#if defined(__SANITIZE_ADDRESS__)
#define ATELIER_FIBERS_ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define ATELIER_FIBERS_TSAN 1
#elif defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATELIER_FIBERS_ASAN 1
#elif __has_feature(thread_sanitizer)
#define ATELIER_FIBERS_TSAN 1
#endif
#endif
#if defined(ATELIER_FIBERS_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ATELIER_FIBERS_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace atelier::cuda {

namespace block_fibers {
void sync_current();
}

// The view one thread of one block has (the host twin of launch.h's BlockContext, with the same members).
template <class Shared, int Threads>
struct BlockContext {
  int64_t block = 0;         // this block's index, < the launch's block count
  int thread = 0;            // this thread's index in the block, < Threads
  Shared* shared = nullptr;  // Threads elements shared by the block's threads, 0xFF bytes at each block's start
  // Host and device for nvcc, which compiles the kernels' functors (__host__ __device__) for both; only the host
  // side ever runs.
  ATELIER_HOST_DEVICE void sync() const {
#if !defined(__CUDA_ARCH__)
    block_fibers::sync_current();
#endif
  }
};

namespace block_fibers {

constexpr uint64_t kDefaultSeed = 1;

// Each fiber's stack. The kernels' functors need well under 1 KB of it, but what runs on a fiber's stack also
// includes throwing an exception (the unwinder: a few KB) and, in sanitizer builds, the sanitizer's own report of
// an error found there, printed with symbolised stack traces on the stack of the code that made it, with frames
// that the instrumentation makes larger: a ThreadSanitizer race report overflows 8 KiB and fits in 16 KiB
// (measured with tests/test_block_threads.cpp's racy reduction; an overflow there hangs TSan's fault handler rather
// than faulting cleanly). 256 KiB is sixteen times that, for deeper functors and other sanitizers' reports; the
// pages are mapped on first touch (a few per fiber in practice), so 256 fibers reserve 64 MiB of address space
// but touch only a few megabytes, and a guard page below each stack turns an overflow into a fault.
constexpr size_t kStackBytes = 256 * 1024;

// The seed as text (ATELIER_EMULATION_SEED): an unsigned 64-bit decimal integer, else an atelier::Error.
inline uint64_t parse_seed(const char* text) {
  const std::string s = text == nullptr ? "" : text;
  ATELIER_CHECK(!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() <= 20,
                "ATELIER_EMULATION_SEED='" << s << "': expected an unsigned 64-bit decimal integer");
  errno = 0;
  const unsigned long long value = std::strtoull(s.c_str(), nullptr, 10);
  ATELIER_CHECK(errno == 0, "ATELIER_EMULATION_SEED='" << s << "': expected an unsigned 64-bit decimal integer");
  return value;
}

inline std::atomic<uint64_t>& seed_slot() {
  static std::atomic<uint64_t> seed{[] {
    const char* text = std::getenv("ATELIER_EMULATION_SEED");
    return text == nullptr ? kDefaultSeed : parse_seed(text);
  }()};
  return seed;
}

// splitmix64's finaliser: a well-mixed 64-bit function of x.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The order in which the threads of `block` run in `phase` (0 until the first sync): a Fisher-Yates shuffle of
// 0, ..., order.size() - 1 drawn from (seed, block, phase) alone.
inline void phase_order(uint64_t seed, int64_t block, int phase, std::vector<int>& order) {
  uint64_t state = mix(mix(mix(seed) ^ static_cast<uint64_t>(block)) ^ static_cast<uint64_t>(phase));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  for (size_t i = order.size(); i > 1; --i) {
    state = mix(state);
    const size_t j = static_cast<size_t>(state % i);
    std::swap(order[i - 1], order[j]);
  }
}

// What sync() throws into the threads left waiting when a launch ends early; caught by the fiber's loop.
struct Unwind {};

// The fibers of one OS thread, made once (as many as the largest block asked so far) and reused by every launch.
class FiberGang {
 public:
  // One thread of one block: calls the launch's functor.
  using Body = void (*)(const void* op, void* shared, int64_t block, int thread);

  FiberGang() = default;
  FiberGang(const FiberGang&) = delete;
  FiberGang& operator=(const FiberGang&) = delete;
  ~FiberGang() {
    for (const std::unique_ptr<Fiber>& f : fibers_) {
#if defined(ATELIER_FIBERS_TSAN)
      __tsan_destroy_fiber(f->tsan);
#endif
      munmap(f->mapping, kStackBytes + guard_bytes());
    }
  }

  // The calling OS thread's fibers.
  static FiberGang& of_this_thread();

  int fibers_made() const { return static_cast<int>(fibers_.size()); }

  // Runs blocks 0, ..., blocks - 1 of `threads` threads each (the header says how). `poison_bytes` bytes of
  // `shared` are set to 0xFF at each block's start; op_name (a typeid name) is for error messages.
  void run(int threads, int64_t blocks, Body body, const void* op, void* shared, size_t poison_bytes,
           const char* op_name) {
    ATELIER_CHECK(!running_, "emulated launch_blocks: " << demangle(op_name)
                                                        << " was launched from inside a block kernel's op (the "
                                                           "emulation, like the kernels, does not nest launches)");
    running_ = true;
    struct Done {
      FiberGang* gang;
      ~Done() { gang->running_ = false; }
    } done{this};
    const uint64_t seed = seed_slot().load(std::memory_order_relaxed);
    announce(seed);
    while (fibers_made() < threads) add_fiber();
    body_ = body;
    op_ = op;
    shared_ = shared;
    order_.resize(static_cast<size_t>(threads));
#if defined(ATELIER_FIBERS_TSAN)
    if (main_tsan_ == nullptr) main_tsan_ = __tsan_get_current_fiber();  // once: fibers read it
#endif
    for (int64_t b = 0; b < blocks; ++b) {
      block_ = b;
      if (poison_bytes > 0) std::memset(shared, 0xFF, poison_bytes);
      for (int phase = 0;; ++phase) {
        phase_order(seed, b, phase, order_);
#if defined(ATELIER_FIBERS_TSAN)
        __tsan_release(&go_sync_);  // the previous phase (and the launcher's writes) happen before this one
#endif
        std::exception_ptr error;  // the first exception a thread let escape
        for (const int t : order_) {
          resume(t);
          if (fibers_[t]->state == State::Threw) {
            error = std::move(fibers_[t]->error);
            break;
          }
        }
        if (error) {
          unwind(threads);
          std::rethrow_exception(error);
        }
        int waiting = 0;
        for (int t = 0; t < threads; ++t) waiting += fibers_[t]->state == State::AtSync ? 1 : 0;
        if (waiting == 0) break;  // every thread returned: the block is done
        if (waiting < threads) {
          unwind(threads);
          ATELIER_FAIL("emulated launch_blocks: divergent sync() in "
                       << demangle(op_name) << ", block " << b << " of " << blocks << ": " << waiting << " of "
                       << threads << " threads wait in sync() number " << phase + 1 << " while " << threads - waiting
                       << " returned from op (every thread of a block must reach the same syncs; a sync() in a "
                          "branch that depends on the thread is undefined on a GPU; ATELIER_EMULATION_SEED="
                       << seed << ")");
        }
      }
    }
  }

  // sync() of the thread running now: back to the launcher until the phase is over.
  void sync() {
    const int t = current_.load(std::memory_order_relaxed);
    ATELIER_CHECK(running_ && t >= 0, "BlockContext::sync() called outside an emulated launch_blocks' op");
    Fiber& f = *fibers_[t];
    f.state = State::AtSync;
    yield(f);
    if (unwinding_.load(std::memory_order_relaxed)) throw Unwind{};
  }

 private:
  enum class State : uint8_t { Idle, AtSync, Returned, Unwound, Threw };
  // A switch between the launcher and a fiber. glibc's swapcontext also saves and sets the signal mask, a system
  // call (rt_sigprocmask) at every switch: 2 million of them in the reduction tests, a third of the emulated
  // program's time. A fiber is therefore entered once with setcontext and then switched to and from with GCC's
  // (and clang's) __builtin_setjmp / __builtin_longjmp, which save and restore only the frame and stack pointers
  // and the resume address (every other register is treated as clobbered at the setjmp): a jump to a setjmp still
  // live on another stack is what a fiber switch is. No libc longjmp (its fortified form refuses jumps between
  // stacks), no sanitizer interceptor sees the jumps; the sanitizer annotations around each switch are unchanged.
  using Jump = void* [5];
  // The other half of a switch, in a function of its own: __builtin_setjmp and __builtin_longjmp may not be called
  // from the same function. Not instrumented by ThreadSanitizer: its entry would be pushed on the shadow call stack
  // of the fiber switched to (the switch is announced first) and never popped, one frame more at every switch.
  [[noreturn]] __attribute__((noinline, no_sanitize("thread"))) static void jump(Jump& to) { __builtin_longjmp(to, 1); }
  struct Fiber {
    ucontext_t context;         // the fiber's start (fiber_main on its stack), entered once
    Jump jump{};                // where the fiber waits once started: in yield()
    bool started = false;       // entered: resumed by a jump to `jump` from then on
    void* mapping = nullptr;    // the guard page, then the stack
    void* stack = nullptr;      // kStackBytes
    State state = State::Idle;  // written by the fiber, read by the launcher after the fiber switched back
    void* asan_fake = nullptr;  // ASan's fake stack of this fiber while it is switched out
    void* tsan = nullptr;       // the TSan fiber
    std::exception_ptr error;   // what op threw (State::Threw), until the launcher takes it
  };

  static size_t guard_bytes() {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return page;
  }

  static std::string demangle(const char* name) {
    int status = 0;
    char* readable = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string out = status == 0 && readable != nullptr ? readable : name;
    std::free(readable);
    return out;
  }

  static void announce(uint64_t seed) {
    static std::atomic<bool> said{false};
    if (said.exchange(true)) return;
    std::fprintf(stderr,
                 "cuda emulation: block threads run in orders drawn from ATELIER_EMULATION_SEED=%llu (set it to "
                 "replay a run or to try other orders)\n",
                 static_cast<unsigned long long>(seed));
  }

  void add_fiber() {
    auto f = std::make_unique<Fiber>();
    void* mapping = mmap(nullptr, kStackBytes + guard_bytes(), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    ATELIER_CHECK_ERRNO(mapping != MAP_FAILED, "emulated launch_blocks: mmap of a " << kStackBytes << "-byte stack");
    f->mapping = mapping;
    f->stack = static_cast<char*>(mapping) + guard_bytes();
    const bool guarded = mprotect(mapping, guard_bytes(), PROT_NONE) == 0;
    const bool made = guarded && getcontext(&f->context) == 0;
    if (!made) munmap(mapping, kStackBytes + guard_bytes());
    ATELIER_CHECK_ERRNO(made, "emulated launch_blocks: setting up a fiber's stack");
    f->context.uc_stack.ss_sp = f->stack;
    f->context.uc_stack.ss_size = kStackBytes;
    f->context.uc_link = nullptr;  // the fiber's function never returns
    makecontext(&f->context, &FiberGang::fiber_main, 0);
#if defined(ATELIER_FIBERS_TSAN)
    f->tsan = __tsan_create_fiber(0);
#endif
    fibers_.push_back(std::move(f));
  }

  // Every fiber runs this: one thread of one block per turn, then back to the launcher until its next block.
  static void fiber_main() {
    FiberGang& gang = of_this_thread();
#if defined(ATELIER_FIBERS_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &gang.main_stack_bottom_, &gang.main_stack_size_);
#endif
#if defined(ATELIER_FIBERS_TSAN)
    __tsan_acquire(&gang.go_sync_);
#endif
    const int t = gang.current_.load(std::memory_order_relaxed);
    Fiber& f = *gang.fibers_[t];
    for (;;) {
      try {
        gang.body_(gang.op_, gang.shared_, gang.block_, t);
        f.state = State::Returned;
      } catch (const Unwind&) {
        f.state = State::Unwound;
      } catch (...) {
        f.error = std::current_exception();
        f.state = State::Threw;
      }
      gang.yield(f);
    }
  }

  // Launcher -> fiber t, until it syncs or returns. Not inlined, as every function that calls __builtin_setjmp.
  // The jump buffer is set first, then the switch announced: the buffer's bytes belong to the side that waits on
  // them (TSan would otherwise see every fiber write the launcher's buffer, unordered, as a race).
  __attribute__((noinline)) void resume(int t) {
    Fiber& f = *fibers_[t];
    current_.store(t, std::memory_order_relaxed);
    if (__builtin_setjmp(main_jump_) == 0) {  // 0: set now; 1: the fiber jumped back (yield)
#if defined(ATELIER_FIBERS_ASAN)
      __sanitizer_start_switch_fiber(&main_asan_fake_, f.stack, kStackBytes);
#endif
#if defined(ATELIER_FIBERS_TSAN)
      __tsan_switch_to_fiber(f.tsan, __tsan_switch_to_fiber_no_sync);
#endif
      if (f.started) jump(f.jump);
      f.started = true;
      setcontext(&f.context);  // returns only on failure
      std::perror("emulated launch_blocks: setcontext to a new fiber");
      std::abort();
    }
#if defined(ATELIER_FIBERS_ASAN)
    __sanitizer_finish_switch_fiber(main_asan_fake_, nullptr, nullptr);
#endif
#if defined(ATELIER_FIBERS_TSAN)
    __tsan_acquire(&arrive_sync_);  // what the fiber did so far (its state, error_, global memory) is seen here
#endif
    current_.store(-1, std::memory_order_relaxed);
  }

  // Fiber -> launcher; returns when the launcher resumes this fiber.
  __attribute__((noinline)) void yield(Fiber& f) {
    if (__builtin_setjmp(f.jump) == 0) {  // 0: set now; 1: the launcher jumped here (resume)
#if defined(ATELIER_FIBERS_TSAN)
      __tsan_release(&arrive_sync_);  // this thread's accesses so far happen before the next phase
      __tsan_switch_to_fiber(main_tsan_, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(ATELIER_FIBERS_ASAN)
      __sanitizer_start_switch_fiber(&f.asan_fake, main_stack_bottom_, main_stack_size_);
#endif
      jump(main_jump_);
    }
#if defined(ATELIER_FIBERS_ASAN)
    __sanitizer_finish_switch_fiber(f.asan_fake, &main_stack_bottom_, &main_stack_size_);
#endif
#if defined(ATELIER_FIBERS_TSAN)
    __tsan_acquire(&go_sync_);  // the phases before this one happen before what this thread does next
#endif
  }

  // Ends a launch early: every thread waiting in sync() throws Unwind there, so its frames unwind.
  void unwind(int threads) {
    std::vector<int> waiting;
    for (int t = 0; t < threads; ++t) {
      if (fibers_[t]->state == State::AtSync) waiting.push_back(t);
    }
    unwinding_.store(true, std::memory_order_relaxed);
#if defined(ATELIER_FIBERS_TSAN)
    __tsan_release(&go_sync_);  // the launcher's reads of the fibers' states happen before the fibers go on
#endif
    for (const int t : waiting) {
      resume(t);
      fibers_[t]->error = nullptr;  // an exception op threw while unwinding is dropped
    }
    unwinding_.store(false, std::memory_order_relaxed);
  }

  std::vector<std::unique_ptr<Fiber>> fibers_;
  Jump main_jump_{};        // where the launcher waits while a fiber runs: in resume()
  std::vector<int> order_;  // this phase's order
  bool running_ = false;    // a launch is under way
  Body body_ = nullptr;     // the launch: its functor, shared array and current block
  const void* op_ = nullptr;
  void* shared_ = nullptr;
  int64_t block_ = 0;
  // Written by the launcher while fibers are switched out: atomics, so that TSan sees no race in the
  // bookkeeping (relaxed: they order nothing else).
  std::atomic<int> current_{-1};             // the fiber running now, -1 while the launcher runs
  std::atomic<bool> unwinding_{false};       // sync() throws Unwind
  const void* main_stack_bottom_ = nullptr;  // ASan: the launcher's stack
  void* main_asan_fake_ = nullptr;           // ASan: the launcher's fake stack while a fiber runs
  size_t main_stack_size_ = 0;
  void* main_tsan_ = nullptr;  // TSan: the launcher's fiber
  char go_sync_ = 0;           // TSan: the addresses the barrier's release and acquire name
  char arrive_sync_ = 0;
};

inline FiberGang& FiberGang::of_this_thread() {
  thread_local FiberGang gang;
  return gang;
}

inline void sync_current() { FiberGang::of_this_thread().sync(); }

template <class Shared, int Threads, class Op>
void run_thread(const void* op, void* shared, int64_t block, int thread) {
  BlockContext<Shared, Threads> context{block, thread, static_cast<Shared*>(shared)};
  (*static_cast<const Op*>(op))(context);
}

}  // namespace block_fibers

// The seed of the threads' orders: ATELIER_EMULATION_SEED at the first call, else block_fibers::kDefaultSeed
// (an atelier::Error if it is not an unsigned 64-bit integer); set_block_order_seed changes it (tests).
inline uint64_t block_order_seed() { return block_fibers::seed_slot().load(std::memory_order_relaxed); }
inline void set_block_order_seed(uint64_t seed) { block_fibers::seed_slot().store(seed, std::memory_order_relaxed); }

// How many fibers the calling OS thread has made so far (as many as the largest block launched from it).
inline int block_fibers_made() { return block_fibers::FiberGang::of_this_thread().fibers_made(); }

// Runs op(BlockContext&) for blocks 0, 1, ..., blocks - 1 in turn, each block's Threads threads as fibers on the
// calling thread (the header says how, and what happens to errors).
template <class Shared, int Threads, class Op>
void run_blocks(int64_t blocks, const Op& op) {
  static_assert(Threads > 0);
  if (blocks <= 0) return;
  // One block's shared memory, reused by the next block; poisoned at each block's start where that is defined.
  const std::unique_ptr<Shared[]> shared = std::make_unique_for_overwrite<Shared[]>(Threads);
  constexpr size_t poison_bytes = std::is_trivially_copyable_v<Shared> ? sizeof(Shared) * Threads : 0;
  block_fibers::FiberGang::of_this_thread().run(Threads, blocks, &block_fibers::run_thread<Shared, Threads, Op>, &op,
                                                shared.get(), poison_bytes, typeid(Op).name());
}

}  // namespace atelier::cuda
