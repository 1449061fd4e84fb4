// The profiler (backends/profiler.h) on the CUDA backend: a BEGAN step at 64x64 (the paper's layer count, at a
// tiny width) makes the CPU's primitive calls, one for one; every call queues at least one device kernel; Adam
// queues one kernel per 32 parameter tensors; the table (printed) says how many kernels a step launches, the
// figure docs/gpu.md quotes. Under cuda_emulation the kernels are counted where the emulated launchers run them.
#include <doctest/doctest.h>

#include "backends/backend.h"
#include "backends/profiler.h"
#include "began/model.h"
#include "began/step.h"
#include "nn/optim.h"
#include "tensor/creation.h"

namespace atelier {
namespace {

// Profiles the second of two BEGAN steps (the first makes Adam's state and fills the allocator's cache) on
// `device`: 64x64 RGB, n = 4, h = 8, batch 16 (bench_train's batch). `adam_tensors` gets D's and G's parameter tensor
// counts.
ProfileReport profile_began_step(Device device, int64_t adam_tensors[2]) {
  manual_seed(3);
  began::ModelConfig c;
  c.image_size = 64;
  c.channels = 3;
  c.n = 4;
  c.h = 8;
  began::Generator G(c);
  began::Discriminator D(c);
  G.to(device);
  D.to(device);
  nn::Adam opt_g(G.parameters(), 1e-4, {0.5, 0.999});
  nn::Adam opt_d(D.parameters(), 1e-4, {0.5, 0.999});
  adam_tensors[0] = static_cast<int64_t>(D.parameters().size());
  adam_tensors[1] = static_cast<int64_t>(G.parameters().size());
  const Tensor x = uniform({16, 3, 64, 64}, -1, 1, RandomKey{9, 0, 0}).to(device);
  const Tensor k = scalar_tensor(0.3, DType::Float64, device);
  auto step = [&](int64_t s) {
    const Tensor z_d = began::sample_z(16, c.h, 5, s, began::LatentStream::discriminator, device);
    const Tensor z_g = began::sample_z(16, c.h, 5, s, began::LatentStream::generator, device);
    began::began_step_device(G, D, opt_g, opt_d, x, z_d, z_g, k);
  };
  step(0);
  Profiler profiler(backend_for(device));
  step(1);
  return profiler.report();
}

TEST_CASE("cuda profile: a BEGAN step makes the CPU's primitive calls; each queues kernels, Adam one per 32 tensors") {
  int64_t tensors_cpu[2] = {0, 0}, tensors[2] = {0, 0};
  const ProfileReport cpu = profile_began_step(Device::cpu(), tensors_cpu);
  const ProfileReport cuda = profile_began_step(Device::cuda(), tensors);
  MESSAGE("one BEGAN step at 64x64x3 (n = 4, batch 16) on " << cuda.backend << ":\n" << format_profile(cuda));
  CHECK(cuda.backend == "cuda");
  CHECK(cuda.calls == cpu.calls);
  CHECK(cuda.calls > 100);
  REQUIRE(cuda.rows.size() == cpu.rows.size());
  int64_t kernels = 0;
  for (const ProfileRow& row : cuda.rows) {
    INFO(primitive_name(row.op) << " / " << row.what);
    int64_t cpu_calls = -1;
    for (const ProfileRow& c : cpu.rows) {
      if (c.op == row.op && c.what == row.what) cpu_calls = c.calls;
    }
    CHECK(row.calls == cpu_calls);
    CHECK(row.kernels >= row.calls);  // every call queues work on the device
    CHECK(row.seconds >= 0);
    kernels += row.kernels;
    if (row.op == PrimitiveOp::adam_step_multi) {
      // One launch per 32 tensors (docs/gpu.md, "Adam as one launch"), for D's optimiser and G's.
      CHECK(row.calls == 2);
      CHECK(row.kernels == (tensors[0] + 31) / 32 + (tensors[1] + 31) / 32);
    }
  }
  CHECK(cuda.kernels == kernels);
  // The calls fit in the span. On a GPU that runs behind the host, a call's closing mark and the next call's opening
  // mark share a timestamp (nothing runs between them), so the calls tile the span exactly and the sum of their
  // times, each a difference of two marks, may round a few 1e-18 s above it: a nanosecond of slack, far below any
  // real overlap (an event's resolution is about half a microsecond).
  CHECK(cuda.call_seconds <= cuda.span_seconds + 1e-9);
  CHECK(tensors[0] == tensors_cpu[0]);
}

}  // namespace
}  // namespace atelier
