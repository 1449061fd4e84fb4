// Training on the GPU against the CPU: the Fashion-MNIST classifier and BEGAN's step (began/step.h) on tiny
// sizes give the CPU's losses, from the same initial weights and data; and after two warm-up steps, steps 3 to 5
// of a training loop ask cudaMalloc for nothing (the caching allocator serves every request); the no-sync step
// (began_step_device) reads nothing on the host and its scalars, read back a step late, match; and the step
// captured once and replayed (--cuda-graph, began/step_runner.h) gives the eager step's numbers bit for bit; and
// so does a classifier step captured by hand (its cross_entropy reads no bad-index flag back).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/backend.h"
#include "backends/conv_algo.h"
#include "began/eval/fmnist_classifier.h"
#include "began/model.h"
#include "began/step.h"
#include "began/step_runner.h"
#include "nn/grad_clip.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/readback.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

// Three optimiser steps compound the per-op differences (1e-6 elementwise, 1e-5 for reductions): a relative
// 1e-4 on a loss leaves room for that and still catches a wrong kernel, which moves a loss by percents.
constexpr double kLossTolerance = 1e-4;

void check_close(double cuda_value, double cpu_value, const char* what, int step) {
  INFO(what << " at step " << step << ": cuda " << cuda_value << ", cpu " << cpu_value);
  CHECK(std::fabs(cuda_value - cpu_value) <= kLossTolerance * std::max(1.0, std::fabs(cpu_value)));
}

// The Fashion-MNIST classifier's losses (began/eval/: four convolutions, two of stride 2, ELUs, two linear
// layers) over `steps` Adam steps on `device`, from seed 11's weights and 8 fixed images of 10 classes.
std::vector<double> classifier_losses(Device device, int steps) {
  manual_seed(11);
  began::FmnistClassifier model;
  model.to(device);
  nn::Adam opt(model.parameters(), 2e-3);
  const Tensor x = uniform({8, 1, 32, 32}, -1, 1, RandomKey{12, 0, 0}).to(device);
  const Tensor labels = from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8}).to(device);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), labels);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}

TEST_CASE("cuda training: three classifier steps give the CPU's losses") {
  const std::vector<double> cpu = classifier_losses(Device::cpu(), 3);
  const std::vector<double> cuda = classifier_losses(Device::cuda(), 3);
  REQUIRE(cuda.size() == cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) check_close(cuda[i], cpu[i], "loss", static_cast<int>(i) + 1);
  CHECK(cpu.back() < cpu.front());  // the steps did train: the comparison is not between two constants
}

// One classifier step on (x, labels), its gradients clipped to a global norm of 0.5 (nn/grad_clip.h: the scale
// stays on the device); the loss is returned on the device, unread.
Tensor classifier_step(began::FmnistClassifier& model, nn::Optimizer& opt, const Tensor& x, const Tensor& labels) {
  opt.zero_grad();
  Tensor loss = cross_entropy(model.forward(x), labels);
  loss.backward();
  nn::clip_grad_norm_(model.parameters(), 0.5);
  opt.step();
  return loss.detach();
}

TEST_CASE(
    "cuda training: a classifier step (cross_entropy's gather and scatter_add, clipped gradients) reads nothing on "
    "the host, and captured once, its replays give the eager steps' losses and weights bit for bit") {
  Backend& cuda = backend_for(Device::cuda());
  manual_seed(11);
  began::FmnistClassifier eager_model;
  manual_seed(11);
  began::FmnistClassifier graph_model;
  eager_model.to(Device::cuda());
  graph_model.to(Device::cuda());
  nn::Adam eager_opt(eager_model.parameters(), 2e-3);
  nn::Adam graph_opt(graph_model.parameters(), 2e-3);
  // The graph's inputs: each step's batch is copied into them (eager work, outside the graph).
  const Tensor x_in = empty({8, 1, 32, 32}, DType::Float32, Device::cuda());
  const Tensor labels_in = empty({8}, DType::Int64, Device::cuda());
  std::unique_ptr<CapturedGraph> graph;
  Tensor graph_loss;
  for (int step = 0; step < 6; ++step) {
    INFO("step " << step + 1);
    const Tensor x = uniform({8, 1, 32, 32}, -1, 1, RandomKey{12, static_cast<uint64_t>(step), 0}).to(Device::cuda());
    std::vector<int64_t> classes(8);
    for (int i = 0; i < 8; ++i) classes[i] = (i + step) % 10;
    const Tensor labels = from_vector(classes, {8}).to(Device::cuda());

    const uint64_t reads = host_sync_reads();
    const Tensor eager_loss = classifier_step(eager_model, eager_opt, x, labels);
    CHECK(host_sync_reads() == reads);  // the eager step reads nothing (no bad-index flag read per call)

    {
      NoGradGuard no_grad;
      Tensor(x_in).copy_(x);
      Tensor(labels_in).copy_(labels);
    }
    if (step < 2) {
      graph_loss = classifier_step(graph_model, graph_opt, x_in, labels_in);  // warm-up: Adam's state, cuBLAS
    } else {
      if (step == 2) {  // records the step; the replay below runs it
        cuda.begin_capture();
        graph_loss = classifier_step(graph_model, graph_opt, x_in, labels_in);
        graph = cuda.end_capture();
      }
      graph_opt.prepare_replay();
      graph->replay();
      CHECK(host_sync_reads() == reads);
    }
    CHECK(graph_loss.item() == eager_loss.item());
  }
  const std::vector<Tensor> pe = eager_model.parameters(), pg = graph_model.parameters();
  for (size_t i = 0; i < pe.size(); ++i) CHECK(pe[i].to_vector<float>() == pg[i].to_vector<float>());
  graph.reset();
}

began::ModelConfig tiny_began() {
  began::ModelConfig c;
  c.image_size = 32;
  c.channels = 1;
  c.n = 4;
  c.h = 8;
  return c;
}

// tiny_began() after manual_seed(3): the weights every BEGAN test here starts from.
began::ModelConfig seeded_tiny_began() {
  manual_seed(3);
  return tiny_began();
}

// G and D with seed 3's weights, their Adam optimisers and a fixed batch, on `device`. (Module::to keeps the
// parameter handles the optimisers hold; their state is made on the first step, on the parameters' device.)
struct BeganRig {
  began::ModelConfig c = seeded_tiny_began();
  began::Generator G{c};
  began::Discriminator D{c};
  nn::Adam opt_g{G.parameters(), 1e-3, {0.5, 0.999}};
  nn::Adam opt_d{D.parameters(), 1e-3, {0.5, 0.999}};
  Tensor x;
  explicit BeganRig(Device device) : x(uniform({4, 1, 32, 32}, -1, 1, RandomKey{9, 0, 0}).to(device)) {
    G.to(device);
    D.to(device);
  }
};

// BEGAN's step results over `steps` steps on `device`, from seed 3's weights and fixed data.
std::vector<began::StepResult> began_results(Device device, int steps, double* k_out = nullptr) {
  BeganRig rig(device);
  auto& [c, G, D, opt_g, opt_d, x] = rig;
  double k = 0.3;
  std::vector<began::StepResult> results;
  for (int step = 0; step < steps; ++step) {
    const Tensor z_d = began::sample_z(4, c.h, 5, step, began::LatentStream::discriminator).to(device);
    const Tensor z_g = began::sample_z(4, c.h, 5, step, began::LatentStream::generator).to(device);
    results.push_back(began::began_step(G, D, opt_g, opt_d, x, z_d, z_g, k));
  }
  if (k_out != nullptr) *k_out = k;
  return results;
}

TEST_CASE("cuda training: three BEGAN steps give the CPU's losses and k, by im2col and by Winograd") {
  // Winograd F(4x4) on both devices: every 3x3 layer of the model, whatever its channels (auto would leave this
  // small model's layers to im2col).
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino4}) {
    INFO(conv_algo_name(algo));
    const testing::ConvAlgoScope scope(algo);
    double k_cpu = 0, k_cuda = 0;
    const std::vector<began::StepResult> cpu = began_results(Device::cpu(), 3, &k_cpu);
    const std::vector<began::StepResult> cuda = began_results(Device::cuda(), 3, &k_cuda);
    REQUIRE(cuda.size() == cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
      const int step = static_cast<int>(i) + 1;
      check_close(cuda[i].loss_real, cpu[i].loss_real, "L(x)", step);
      check_close(cuda[i].loss_fake_d, cpu[i].loss_fake_d, "L(G(z_D))", step);
      check_close(cuda[i].loss_fake_g, cpu[i].loss_fake_g, "L(G(z_G))", step);
      check_close(cuda[i].loss_d, cpu[i].loss_d, "L_D", step);
      check_close(cuda[i].k_t, cpu[i].k_t, "k_t", step);
      check_close(cuda[i].m_global, cpu[i].m_global, "M_global", step);
    }
    check_close(k_cuda, k_cpu, "k after the last step", 3);
  }
}

TEST_CASE("cuda training: the no-sync BEGAN step reads nothing on the host; its scalars, read a step late, match") {
  const std::vector<began::StepResult> cpu = began_results(Device::cpu(), 3);
  BeganRig rig(Device::cuda());
  auto& [c, G, D, opt_g, opt_d, x] = rig;
  const Tensor k = scalar_tensor(0.3, DType::Float64, Device::cuda());
  // As the trainer does: step s's copy is queued behind it and waited for after step s + 1 is queued.
  TensorReadback readbacks[2] = {TensorReadback(Device::cuda(), began::kStepScalars),
                                 TensorReadback(Device::cuda(), began::kStepScalars)};
  std::vector<began::StepResult> cuda;
  for (int step = 0; step < 3; ++step) {
    const Tensor z_d = began::sample_z(4, c.h, 5, step, began::LatentStream::discriminator, Device::cuda());
    const Tensor z_g = began::sample_z(4, c.h, 5, step, began::LatentStream::generator, Device::cuda());
    const uint64_t reads = host_sync_reads();
    readbacks[step % 2].start(began::began_step_device(G, D, opt_g, opt_d, x, z_d, z_g, k));
    CHECK(host_sync_reads() == reads);
    if (step > 0) cuda.push_back(began::step_result(readbacks[(step - 1) % 2].wait()));
  }
  cuda.push_back(began::step_result(readbacks[2 % 2].wait()));
  REQUIRE(cuda.size() == cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    const int step = static_cast<int>(i) + 1;
    check_close(cuda[i].loss_real, cpu[i].loss_real, "L(x)", step);
    check_close(cuda[i].loss_fake_g, cpu[i].loss_fake_g, "L(G(z_G))", step);
    check_close(cuda[i].k_t, cpu[i].k_t, "k_t", step);
    check_close(cuda[i].m_global, cpu[i].m_global, "M_global", step);
  }
}

TEST_CASE("cuda training: after two warm-up steps, steps 3 to 5 make no cudaMalloc call") {
  Backend& cuda = backend_for(Device::cuda());
  BeganRig rig(Device::cuda());
  auto& [c, G, D, opt_g, opt_d, x] = rig;
  double k = 0;
  size_t allocs_after_warm_up = 0;
  for (int step = 0; step < 5; ++step) {
    if (step == 2) allocs_after_warm_up = cuda.allocator_stats().system_allocs;
    const Tensor z_d = began::sample_z(4, c.h, 5, step, began::LatentStream::discriminator, Device::cuda());
    const Tensor z_g = began::sample_z(4, c.h, 5, step, began::LatentStream::generator, Device::cuda());
    began::began_step(G, D, opt_g, opt_d, x, z_d, z_g, k);
  }
  const AllocatorStats stats = cuda.allocator_stats();
  INFO("cudaMalloc calls: " << allocs_after_warm_up << " after step 2, " << stats.system_allocs << " after step 5 ("
                            << stats.cache_hits << " cache hits)");
  CHECK(allocs_after_warm_up > 0);
  CHECK(stats.system_allocs == allocs_after_warm_up);
}

// Two copies of the tiny BEGAN from the same weights, one stepped eagerly and one through the captured runner
// (--cuda-graph: steps 1 and 2 eager, step 3 captured and replayed, later steps replayed), fed the same data.
struct EagerAndGraph {
  BeganRig eager{Device::cuda()}, graph{Device::cuda()};
  Tensor k_eager = scalar_tensor(0.3, DType::Float64, Device::cuda());
  Tensor k_graph = scalar_tensor(0.3, DType::Float64, Device::cuda());
  std::unique_ptr<began::StepRunner> eager_runner =
      began::make_step_runner(began::StepMode::eager, eager.G, eager.D, eager.opt_g, eager.opt_d, k_eager);
  std::unique_ptr<began::StepRunner> graph_runner =
      began::make_step_runner(began::StepMode::graph, graph.G, graph.D, graph.opt_g, graph.opt_d, k_graph);

  struct Inputs {
    Tensor x, z_d, z_g;
  };
  static Inputs inputs(int step) {
    return {uniform({4, 1, 32, 32}, -1, 1, RandomKey{9, 1, static_cast<uint64_t>(step) << 20}),
            began::sample_z(4, 8, 5, step, began::LatentStream::discriminator, Device::cuda()),
            began::sample_z(4, 8, 5, step, began::LatentStream::generator, Device::cuda())};
  }
  // k and every parameter of both copies are equal bit for bit.
  void check_same_state() {
    CHECK(k_graph.item<double>() == k_eager.item<double>());
    for (auto [a, b] : {std::pair<nn::Module*, nn::Module*>{&graph.G, &eager.G}, {&graph.D, &eager.D}}) {
      const std::vector<Tensor> pa = a->parameters(), pb = b->parameters();
      for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].to_vector<float>() == pb[i].to_vector<float>());
    }
  }
};

TEST_CASE("cuda training: --cuda-graph: replayed steps equal eager steps bit for bit, without cudaMalloc or reads") {
  Backend& cuda = backend_for(Device::cuda());
  // By im2col (the program's setting), and by Winograd (auto takes it for the 3x3 layers of at least 16 channels:
  // the default of a real model at FP32), whose scratch the capture must hold as it holds im2col's.
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino4}) {
    INFO(conv_algo_name(algo));
    const testing::ConvAlgoScope scope(algo);
    EagerAndGraph rig;
    size_t allocs_after_capture = 0;
    for (int step = 0; step < 6; ++step) {
      const auto [x, z_d, z_g] = EagerAndGraph::inputs(step);
      const std::vector<double> e = rig.eager_runner->run(x, z_d, z_g).to_vector<double>();
      if (step == 3) allocs_after_capture = cuda.allocator_stats().system_allocs;
      const uint64_t reads = host_sync_reads();
      const Tensor scalars = rig.graph_runner->run(x, z_d, z_g);
      CHECK(host_sync_reads() == reads);  // a step reads nothing, eager, captured or replayed (nor its input copy)
      const std::vector<double> g = scalars.to_vector<double>();
      INFO("step " << step + 1);
      CHECK(g == e);
    }
    CHECK(rig.graph_runner->captures() == 1);
    CHECK(rig.graph_runner->replays() == 4);
    CHECK(cuda.allocator_stats().system_allocs == allocs_after_capture);  // replays 2 to 4: no cudaMalloc
    rig.check_same_state();
  }
}

TEST_CASE(
    "cuda training: --cuda-graph: the capture uses the context's workspace, and keeps it when eager work "
    "between replays needs a larger one") {
  Backend& cuda = backend_for(Device::cuda());
  {
    EagerAndGraph rig;
    Tensor canary;
    for (int step = 0; step < 6; ++step) {
      if (step == 4) {
        // An eager convolution whose im2col columns exceed every earlier request (the step's, at most a few MiB,
        // and earlier tests'): the context replaces its workspace block, and the old one, which the graph replays
        // on, goes to the graph's pool instead of to everyone. 8 images of C * 9 rows of 4,096 pixels: 18 MiB at
        // C = 16, doubled until the block is replaced (up to 72 MiB).
        const size_t held = cuda.allocator_stats().graph_cached;
        size_t now_held = held;
        for (int64_t c = 16; c <= 64 && now_held == held; c *= 2) {
          const Tensor image = uniform({8, c, 64, 64}, -1, 1, RandomKey{21, 0, 0}).to(Device::cuda());
          const Tensor weight = uniform({8, c, 3, 3}, -1, 1, RandomKey{22, 0, 0}).to(Device::cuda());
          const Tensor out = conv2d(image, weight, Tensor(), 1, 1);
          now_held = cuda.allocator_stats().graph_cached;
        }
        REQUIRE(now_held > held);
        const size_t old_block = now_held - held;
        // A tensor of the old block's size made now gets other memory: the replays below leave it as it is.
        canary = full({static_cast<int64_t>(old_block / sizeof(float))}, 7.0, DType::Float32, Device::cuda());
      }
      const auto [x, z_d, z_g] = EagerAndGraph::inputs(step);
      const std::vector<double> e = rig.eager_runner->run(x, z_d, z_g).to_vector<double>();
      const std::vector<double> g = rig.graph_runner->run(x, z_d, z_g).to_vector<double>();
      INFO("step " << step + 1);
      CHECK(g == e);
    }
    CHECK(rig.graph_runner->captures() == 1);
    CHECK(rig.graph_runner->replays() == 4);
    const std::vector<float> kept = canary.to_vector<float>();
    CHECK(std::all_of(kept.begin(), kept.end(), [](float v) { return v == 7.0f; }));
    rig.check_same_state();
  }
  CHECK(cuda.allocator_stats().graph_cached == 0);  // the graph is gone, and its pool with it
}

}  // namespace
}  // namespace atelier
