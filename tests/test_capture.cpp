// Graph capture on the CPU (docs/gpu.md, "--cuda-graph"): the caching allocator's private pools over a fake system
// memory, the recorder behind launch() (calls stored with their arguments, replayed on the same pointers, nothing
// run during the capture), the refusal of host reads and copies inside a capture, and a captured Adam step that
// replays with each step's bias corrections.
#include <cstdlib>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/caching_allocator.h"
#include "backends/workspace.h"
#include "tensor/readback.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

// System memory that counts what reaches it.
size_t g_system_allocs = 0, g_system_releases = 0;
void* counting_allocate(size_t bytes) {
  ++g_system_allocs;
  return std::malloc(bytes);
}
void counting_release(void* ptr) noexcept {
  ++g_system_releases;
  std::free(ptr);
}
SystemMemory counting_memory() { return SystemMemory{"fake", &counting_allocate, &counting_release}; }

// System memory that holds at most g_live_limit blocks at a time (the rest is refused: nullptr).
size_t g_live_blocks = 0, g_live_limit = 0;
void* limited_allocate(size_t bytes) {
  if (g_live_blocks >= g_live_limit) return nullptr;
  ++g_live_blocks;
  return counting_allocate(bytes);
}
void limited_release(void* ptr) noexcept {
  --g_live_blocks;
  counting_release(ptr);
}

Backend& cpu() { return backend_for(Device::cpu()); }

// Ends the CPU backend's capture if a test failed inside one, so later tests do not run captured.
struct EndCaptureGuard {
  ~EndCaptureGuard() {
    if (cpu().capturing()) cpu().end_capture();
  }
};

}  // namespace

TEST_CASE("caching allocator: a small request takes a cached block of its own bucket only") {
  // Up to 256 KiB: exact buckets, so a repeated step finds each bucket as full as its busiest moment left it
  // (larger requests are pieces of segments: test_caching_allocator.cpp).
  CachingAllocator alloc(counting_memory());
  void* big = alloc.allocate(8192);
  alloc.deallocate(big, 8192);
  const size_t allocs = g_system_allocs;
  void* p = alloc.allocate(5000);  // bucket 5120: the cached 8 KiB block does not serve it
  CHECK(p != big);
  CHECK(g_system_allocs == allocs + 1);
  CHECK(alloc.stats().in_use == 5120);
  void* again = alloc.allocate(8000);  // bucket 8192
  CHECK(again == big);
  alloc.deallocate(again, 8000);
  alloc.deallocate(p, 5000);
}

TEST_CASE("graph pool: the blocks a capture used stay reserved while its graph lives") {
  CachingAllocator alloc(counting_memory());
  const size_t kSize = 4096;

  void* before = alloc.allocate(kSize);  // a block of the step before the capture, freed during it
  void* shared = alloc.allocate(kSize);  // a cached block of the shared lists
  alloc.deallocate(shared, kSize);

  const uint64_t pool = alloc.begin_capture();
  CHECK(alloc.capturing());
  check_throws_with([&] { alloc.begin_capture(); }, {"already under way", "do not nest"});
  alloc.deallocate(before, kSize);     // adopted by the pool: the captured step may still read it
  void* temp = alloc.allocate(kSize);  // the pool's own block first
  CHECK(temp == before);
  alloc.deallocate(temp, kSize);
  void* kept = alloc.allocate(kSize);  // reused inside the capture, kept after it (a step's output)
  CHECK(kept == before);
  void* from_shared = alloc.allocate(kSize);  // the shared cache, which then belongs to the pool
  CHECK(from_shared == shared);
  alloc.deallocate(from_shared, kSize);

  // Another thread allocates from the shared lists during the capture, never from the pool.
  void* other_thread = nullptr;
  std::thread([&] {
    CHECK_FALSE(alloc.capturing());
    other_thread = alloc.allocate(kSize);
    alloc.deallocate(other_thread, kSize);
  }).join();
  CHECK(other_thread != before);
  CHECK(other_thread != shared);
  alloc.end_capture();
  CHECK_FALSE(alloc.capturing());

  // Outside the capture, nothing the graph uses is handed out: the block freed during it, the shared block it took,
  // and its output once freed.
  const std::set<void*> reserved = {before, shared};
  alloc.deallocate(kept, kSize);  // back to the pool, not to the shared lists
  std::vector<void*> outside;
  for (int i = 0; i < 3; ++i) outside.push_back(alloc.allocate(kSize));
  for (void* p : outside) CHECK(reserved.count(p) == 0);
  CHECK(alloc.stats().graph_cached == 2 * kSize);
  for (void* p : outside) alloc.deallocate(p, kSize);

  // empty_cache keeps the pool's blocks; releasing the pool hands them to the shared lists.
  const size_t releases = g_system_releases;
  alloc.empty_cache();
  CHECK(g_system_releases == releases + 3);  // the three outside blocks, not the pool's two
  CHECK(alloc.stats().cached == 2 * kSize);
  alloc.release_pool(pool);
  CHECK(alloc.stats().graph_cached == 0);
  const size_t allocs = g_system_allocs;
  void* a = alloc.allocate(kSize);
  void* b = alloc.allocate(kSize);
  CHECK(g_system_allocs == allocs);  // both from the released pool's blocks
  CHECK(std::set<void*>{a, b} == reserved);
  alloc.deallocate(a, kSize);
  alloc.deallocate(b, kSize);
  CHECK(alloc.stats().in_use == 0);
}

TEST_CASE("graph pool: a shared block a capture took and still holds at its end goes back to the pool when freed") {
  // The captured step's output: taken from the shared cache during the capture, freed only after it ends. A replay
  // writes it again, so it must not be handed out to eager work.
  CachingAllocator alloc(counting_memory());
  const size_t kSize = 4096;
  void* shared = alloc.allocate(kSize);
  alloc.deallocate(shared, kSize);
  const uint64_t pool = alloc.begin_capture();
  void* output = alloc.allocate(kSize);
  CHECK(output == shared);
  alloc.end_capture();
  alloc.deallocate(output, kSize);
  CHECK(alloc.stats().graph_cached == kSize);
  void* outside = alloc.allocate(kSize);
  CHECK(outside != shared);
  alloc.deallocate(outside, kSize);
  alloc.release_pool(pool);
  CHECK(alloc.stats().graph_cached == 0);
}

TEST_CASE("graph pool: out of memory during a capture keeps the cache (a cudaFree would break it) and says so") {
  g_live_blocks = 0;
  g_live_limit = 1;
  CachingAllocator alloc(SystemMemory{"limited", &limited_allocate, &limited_release});
  alloc.deallocate(alloc.allocate(4096), 4096);  // the one block the system gives, now cached
  CHECK(alloc.stats().cached == 4096);

  const uint64_t pool = alloc.begin_capture();
  const size_t releases = g_system_releases;
  check_throws_with([&] { alloc.allocate(8192); }, {"out of memory", "8192", "during a graph capture", "kept"});
  std::thread([&] {  // another thread's refusal during the capture keeps the cache too
    check_throws_with([&] { alloc.allocate(8192); }, {"during a graph capture"});
  })
      .join();
  CHECK(g_system_releases == releases);
  CHECK(alloc.stats().cached == 4096);
  alloc.end_capture();
  alloc.release_pool(pool);

  // After the capture the same request empties the cache and succeeds.
  void* big = alloc.allocate(8192);
  CHECK(g_system_releases == releases + 1);
  CHECK(alloc.stats().cached == 0);
  alloc.deallocate(big, 8192);
  alloc.empty_cache();
  CHECK(g_live_blocks == 0);
}

TEST_CASE("graph pool: a block allocated in a capture and freed after its graph is gone goes to the shared lists") {
  CachingAllocator alloc(counting_memory());
  uint64_t pool = alloc.begin_capture();
  void* out = alloc.allocate(1000);
  alloc.end_capture();
  {
    GraphPool hold(&alloc, pool);  // what a graph keeps; released here
  }
  alloc.deallocate(out, 1000);
  CHECK(alloc.stats().graph_cached == 0);
  void* again = alloc.allocate(1000);
  CHECK(again == out);  // a shared cache hit
  // A block in use belongs to its owner (the allocator's destructor frees only its cache): give it back.
  alloc.deallocate(again, 1000);
}

TEST_CASE("capture on the cpu: calls are recorded, not run, and replay on the same tensors") {
  EndCaptureGuard guard;
  Tensor a = full({5}, 2.0), b = full({5}, 3.0), out = full({5}, -1.0);
  Backend& backend = cpu();
  backend.begin_capture();
  CHECK(backend.capturing());
  CHECK(backend.recording());
  {
    NoGradGuard no_grad;
    out.copy_(a * b + 1.0);  // mul, add, copy ... (recorded, not run)
  }
  std::unique_ptr<CapturedGraph> graph = backend.end_capture();
  CHECK_FALSE(backend.capturing());
  CHECK(graph->recorded_calls() >= 3);
  CHECK(out.to_vector<float>() == std::vector<float>(5, -1.0f));  // nothing ran during the capture

  graph->replay();
  CHECK(out.to_vector<float>() == std::vector<float>(5, 7.0f));  // 2 * 3 + 1
  a.fill_(4.0);                                                  // a new input, written into the same tensor
  graph->replay();
  CHECK(out.to_vector<float>() == std::vector<float>(5, 13.0f));
}

TEST_CASE("capture on the cpu: a draw from the default generator is refused (each replay would repeat it)") {
  EndCaptureGuard guard;
  const Tensor x = ones({8});
  cpu().begin_capture();
  check_throws_with([] { rand({4}); }, {"uniform: a draw from the default generator inside a graph capture"});
  check_throws_with([&] { dropout(x, 0.5); }, {"would give the same numbers at every replay"});
  CHECK(uniform({4}, 0, 1, RandomKey{1, 2, 3}).numel() == 4);     // fixed numbers by their key: allowed
  CHECK(dropout(x, 0.5, /*training=*/false).impl() == x.impl());  // eval mode draws nothing
  cpu().end_capture();
  CHECK(rand({4}).numel() == 4);  // after the capture, as before
}

TEST_CASE("capture on the cpu: adam_step_multi's host arrays are copied into the recording") {
  EndCaptureGuard guard;
  Tensor p = full({7}, 1.0), g = full({7}, 0.5), m = zeros({7}), v = zeros({7});
  Tensor p_ref = full({7}, 1.0), m_ref = zeros({7}), v_ref = zeros({7});
  const AdamHyperparameters h{};
  cpu().begin_capture();
  {
    // The items (and the arrays raw::adam_step_multi_ builds from them) are gone before the replay.
    std::vector<raw::AdamTensors> items = {{p, g, m, v, 1, 0}};
    raw::adam_step_multi_(items, 0.1, h);
  }
  std::unique_ptr<CapturedGraph> graph = cpu().end_capture();
  graph->replay();
  raw::adam_step_(p_ref, g, m_ref, v_ref, 1, 0.1, h);
  CHECK(p.to_vector<float>() == p_ref.to_vector<float>());
  CHECK(m.to_vector<float>() == m_ref.to_vector<float>());
}

TEST_CASE("capture: host reads and copies inside a capture are refused; other threads go on as usual") {
  EndCaptureGuard guard;
  Tensor t = full({3}, 1.5), k = full({}, 0.25, DType::Float64);
  TensorReadback readback(Device::cpu(), 1);
  cpu().begin_capture();
  check_throws_with([&] { (void)t.to_vector<float>(); }, {"host read", "during a graph capture", "cpu"});
  check_throws_with([&] { (void)k.item<double>(); }, {"during a graph capture"});
  float host[3] = {};
  check_throws_with([&] { cpu().copy_to_host(host, t.raw_data(), sizeof(host)); },
                    {"copy_to_host on cpu during a graph capture"});
  check_throws_with([&] { cpu().copy_from_host(t.raw_data(), host, sizeof(host)); }, {"copy_from_host"});
  check_throws_with([&] { cpu().synchronize(); }, {"synchronize"});
  check_throws_with([&] { readback.start(k.reshape({1})); }, {"TensorReadback.start"});
  check_throws_with([&] { cpu().begin_capture(); }, {"do not nest"});
  // A data loader's thread: its launches run (not recorded) and its reads are allowed.
  std::vector<float> seen;
  std::thread([&] {
    Tensor u = full({2}, 3.0) + 1.0;
    seen = u.to_vector<float>();
  }).join();
  CHECK(seen == std::vector<float>{4.0f, 4.0f});
  std::unique_ptr<CapturedGraph> graph = cpu().end_capture();
  CHECK(graph->recorded_calls() == 0);
  CHECK(t.to_vector<float>() == std::vector<float>(3, 1.5f));  // reads work again
  check_throws_with([&] { cpu().end_capture(); }, {"without a capture"});
}

TEST_CASE("capture: a captured Adam step replays with each step's lr and bias corrections, bit for bit") {
  EndCaptureGuard guard;
  // Two tensors with fixed gradients; reference: eager steps on copies.
  auto make = [] {
    std::vector<Tensor> ps = {uniform({13}, -1, 1, RandomKey{5, 0, 0}), uniform({4, 3}, -1, 1, RandomKey{5, 1, 0})};
    for (Tensor& p : ps) p.requires_grad_(true);
    return ps;
  };
  std::vector<Tensor> eager = make(), captured = make();
  const std::vector<Tensor> grads = {uniform({13}, -1, 1, RandomKey{6, 0, 0}),
                                     uniform({4, 3}, -1, 1, RandomKey{6, 1, 0})};
  nn::Adam opt_eager(eager, 0.01, {0.5, 0.999}), opt(captured, 0.01, {0.5, 0.999});
  auto set_grads = [&](std::vector<Tensor>& ps) {
    for (size_t i = 0; i < ps.size(); ++i) ps[i].set_grad(grads[i].clone());
  };

  // No state yet: a capture is refused (a captured zero-fill would reset the moments every replay).
  set_grads(captured);
  cpu().begin_capture();
  check_throws_with([&] { opt.step(); }, {"Adam.step", "no state yet", "run one step eagerly first"});
  cpu().end_capture();
  check_throws_with([&] { opt.prepare_replay(); }, {"no step() was captured"});

  set_grads(eager);
  opt_eager.step();
  opt.step();  // the warm-up step
  cpu().begin_capture();
  opt.step();
  check_throws_with([&] { opt.step(); }, {"called twice in one graph capture"});
  std::unique_ptr<CapturedGraph> graph = cpu().end_capture();
  CHECK(opt.step_count(0) == 1);  // the capture took no step

  for (int s = 0; s < 4; ++s) {
    if (s == 2) {  // a new rate reaches the replays through prepare_replay
      opt_eager.set_lr(0.003);
      opt.set_lr(0.003);
    }
    opt_eager.step();
    opt.prepare_replay();
    graph->replay();
    for (size_t i = 0; i < eager.size(); ++i) {
      CHECK(captured[i].to_vector<float>() == eager[i].to_vector<float>());
      CHECK(opt.step_count(i) == opt_eager.step_count(i));
    }
  }

  // SGD has no captured form: refused with a message that says why.
  std::vector<Tensor> sgd_params = make();
  set_grads(sgd_params);
  nn::SGD sgd(sgd_params, 0.1);
  cpu().begin_capture();
  check_throws_with([&] { sgd.step(); }, {"SGD.step", "no captured form"});
  cpu().end_capture();
}

TEST_CASE("workspace: one growing block; a capture uses it and its graph keeps it when a larger request replaces it") {
  CachingAllocator alloc(counting_memory());
  Workspace ws(alloc);
  void* small = ws.get(1000);
  CHECK(ws.get(600) == small);  // a smaller request: the same block
  void* w = ws.get(3000);       // a larger one: a new block, the old one back to the shared cache
  CHECK(ws.bytes() == 3000);
  void* reused = alloc.allocate(1000);
  CHECK(reused == small);
  alloc.deallocate(reused, 1000);

  // The capture's requests fit: they get the shared block, and the capture reserves nothing of its own.
  const uint64_t pool = alloc.begin_capture();
  const size_t allocs = g_system_allocs;
  CHECK(ws.get(3000) == w);
  CHECK(ws.get(500) == w);
  CHECK(g_system_allocs == allocs);
  CHECK(alloc.stats().graph_cached == 0);
  alloc.end_capture();
  GraphPool graph(&alloc, pool);

  // Eager work after the capture uses the same block, until a larger request replaces it: the old block then goes
  // to the graph's pool (a replay writes it), not to the shared lists.
  CHECK(ws.get(2000) == w);
  void* bigger = ws.get(8000);
  CHECK(bigger != w);
  CHECK(alloc.stats().graph_cached == CachingAllocator::bucket_size(3000));
  void* outside = alloc.allocate(3000);
  CHECK(outside != w);
  alloc.deallocate(outside, 3000);

  // Once the graph is gone, the block is everyone's again.
  graph.release();
  CHECK(alloc.stats().graph_cached == 0);
  void* after = alloc.allocate(3000);
  CHECK(after == w);
  alloc.deallocate(after, 3000);
  ws.release();
  CHECK(alloc.stats().in_use == 0);
}

TEST_CASE("workspace: a capture's request larger than the shared block gets a block of the capture's pool") {
  CachingAllocator alloc(counting_memory());
  Workspace ws(alloc);
  void* w = ws.get(1000);
  const uint64_t pool = alloc.begin_capture();
  void* own = ws.get(5000);
  CHECK(own != w);
  CHECK(ws.bytes() == 1000);   // the shared block is not replaced during a capture
  CHECK(ws.get(4900) == own);  // the same size class: the pool's block again, in stream order after the first
  alloc.end_capture();
  GraphPool graph(&alloc, pool);
  CHECK(alloc.stats().graph_cached == CachingAllocator::bucket_size(5000));  // reserved while the graph lives
  void* outside = alloc.allocate(5000);
  CHECK(outside != own);
  alloc.deallocate(outside, 5000);
  // The shared block was not used by the capture: replaced now, it goes to the shared lists at once.
  ws.get(2000);
  void* again = alloc.allocate(1000);
  CHECK(again == w);
  alloc.deallocate(again, 1000);
  graph.release();
  ws.release();
  CHECK(alloc.stats().in_use == 0);
}

TEST_CASE("workspace: a block one live graph holds is not shared with a second capture") {
  CachingAllocator alloc(counting_memory());
  Workspace ws(alloc);
  void* w = ws.get(1000);
  const uint64_t first = alloc.begin_capture();
  CHECK(ws.get(1000) == w);
  alloc.end_capture();
  GraphPool first_graph(&alloc, first);
  const uint64_t second = alloc.begin_capture();
  // w belongs to the first graph's pool: if the first graph went first, w would go back to everyone while the
  // second still replays on it. So the second capture gets its own block.
  void* own = ws.get(1000);
  CHECK(own != w);
  CHECK_FALSE(alloc.adopt_into_capture(w));
  alloc.end_capture();
  GraphPool second_graph(&alloc, second);
  CHECK_FALSE(alloc.adopt_into_capture(w));  // not capturing
  first_graph.release();
  second_graph.release();
  ws.release();
  CHECK(alloc.stats().in_use == 0);
}
