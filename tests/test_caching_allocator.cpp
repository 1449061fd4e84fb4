// The caching allocator's large requests (backends/caching_allocator.h): pieces carved from segments by best fit,
// a freed piece merged with its free neighbours, empty_cache releasing only wholly free segments, a capture's
// pieces split and merged during the capture (its pool's and the shared free pieces as one free space, so that it
// gets an eager step's pieces) and kept apart while its graph lives, the alignment of every piece, and what the byte
// counters count. Over a fake system memory that records its blocks; the buckets, the pools and out-of-memory are in
// test_cpu_backend.cpp, test_capture.cpp and test_backend_settings.cpp.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "backends/caching_allocator.h"
#include "backends/cpu/cpu_allocator.h"

using namespace atelier;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

// System memory aligned as the emulated GPU's (256 bytes) that records its live blocks and their sizes.
std::map<void*, size_t> g_live;
size_t g_allocs = 0, g_releases = 0;
size_t g_limit = SIZE_MAX;  // the most bytes it holds at once: beyond, it refuses (nullptr)
size_t system_bytes();
void* recording_allocate(size_t bytes) {
  if (system_bytes() + bytes > g_limit) return nullptr;
  void* ptr = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (ptr != nullptr) g_live[ptr] = bytes;
  ++g_allocs;
  return ptr;
}
void recording_release(void* ptr) noexcept {
  g_live.erase(ptr);
  ++g_releases;
  std::free(ptr);
}
SystemMemory recording_memory() {
  g_live.clear();
  g_allocs = g_releases = 0;
  return SystemMemory{"recording", &recording_allocate, &recording_release};
}
size_t system_bytes() {
  size_t total = 0;
  for (const auto& [ptr, bytes] : g_live) total += bytes;
  return total;
}

// System memory whose blocks border each other: consecutive pieces of one arena (a released block is not reused).
// Segments that touch must still never merge.
alignas(256) char g_arena[32 << 20];
size_t g_arena_used = 0;
void* adjacent_allocate(size_t bytes) {
  const size_t size = (bytes + 255) / 256 * 256;
  if (g_arena_used + size > sizeof(g_arena)) return nullptr;
  void* ptr = g_arena + g_arena_used;
  g_arena_used += size;
  return ptr;
}
void adjacent_release(void*) noexcept {}

char* at(void* base, size_t offset) { return static_cast<char*>(base) + offset; }

// Segments of these sizes from the system (all allocated before any is freed), handed back: afterwards each is one
// free piece. Returns their starts.
std::vector<void*> free_segments(CachingAllocator& alloc, const std::vector<size_t>& sizes) {
  std::vector<void*> bases;
  for (size_t bytes : sizes) bases.push_back(alloc.allocate(bytes));
  for (size_t i = 0; i < sizes.size(); ++i) alloc.deallocate(bases[i], sizes[i]);
  return bases;
}

}  // namespace

TEST_CASE("caching allocator: a large request is carved from the best-fitting free piece, the rest stays free") {
  CachingAllocator alloc(recording_memory());
  const std::vector<void*> bases = free_segments(alloc, {6 * kMiB, 4 * kMiB});
  void* six = bases[0];
  void* four = bases[1];
  CHECK(g_allocs == 2);

  // 3 MiB: the 4 MiB piece fits best; its first 3 MiB are handed out, the last one stays free.
  void* a = alloc.allocate(3 * kMiB);
  CHECK(a == four);
  CHECK(alloc.stats().in_use == 3 * kMiB);
  CHECK(alloc.stats().cached == 7 * kMiB);
  // 5 MiB: only the 6 MiB piece fits; 1 MiB: the rest of the 4 MiB segment (the smallest that fits).
  void* b = alloc.allocate(5 * kMiB);
  CHECK(b == six);
  // Two 1 MiB requests: the rests of both segments, which fit equally well (the lower address first, and which
  // segment the system placed lower is the system's choice).
  void* c = alloc.allocate(kMiB);
  void* d = alloc.allocate(kMiB);
  CHECK(std::set<void*>{c, d} == std::set<void*>{at(four, 3 * kMiB), at(six, 5 * kMiB)});
  CHECK(c < d);
  CHECK(g_allocs == 2);  // all four from the two segments
  CHECK(alloc.stats().cached == 0);

  // A rest too small to be worth a piece of its own (at most the small limit, 256 KiB) stays with the request and
  // counts as in use.
  alloc.deallocate(a, 3 * kMiB);
  alloc.deallocate(at(four, 3 * kMiB), kMiB);
  void* whole = alloc.allocate(4 * kMiB - 100 * 1024);
  CHECK(whole == four);
  CHECK(alloc.stats().in_use == 10 * kMiB);
  alloc.deallocate(whole, 4 * kMiB - 100 * 1024);
  alloc.deallocate(b, 5 * kMiB);
  alloc.deallocate(at(six, 5 * kMiB), kMiB);
  CHECK(alloc.stats().in_use == 0);
}

TEST_CASE("caching allocator: a freed piece merges with its free neighbours, within its segment only") {
  g_arena_used = 0;
  CachingAllocator alloc(SystemMemory{"adjacent", &adjacent_allocate, &adjacent_release});
  void* base = free_segments(alloc, {8 * kMiB})[0];
  void* a = alloc.allocate(3 * kMiB);
  void* b = alloc.allocate(3 * kMiB);
  void* c = alloc.allocate(2 * kMiB);
  CHECK(a == base);
  CHECK(b == at(base, 3 * kMiB));
  CHECK(c == at(base, 6 * kMiB));

  // A then B free: one piece of 6 MiB at A serves 6 MiB.
  alloc.deallocate(a, 3 * kMiB);
  alloc.deallocate(b, 3 * kMiB);
  void* ab = alloc.allocate(6 * kMiB);
  CHECK(ab == base);
  CHECK(alloc.stats().system_allocs == 1);

  // Freed in the other order, and the middle piece last, which joins both of its neighbours.
  alloc.deallocate(ab, 6 * kMiB);
  a = alloc.allocate(3 * kMiB);
  b = alloc.allocate(3 * kMiB);
  alloc.deallocate(b, 3 * kMiB);
  alloc.deallocate(c, 2 * kMiB);
  alloc.deallocate(a, 3 * kMiB);
  void* all = alloc.allocate(8 * kMiB);
  CHECK(all == base);
  CHECK(alloc.stats().system_allocs == 1);

  // Two free segments never merge, even where they border each other: 10 MiB needs a third segment.
  void* other = alloc.allocate(2 * kMiB);  // the whole 8 MiB piece is in use: a new segment, right after it
  alloc.deallocate(other, 2 * kMiB);
  CHECK(other == at(base, 8 * kMiB));
  alloc.deallocate(all, 8 * kMiB);
  void* ten = alloc.allocate(10 * kMiB);
  CHECK(ten == at(base, 10 * kMiB));
  CHECK(alloc.stats().system_allocs == 3);
  alloc.deallocate(ten, 10 * kMiB);
}

TEST_CASE("caching allocator: empty_cache returns only wholly free segments; out of memory, the same") {
  CachingAllocator alloc(recording_memory());
  void* kept = free_segments(alloc, {8 * kMiB, 4 * kMiB})[0];
  void* piece = alloc.allocate(5 * kMiB);  // from the 8 MiB segment
  CHECK(piece == kept);
  CHECK(alloc.stats().cached == 7 * kMiB);

  alloc.empty_cache();  // the 4 MiB segment goes; the 8 MiB one, 3 MiB of it free, stays
  CHECK(g_releases == 1);
  CHECK(g_live.count(kept) == 1);
  CHECK(alloc.stats().cached == 3 * kMiB);
  CHECK(alloc.stats().in_use == 5 * kMiB);
  void* rest = alloc.allocate(3 * kMiB);  // its free piece still serves
  CHECK(rest == at(kept, 5 * kMiB));
  CHECK(g_allocs == 2);

  alloc.deallocate(piece, 5 * kMiB);  // its first piece free, its last in use: it stays too
  alloc.empty_cache();
  CHECK(g_releases == 1);
  CHECK(alloc.stats().cached == 5 * kMiB);
  alloc.deallocate(rest, 3 * kMiB);
  alloc.empty_cache();  // now wholly free
  CHECK(g_releases == 2);
  CHECK(g_live.empty());
  CHECK(alloc.stats().cached == 0);

  // Out of memory: the system holds at most 14 MiB. With 12 MiB of segments, 6 MiB more is refused; the allocator
  // returns the wholly free 4 MiB segment, not the 8 MiB one it has a piece of, and the second try succeeds.
  g_limit = 14 * kMiB;
  kept = free_segments(alloc, {8 * kMiB, 4 * kMiB})[0];
  piece = alloc.allocate(5 * kMiB);
  void* six = alloc.allocate(6 * kMiB);
  g_limit = SIZE_MAX;
  CHECK(g_releases == 3);
  CHECK(g_live.count(kept) == 1);
  CHECK(g_live.count(six) == 1);
  CHECK(alloc.stats().cached == 3 * kMiB);
  alloc.deallocate(six, 6 * kMiB);
  alloc.deallocate(piece, 5 * kMiB);
}

TEST_CASE(
    "caching allocator: a capture's pieces are never handed out, nor merged with shared ones, while its graph lives") {
  CachingAllocator alloc(recording_memory());
  void* base = free_segments(alloc, {8 * kMiB})[0];
  void* before = alloc.allocate(2 * kMiB);  // a piece of the step before the capture, freed during it
  CHECK(before == base);

  const uint64_t pool = alloc.begin_capture();
  void* captured = alloc.allocate(3 * kMiB);  // carved from the shared free piece: from now on the pool's
  CHECK(captured == at(base, 2 * kMiB));
  alloc.deallocate(before, 2 * kMiB);  // adopted by the pool
  alloc.end_capture();
  // Back to the pool after the capture: it merges with the pool's free piece before it, not with the shared free
  // piece after it (only a capture's own frees take shared memory in).
  alloc.deallocate(captured, 3 * kMiB);
  CHECK(alloc.stats().graph_cached == 5 * kMiB);

  // Outside the capture only the last 3 MiB are free: a larger request needs the system, and the free piece,
  // handed out and freed again, does not merge with the pool's pieces beside it.
  void* tail = alloc.allocate(3 * kMiB);
  CHECK(tail == at(base, 5 * kMiB));
  alloc.deallocate(tail, 3 * kMiB);
  void* big = alloc.allocate(5 * kMiB);
  CHECK(big != base);
  CHECK(g_allocs == 2);
  alloc.deallocate(big, 5 * kMiB);
  alloc.empty_cache();  // the new segment goes; the one holding the pool's pieces stays
  CHECK(g_live.count(base) == 1);

  // Once the graph is gone, its pieces join their free neighbours: the whole segment serves again.
  alloc.release_pool(pool);
  CHECK(alloc.stats().graph_cached == 0);
  void* all = alloc.allocate(8 * kMiB);
  CHECK(all == base);
  CHECK(g_allocs == 2);
  alloc.deallocate(all, 8 * kMiB);
}

TEST_CASE("caching allocator: a capture splits its pool's free pieces and merges them again") {
  CachingAllocator alloc(recording_memory());
  const uint64_t pool = alloc.begin_capture();
  void* four = alloc.allocate(4 * kMiB);  // a segment of its own, the pool's
  alloc.deallocate(four, 4 * kMiB);
  CHECK(alloc.stats().graph_cached == 4 * kMiB);
  void* three = alloc.allocate(3 * kMiB);  // the pool's free piece, split: the last 1 MiB stays the pool's
  CHECK(three == four);
  CHECK(alloc.stats().in_use == 3 * kMiB);
  CHECK(alloc.stats().graph_cached == kMiB);
  void* one = alloc.allocate(kMiB);  // the rest
  CHECK(one == at(four, 3 * kMiB));
  CHECK(g_allocs == 1);
  // Both freed (the later one first): one free piece of the pool again, which serves 4 MiB whole.
  alloc.deallocate(one, kMiB);
  alloc.deallocate(three, 3 * kMiB);
  CHECK(alloc.stats().graph_cached == 4 * kMiB);
  void* again = alloc.allocate(4 * kMiB);
  CHECK(again == four);
  CHECK(g_allocs == 1);
  alloc.deallocate(again, 4 * kMiB);
  alloc.end_capture();
  alloc.release_pool(pool);
  CHECK(alloc.stats().in_use == 0);
  CHECK(alloc.stats().graph_cached == 0);
  CHECK(alloc.stats().cached == 4 * kMiB);
}

TEST_CASE("caching allocator: a capture carves its pool's and the shared free pieces as one free space") {
  CachingAllocator alloc(recording_memory());
  const std::vector<void*> bases = free_segments(alloc, {8 * kMiB, 2 * kMiB});
  void* eight = bases[0];
  void* two = bases[1];
  const uint64_t pool = alloc.begin_capture();
  void* a = alloc.allocate(3 * kMiB);  // the 8 MiB segment's start (the 2 MiB one is too small)
  void* b = alloc.allocate(4 * kMiB);  // its last 1 MiB stays a shared free piece
  CHECK(a == eight);
  CHECK(b == at(eight, 3 * kMiB));
  // Freed by the capture, A is the pool's. A request of 2 MiB takes the best fit of both free spaces, the shared
  // 2 MiB segment, rather than splitting the pool's 3 MiB piece.
  alloc.deallocate(a, 3 * kMiB);
  void* c = alloc.allocate(2 * kMiB);
  CHECK(c == two);
  // B freed joins the pool's piece before it and takes in the shared free piece after it (the segment's last
  // 1 MiB), which becomes the pool's: the whole segment serves 8 MiB, as an eager step's frees would let it.
  alloc.deallocate(b, 4 * kMiB);
  CHECK(alloc.stats().graph_cached == 8 * kMiB);
  void* whole = alloc.allocate(8 * kMiB);
  CHECK(whole == eight);
  CHECK(g_allocs == 2);
  alloc.deallocate(whole, 8 * kMiB);
  alloc.deallocate(c, 2 * kMiB);
  alloc.end_capture();

  // Outside the capture nothing of either segment is free to others: a request needs the system.
  void* outside = alloc.allocate(kMiB);
  CHECK(outside != eight);
  CHECK(outside != two);
  CHECK(g_allocs == 3);
  alloc.deallocate(outside, kMiB);
  CHECK(alloc.stats().graph_cached == 10 * kMiB);
  alloc.release_pool(pool);
  CHECK(alloc.stats().graph_cached == 0);
  alloc.empty_cache();  // all three segments wholly free again
  CHECK(g_live.empty());
}

TEST_CASE("caching allocator: a capture of an eager step's requests gets the pieces the eager step got") {
  // A step of pseudo-random large requests and frees (each piece freed within the step, some of the step before's
  // freed early in it), run eagerly twice and then captured: the capture's pieces are the second eager step's, and
  // it asks the system for nothing. This is what lets a captured step hold what its eager warm-up steps held.
  CachingAllocator alloc(recording_memory());
  struct Op {
    size_t bytes;  // > 0: a request of this size; 0: free the live piece `index` (mod the live count)
    size_t index;
  };
  std::vector<Op> ops;
  uint32_t state = 11;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  for (int i = 0, live = 0; i < 300; ++i) {
    if (live > 0 && (live > 10 || next() % 5 < 2)) {
      ops.push_back({0, next()});
      --live;
    } else {
      ops.push_back({300'000 + next() % (3 * kMiB), 0});
      ++live;
    }
  }
  std::vector<std::pair<void*, size_t>> kept;  // what a step leaves for the next (its last 3 pieces)
  const auto step = [&] {
    std::vector<void*> pieces;  // every piece the step got, in request order
    std::vector<std::pair<void*, size_t>> live;
    for (const auto& [ptr, bytes] : kept) alloc.deallocate(ptr, bytes);  // the step before's, freed first
    kept.clear();
    for (const Op& op : ops) {
      if (op.bytes > 0) {
        live.emplace_back(alloc.allocate(op.bytes), op.bytes);
        pieces.push_back(live.back().first);
      } else {
        const size_t i = op.index % live.size();
        alloc.deallocate(live[i].first, live[i].second);
        live.erase(live.begin() + static_cast<ptrdiff_t>(i));
      }
    }
    for (size_t i = 0; i < live.size(); ++i) {
      if (i + 3 >= live.size()) {
        kept.push_back(live[i]);
      } else {
        alloc.deallocate(live[i].first, live[i].second);
      }
    }
    return pieces;
  };
  step();
  const std::vector<void*> eager = step();
  const size_t allocs = g_allocs;
  CHECK(step() == eager);  // eager steps repeat
  {
    GraphPool graph(&alloc, alloc.begin_capture());
    const std::vector<void*> captured = step();
    alloc.end_capture();
    CHECK(captured == eager);
    CHECK(g_allocs == allocs);
    for (const auto& [ptr, bytes] : kept) alloc.deallocate(ptr, bytes);  // the graph's outputs, back to its pool
    kept.clear();
  }
  alloc.empty_cache();
  CHECK(g_live.empty());
}

TEST_CASE("caching allocator: no piece of a live graph is handed out; all of them come back when it dies") {
  // A capture of pseudo-random requests and frees over segments that eager work left free, with pieces of the
  // step before freed during it; then eager work while the graph lives must never receive memory the graph holds
  // (any byte of a piece the capture allocated or freed), and once the graph is gone every segment is wholly free.
  CachingAllocator alloc(recording_memory());
  free_segments(alloc, {16 * kMiB, 6 * kMiB, 3 * kMiB});
  uint32_t state = 7;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::vector<std::pair<void*, size_t>> before;  // the step before's pieces, freed during the capture
  for (int i = 0; i < 4; ++i) {
    const size_t bytes = 300'000 + next() % (2 * kMiB);
    before.emplace_back(alloc.allocate(bytes), bytes);
  }
  std::map<char*, size_t> held;  // every piece the graph holds: address -> bytes (at least)
  std::vector<std::pair<void*, size_t>> live;
  {
    GraphPool graph(&alloc, alloc.begin_capture());
    for (const auto& [ptr, bytes] : before) {
      held[static_cast<char*>(ptr)] = bytes;
      alloc.deallocate(ptr, bytes);
    }
    for (int i = 0; i < 200; ++i) {
      if (!live.empty() && (live.size() > 8 || next() % 3 == 0)) {
        const size_t victim = next() % live.size();
        alloc.deallocate(live[victim].first, live[victim].second);
        live.erase(live.begin() + static_cast<ptrdiff_t>(victim));
      } else {
        const size_t bytes = 300'000 + next() % (3 * kMiB);
        live.emplace_back(alloc.allocate(bytes), bytes);
        size_t& size = held[static_cast<char*>(live.back().first)];
        size = std::max(size, bytes);
      }
      const AllocatorStats s = alloc.stats();
      REQUIRE(s.in_use + s.cached == system_bytes());
    }
    alloc.end_capture();
    // The graph's outputs, freed after the capture: back to the pool.
    for (const auto& [ptr, bytes] : live) alloc.deallocate(ptr, bytes);
    const auto overlaps_held = [&](const void* ptr, size_t bytes) {
      const char* p = static_cast<const char*>(ptr);
      auto after = held.upper_bound(const_cast<char*>(p));  // the first held piece starting after p
      if (after != held.end() && after->first < p + bytes) return true;
      return after != held.begin() && std::prev(after)->first + std::prev(after)->second > p;
    };
    std::vector<std::pair<void*, size_t>> eager;
    for (int i = 0; i < 40; ++i) {
      const size_t bytes = next() % (4 * kMiB);
      eager.emplace_back(alloc.allocate(bytes), bytes);
      CHECK_FALSE(overlaps_held(eager.back().first, bytes));
      if (next() % 2 == 0) {
        alloc.deallocate(eager.back().first, eager.back().second);
        eager.pop_back();
      }
    }
    for (const auto& [ptr, bytes] : eager) alloc.deallocate(ptr, bytes);
    alloc.empty_cache();  // keeps every segment the graph holds a piece of
    for (const auto& [ptr, bytes] : held) {
      bool kept = false;
      for (const auto& [base, size] : g_live) kept = kept || (ptr >= base && ptr < static_cast<char*>(base) + size);
      CHECK(kept);
    }
    CHECK(alloc.stats().graph_cached > 0);
  }  // the graph dies: its pool's pieces are shared again and merge with their free neighbours
  const AllocatorStats s = alloc.stats();
  CHECK(s.graph_cached == 0);
  CHECK(s.in_use == 0);
  alloc.empty_cache();
  CHECK(g_live.empty());
}

TEST_CASE("caching allocator: every piece is aligned as the system memory aligns its blocks") {
  // Odd request sizes: each piece starts at a multiple of 512 bytes from its segment's start, so it keeps the
  // segment's alignment: 256 bytes here (cudaMalloc's, the emulation's), 64 on the CPU (AVX-512).
  const std::vector<size_t> sizes = {300'001, 1'000'003, 263'000, 2'345'679, 777'777};
  CachingAllocator recording(recording_memory());
  CpuAllocator cpu;
  for (CachingAllocator* alloc : {&recording, static_cast<CachingAllocator*>(&cpu)}) {
    const size_t alignment = alloc == &recording ? 256 : CpuAllocator::kAlignment;
    free_segments(*alloc, {16 * kMiB});
    for (int round = 0; round < 2; ++round) {  // the second round from pieces merged and split again
      std::vector<void*> pieces;
      for (size_t bytes : sizes) {
        pieces.push_back(alloc->allocate(bytes));
        CHECK(reinterpret_cast<uintptr_t>(pieces.back()) % alignment == 0);
      }
      for (size_t i = 0; i < sizes.size(); i += 2) alloc->deallocate(pieces[i], sizes[i]);
      for (size_t i = 0; i < sizes.size(); i += 2) {
        pieces[i] = alloc->allocate(sizes[i] / 2 + 300'000);
        CHECK(reinterpret_cast<uintptr_t>(pieces[i]) % alignment == 0);
      }
      for (size_t i = 0; i < sizes.size(); ++i)
        alloc->deallocate(pieces[i], i % 2 == 0 ? sizes[i] / 2 + 300'000 : sizes[i]);
    }
    CHECK(alloc->stats().system_allocs == 1);  // all of them pieces of the one segment
  }
}

TEST_CASE("caching allocator: in use plus cached is what the system holds; pieces count at their own size") {
  CachingAllocator alloc(recording_memory());
  std::vector<std::pair<void*, size_t>> live;
  uint32_t state = 1;
  for (int i = 0; i < 400; ++i) {
    state = state * 1664525u + 1013904223u;  // a fixed pseudo-random mix of small and large requests and frees
    const size_t bytes = (state >> 8) % (3 * kMiB);
    if (!live.empty() && (live.size() > 12 || (state & 3) == 0)) {
      const size_t victim = (state >> 4) % live.size();
      alloc.deallocate(live[victim].first, live[victim].second);
      live.erase(live.begin() + static_cast<ptrdiff_t>(victim));
    } else {
      live.emplace_back(alloc.allocate(bytes), bytes);
    }
    const AllocatorStats s = alloc.stats();
    REQUIRE(s.in_use + s.cached == system_bytes());
    size_t requested = 0;
    for (const auto& [ptr, size] : live) requested += CachingAllocator::bucket_size(size);
    CHECK(s.in_use >= requested);  // a piece handed out whole counts its unsplit rest
    CHECK(s.in_use <= requested + live.size() * 256 * 1024);
    CHECK(s.peak_in_use >= s.in_use);
  }
  for (const auto& [ptr, bytes] : live) alloc.deallocate(ptr, bytes);
  CHECK(alloc.stats().in_use == 0);
  CHECK(alloc.stats().cached == system_bytes());
  alloc.empty_cache();
  CHECK(alloc.stats().cached == 0);
  CHECK(g_live.empty());
}

TEST_CASE("caching allocator: reset_peak_in_use starts the peak again from what is in use") {
  CachingAllocator alloc(recording_memory());
  void* kept = alloc.allocate(kMiB);
  void* big = alloc.allocate(8 * kMiB);
  alloc.deallocate(big, 8 * kMiB);
  const size_t kept_bytes = alloc.stats().in_use;
  REQUIRE(alloc.stats().peak_in_use >= kept_bytes + 8 * kMiB);
  alloc.reset_peak_in_use();
  CHECK(alloc.stats().peak_in_use == kept_bytes);
  void* small = alloc.allocate(2 * kMiB);
  const size_t small_bytes = alloc.stats().in_use - kept_bytes;
  alloc.deallocate(small, 2 * kMiB);
  CHECK(alloc.stats().peak_in_use == kept_bytes + small_bytes);  // the 8 MiB block before the reset is forgotten
  alloc.deallocate(kept, kMiB);
  alloc.empty_cache();
}
