// The caching allocator's large requests (backends/caching_allocator.h): pieces carved from segments by best fit,
// a freed piece merged with its free neighbours, empty_cache releasing only wholly free segments, a capture's
// pieces kept apart while its graph lives, the alignment of every piece, and what the byte counters count. Over a
// fake system memory that records its blocks; the buckets, the pools and out-of-memory are in
// test_cpu_backend.cpp, test_capture.cpp and test_backend_settings.cpp.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
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
  void* c = alloc.allocate(kMiB);
  CHECK(c == at(four, 3 * kMiB));
  void* d = alloc.allocate(kMiB);
  CHECK(d == at(six, 5 * kMiB));
  CHECK(g_allocs == 2);  // all four from the two segments
  CHECK(alloc.stats().cached == 0);

  // A rest too small to be worth a piece of its own (at most the small limit, 256 KiB) stays with the request and
  // counts as in use.
  for (void* p : {a, c}) alloc.deallocate(p, p == a ? 3 * kMiB : kMiB);
  void* whole = alloc.allocate(4 * kMiB - 100 * 1024);
  CHECK(whole == four);
  CHECK(alloc.stats().in_use == 10 * kMiB);
  alloc.deallocate(whole, 4 * kMiB - 100 * 1024);
  alloc.deallocate(b, 5 * kMiB);
  alloc.deallocate(d, kMiB);
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

TEST_CASE("caching allocator: a capture's pieces are never split, merged or handed out while its graph lives") {
  CachingAllocator alloc(recording_memory());
  void* base = free_segments(alloc, {8 * kMiB})[0];
  void* before = alloc.allocate(2 * kMiB);  // a piece of the step before the capture, freed during it
  CHECK(before == base);

  const uint64_t pool = alloc.begin_capture();
  void* captured = alloc.allocate(3 * kMiB);  // carved from the shared free piece: from now on the pool's
  CHECK(captured == at(base, 2 * kMiB));
  alloc.deallocate(before, 2 * kMiB);  // adopted by the pool
  alloc.end_capture();
  alloc.deallocate(captured, 3 * kMiB);  // back to the pool, still in use for its segment
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

TEST_CASE("caching allocator: a capture reuses a cached piece of its pool up to twice its request, whole") {
  CachingAllocator alloc(recording_memory());
  const uint64_t pool = alloc.begin_capture();
  void* four = alloc.allocate(4 * kMiB);
  alloc.deallocate(four, 4 * kMiB);
  void* three = alloc.allocate(3 * kMiB);  // the pool's piece, not split: it counts 4 MiB in use
  CHECK(three == four);
  CHECK(alloc.stats().in_use == 4 * kMiB);
  CHECK(alloc.stats().graph_cached == 0);
  alloc.deallocate(three, 3 * kMiB);
  CHECK(alloc.stats().graph_cached == 4 * kMiB);
  void* one = alloc.allocate(kMiB);  // 4 MiB is more than twice 1 MiB: a segment of its own
  CHECK(one != four);
  CHECK(g_allocs == 2);
  alloc.deallocate(one, kMiB);
  alloc.end_capture();
  alloc.release_pool(pool);
  CHECK(alloc.stats().in_use == 0);
  CHECK(alloc.stats().cached == 5 * kMiB);
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
