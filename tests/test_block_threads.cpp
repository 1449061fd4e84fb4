// The CUDA emulation's block launcher on the host (tests/cuda_emulation/block_threads.h, behind the emulated
// launch_blocks of scripts/cuda-emulate.sh): every (block, thread) runs once, as fibers on the caller's OS thread
// that run one at a time from one sync() to the next in an order drawn from the seed; a tree reduction is right
// with its syncs and wrong, the same way every run, without one; a divergent sync() and an exception escaping op
// end the launch with an error the caller catches; the shared array is poisoned at each block's start and reused
// by the next block only after the block is done; the fibers are made once.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "backends/error.h"
#include "tests/cuda_emulation/block_threads.h"

namespace {

using atelier::cuda::BlockContext;
using atelier::cuda::run_blocks;

constexpr int kThreads = 32;
constexpr int64_t kBlocks = 5;

// Sets the order seed for one test and puts the previous one back.
class SeedScope {
 public:
  explicit SeedScope(uint64_t seed) : saved_(atelier::cuda::block_order_seed()) {
    atelier::cuda::set_block_order_seed(seed);
  }
  ~SeedScope() { atelier::cuda::set_block_order_seed(saved_); }

 private:
  uint64_t saved_;
};

// ---- A tree reduction over blocks of 64 threads, with every sync or with one left out. ----

constexpr int kTreeThreads = 64;
constexpr int64_t kTreeBlocks = 12;

// Block b sums in[b * 64 + t] over t: store, sync, then halve (t < half adds t + half) with a sync after each
// level. Sync number `skip` (1: the one after the store; 2: the one after the first level; 0: none) is left out.
struct TreeSum {
  const int64_t* in;
  int64_t* out;
  int skip = 0;
  void operator()(BlockContext<int64_t, kTreeThreads>& b) const {
    b.shared[b.thread] = in[b.block * kTreeThreads + b.thread];
    int number = 1;
    if (skip != number) b.sync();
    for (int half = kTreeThreads / 2; half > 0; half /= 2) {
      if (b.thread < half) b.shared[b.thread] += b.shared[b.thread + half];
      if (skip != ++number) b.sync();
    }
    if (b.thread == 0) out[b.block] = b.shared[0];
  }
};

struct TreeCase {
  std::vector<int64_t> in = std::vector<int64_t>(kTreeBlocks * kTreeThreads);
  std::vector<int64_t> want = std::vector<int64_t>(kTreeBlocks, 0);
  TreeCase() {
    for (int64_t i = 0; i < static_cast<int64_t>(in.size()); ++i) {
      in[i] = (i * 7919) % 1000 + 1;  // positive, so a poisoned -1 or a missing term changes the sum
      want[i / kTreeThreads] += in[i];
    }
  }
  std::vector<int64_t> run(int skip) const {
    std::vector<int64_t> out(kTreeBlocks, -7);
    run_blocks<int64_t, kTreeThreads>(kTreeBlocks, TreeSum{in.data(), out.data(), skip});
    return out;
  }
};

TEST_CASE("emulated launch_blocks: a tree reduction with all its syncs is right for every seed") {
  const TreeCase c;
  for (const uint64_t seed : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{12345}, ~uint64_t{0}}) {
    SeedScope scope(seed);
    INFO("seed " << seed);
    CHECK(c.run(0) == c.want);
  }
}

// ThreadSanitizer rightly reports the races these launches have on purpose.
#if !defined(ATELIER_FIBERS_TSAN)
TEST_CASE("emulated launch_blocks: a tree reduction without a sync is wrong, the same way for the same seed") {
  const TreeCase c;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    SeedScope scope(seed);
    INFO("seed " << seed);
    // Without the sync after the store, 32 threads each read another's element in the same phase: some read it
    // before it is written (the 0xFF poison, -1), in every block. Not a likelihood: the order is the seed's.
    const std::vector<int64_t> first = c.run(1);
    for (int64_t b = 0; b < kTreeBlocks; ++b) {
      INFO("block " << b);
      CHECK(first[b] != c.want[b]);
    }
    CHECK(c.run(1) == first);  // the same wrong values again
    // Without the sync after the first level, thread t < 16 may read t + 16's element before its add; the seed
    // decides in which blocks. Whatever it gave, it gives it again.
    const std::vector<int64_t> second = c.run(2);
    CHECK(second != c.want);
    CHECK(c.run(2) == second);
  }
  // Another seed, other orders, other wrong values.
  std::vector<int64_t> one, two;
  {
    SeedScope scope(1);
    one = c.run(1);
  }
  {
    SeedScope scope(2);
    two = c.run(1);
  }
  CHECK(one != two);
}
#endif

// ---- The order the threads run in. ----

// Each thread logs (block, phase, thread) on entry and after each of its three syncs.
struct Event {
  int64_t block;
  int phase, thread;
  bool operator==(const Event&) const = default;
};

struct Log {
  std::vector<Event> events = std::vector<Event>(kBlocks * kThreads * 4, Event{-1, -1, -1});
  std::atomic<size_t> count{0};
  std::atomic<int> other_os_threads{0};
  std::thread::id caller = std::this_thread::get_id();
  void add(const BlockContext<int64_t, kThreads>& b, int phase) {
    events[count.fetch_add(1)] = Event{b.block, phase, b.thread};
    if (std::this_thread::get_id() != caller) ++other_os_threads;
  }
};

struct Logged {
  Log* log;
  void operator()(BlockContext<int64_t, kThreads>& b) const {
    for (int phase = 0; phase < 3; ++phase) {
      log->add(b, phase);
      b.sync();
    }
    log->add(b, 3);
  }
};

std::vector<Event> logged_run(uint64_t seed) {
  SeedScope scope(seed);
  Log log;
  run_blocks<int64_t, kThreads>(kBlocks, Logged{&log});
  CHECK(log.count == log.events.size());
  CHECK(log.other_os_threads == 0);  // every thread ran on the caller's OS thread
  return log.events;
}

TEST_CASE("emulated launch_blocks: threads run one phase at a time, in an order the seed gives") {
  const std::vector<Event> events = logged_run(5);
  // Block by block, phase by phase: each phase is a permutation of the block's threads.
  size_t i = 0;
  std::vector<std::vector<int>> orders;
  for (int64_t b = 0; b < kBlocks; ++b) {
    for (int phase = 0; phase < 4; ++phase) {
      INFO("block " << b << ", phase " << phase);
      std::vector<int> order;
      for (int k = 0; k < kThreads; ++k, ++i) {
        CHECK(events[i].block == b);
        CHECK(events[i].phase == phase);
        order.push_back(events[i].thread);
      }
      std::vector<int> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int> all(kThreads);
      std::iota(all.begin(), all.end(), 0);
      CHECK(sorted == all);
      orders.push_back(order);
    }
  }
  // Not the same order every phase, nor the identity.
  std::vector<int> identity(kThreads);
  std::iota(identity.begin(), identity.end(), 0);
  std::sort(orders.begin(), orders.end());
  CHECK(std::unique(orders.begin(), orders.end()) == orders.end());
  CHECK(std::find(orders.begin(), orders.end(), identity) == orders.end());

  CHECK(logged_run(5) == events);  // same seed, same order
  CHECK(logged_run(6) != events);  // another seed, another
}

TEST_CASE("emulated launch_blocks: the seed is an unsigned 64-bit decimal integer, else an error naming it") {
  using atelier::cuda::block_fibers::parse_seed;
  CHECK(parse_seed("0") == 0);
  CHECK(parse_seed("42") == 42);
  CHECK(parse_seed("18446744073709551615") == ~uint64_t{0});
  for (const char* bad : {"", "-1", "12x", " 7", "0x10", "18446744073709551616", "99999999999999999999"}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_WITH_AS(parse_seed(bad),
                         doctest::Contains(("ATELIER_EMULATION_SEED='" + std::string(bad) + "'").c_str()),
                         atelier::Error);
  }
  CHECK_THROWS_AS(parse_seed(nullptr), atelier::Error);
}

// ---- Shared memory across blocks. ----

// What one launch saw: for each (block, thread) its own element at entry, the neighbour's value read after
// sync() and how often it ran, and each block's total as thread 0 read it after the last sync.
struct Seen {
  std::vector<int64_t> at_entry = std::vector<int64_t>(kBlocks * kThreads, 0);
  std::vector<int64_t> neighbour = std::vector<int64_t>(kBlocks * kThreads, -1);
  std::vector<int> runs = std::vector<int>(kBlocks * kThreads, 0);
  std::vector<int64_t> total = std::vector<int64_t>(kBlocks, -1);
};

// The value thread t of block b writes to the shared array.
int64_t value(int64_t b, int t) { return b * 1000 + t; }

struct Neighbours {
  Seen* seen;
  void operator()(BlockContext<int64_t, kThreads>& blk) const {
    const int64_t b = blk.block;
    const int t = blk.thread;
    const int64_t slot = b * kThreads + t;
    ++seen->runs[slot];
    seen->at_entry[slot] = blk.shared[t];  // only this thread writes element t
    blk.shared[t] = value(b, t);
    blk.sync();
    seen->neighbour[slot] = blk.shared[(t + 1) % kThreads];
    blk.sync();
    if (t == 0) {
      int64_t sum = 0;
      for (int i = 0; i < kThreads; ++i) sum += blk.shared[i];
      seen->total[b] = sum;
    }
  }
};

TEST_CASE("emulated launch_blocks: each block's threads run once each, meet at sync() and share one array") {
  Seen seen;
  run_blocks<int64_t, kThreads>(kBlocks, Neighbours{&seen});
  for (int64_t b = 0; b < kBlocks; ++b) {
    INFO("block " << b);
    int64_t want_total = 0;
    for (int t = 0; t < kThreads; ++t) {
      INFO("thread " << t);
      CHECK(seen.runs[b * kThreads + t] == 1);
      CHECK(seen.at_entry[b * kThreads + t] == -1);  // 0xFF bytes at each block's start, not the last block's
      CHECK(seen.neighbour[b * kThreads + t] == value(b, (t + 1) % kThreads));
      want_total += value(b, t);
    }
    CHECK(seen.total[b] == want_total);
  }
}

TEST_CASE("emulated launch_blocks: the fibers are made once, and no block runs for an empty launch") {
  Seen first, second;
  run_blocks<int64_t, kThreads>(kBlocks, Neighbours{&first});
  const int made = atelier::cuda::block_fibers_made();
  CHECK(made >= kThreads);
  run_blocks<int64_t, kThreads>(kBlocks, Neighbours{&second});
  CHECK(atelier::cuda::block_fibers_made() == made);  // the same fibers again, no new ones
  CHECK(first.total == second.total);

  Seen none;
  run_blocks<int64_t, kThreads>(0, Neighbours{&none});
  CHECK(std::count(none.runs.begin(), none.runs.end(), 0) == kBlocks * kThreads);
}

// ---- Errors: a divergent sync(), an exception from op, misuse. ----

// Counts the live frames of op, to show that threads left waiting in sync() are unwound.
struct Frame {
  std::atomic<int>* live;
  explicit Frame(std::atomic<int>* l) : live(l) { ++*live; }
  ~Frame() { --*live; }
};

// Threads below `syncing` sync once more than the others (`extra` syncs first for everyone).
struct Divergent {
  std::atomic<int>* live;
  int syncing, common;
  void operator()(BlockContext<int64_t, kThreads>& b) const {
    const Frame frame(live);
    for (int i = 0; i < common; ++i) b.sync();
    if (b.thread < syncing) b.sync();
  }
};

TEST_CASE("emulated launch_blocks: a sync() some threads of a block reach and others do not is an error") {
  std::atomic<int> live{0};
  CHECK_THROWS_WITH_AS((run_blocks<int64_t, kThreads>(3, Divergent{&live, 5, 0})),
                       doctest::Contains("divergent sync() in (anonymous namespace)::Divergent, block 0 of 3: 5 of "
                                         "32 threads wait in sync() number 1 while 27 returned from op"),
                       atelier::Error);
  CHECK(live == 0);  // the five waiting threads were unwound
  CHECK_THROWS_WITH_AS((run_blocks<int64_t, kThreads>(3, Divergent{&live, 1, 2})),
                       doctest::Contains("1 of 32 threads wait in sync() number 3 while 31 returned"), atelier::Error);
  CHECK(live == 0);
  // Threads that all sync the same number of times are fine, and the launcher works after an error.
  run_blocks<int64_t, kThreads>(3, Divergent{&live, kThreads, 2});
  CHECK(live == 0);
  Seen seen;
  run_blocks<int64_t, kThreads>(kBlocks, Neighbours{&seen});
  CHECK(seen.total[kBlocks - 1] == kThreads * value(kBlocks - 1, 0) + kThreads * (kThreads - 1) / 2);
}

// Thread 5 of block 2 throws after the first sync; every thread counts its runs.
struct Throws {
  std::atomic<int>* live;
  std::vector<std::atomic<int>>* runs;
  void operator()(BlockContext<int64_t, kThreads>& b) const {
    const Frame frame(live);
    ++(*runs)[b.block];
    b.sync();
    if (b.block == 2 && b.thread == 5) throw std::out_of_range("thread 5 of block 2");
    b.sync();
  }
};

TEST_CASE("emulated launch_blocks: an exception escaping op ends the launch and reaches the caller") {
  std::atomic<int> live{0};
  std::vector<std::atomic<int>> runs(kBlocks);
  CHECK_THROWS_WITH_AS((run_blocks<int64_t, kThreads>(kBlocks, Throws{&live, &runs})), "thread 5 of block 2",
                       std::out_of_range);
  CHECK(live == 0);  // the threads waiting in the second sync() were unwound
  for (int64_t b = 0; b < kBlocks; ++b) {
    INFO("block " << b);
    CHECK(runs[b] == (b <= 2 ? kThreads : 0));  // no block after the one that threw
  }
  Seen seen;
  run_blocks<int64_t, kThreads>(kBlocks, Neighbours{&seen});
  CHECK(seen.total[0] == kThreads * (kThreads - 1) / 2);
}

struct Nested {
  void operator()(BlockContext<int64_t, kThreads>& b) const {
    if (b.thread == 0) run_blocks<int64_t, kThreads>(1, Nested{});
  }
};

TEST_CASE("emulated launch_blocks: op may not launch, and sync() outside a launch is an error") {
  CHECK_THROWS_WITH_AS((run_blocks<int64_t, kThreads>(1, Nested{})), doctest::Contains("launched from inside"),
                       atelier::Error);
  BlockContext<int64_t, kThreads> outside;
  CHECK_THROWS_WITH_AS(outside.sync(), doctest::Contains("outside an emulated launch_blocks"), atelier::Error);
}

}  // namespace
