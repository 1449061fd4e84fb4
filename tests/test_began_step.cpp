// BEGAN's training step (began/step.h): three steps against PyTorch (the golden fixture written by
// bench/peers/began_step_torch.py --golden), the isolation of the D and G steps, D's requires_grad restored after
// an exception, input checks, the latent draws, a 1,000-step control run on synthetic data in which M_global
// falls and k_t follows gamma L(x) - L(G(z)), and the step runners (began/step_runner.h): replayed steps equal
// eager ones bit for bit, ask the system for no memory and read nothing, and a new shape captures again.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "began/data/synthetic.h"
#include "began/model.h"
#include "began/step.h"
#include "began/step_runner.h"
#include "nn/checkpoint.h"
#include "nn/data/dataloader.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/readback.h"
#include "tests/test_util.h"

using namespace atelier;
using namespace atelier::began;
using testing::check_throws_with;

namespace {

ModelConfig small_config(int64_t n = 4, int64_t h = 8) {
  ModelConfig c;
  c.image_size = 32;
  c.channels = 1;
  c.n = n;
  c.h = h;
  return c;
}

// G and D of one config with their Adam optimisers (betas (0.5, 0.999), the trainer's defaults). Call
// manual_seed() first to fix the initial weights.
struct Rig {
  Generator G;
  Discriminator D;
  nn::Adam opt_g, opt_d;
  Rig(const ModelConfig& c, double lr)
      : G(c), D(c), opt_g(G.parameters(), lr, {0.5, 0.999}), opt_d(D.parameters(), lr, {0.5, 0.999}) {}
};

// Deep copies of every parameter's values (and gradients, undefined ones kept as empty vectors).
struct Snapshot {
  std::vector<std::vector<float>> values, grads;
  std::vector<bool> has_grad;
  explicit Snapshot(const nn::Module& m) {
    for (const Tensor& p : m.parameters()) {
      values.push_back(p.to_vector<float>());
      has_grad.push_back(p.grad().defined());
      grads.push_back(p.grad().defined() ? p.grad().to_vector<float>() : std::vector<float>{});
    }
  }
};

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

// The entries of `file` named "<prefix><parameter name>", as a state dict.
nn::NamedTensors with_prefix(const nn::SafetensorsFile& file, const std::string& prefix, const nn::Module& m) {
  nn::NamedTensors out;
  for (const auto& [name, t] : m.named_parameters()) out.emplace_back(name, file.at(prefix + name));
  return out;
}

}  // namespace

TEST_CASE("began step: three steps match PyTorch (golden fixture)") {
  // im2col, the most exact CPU convolution: the 1e-5 tolerances below were set for it (Winograd F(4x4) alone
  // costs a few 1e-6 per conv, compounded over the step's layers).
  testing::ConvAlgoScope im2col(ConvAlgo::Im2col);
  const nn::SafetensorsFile f =
      nn::load_safetensors(std::string(ATELIER_SOURCE_DIR) + "/tests/fixtures/began_step.safetensors");
  auto setting = [&](const std::string& name) {
    auto it = f.metadata.find(name);
    REQUIRE_MESSAGE(it != f.metadata.end(), "fixture metadata lacks " << name);
    return std::stod(it->second);
  };
  ModelConfig c;
  c.image_size = static_cast<int64_t>(setting("image_size"));
  c.channels = static_cast<int64_t>(setting("channels"));
  c.n = static_cast<int64_t>(setting("n"));
  c.h = static_cast<int64_t>(setting("h"));
  Generator G(c);
  Discriminator D(c);
  G.load_state_dict(with_prefix(f, "G.", G));
  D.load_state_dict(with_prefix(f, "D.", D));
  nn::Adam opt_g(G.parameters(), setting("lr"), {setting("beta1"), setting("beta2")}, setting("eps"));
  nn::Adam opt_d(D.parameters(), setting("lr"), {setting("beta1"), setting("beta2")}, setting("eps"));
  StepOptions options;
  options.gamma = setting("gamma");
  options.lambda_k = setting("lambda_k");
  double k = setting("k0");

  double worst_scalar = 0, worst_param = 0;
  const int steps = static_cast<int>(setting("steps"));
  REQUIRE(steps == 3);
  for (int t = 1; t <= steps; ++t) {
    const std::string s = "step" + std::to_string(t) + ".";
    const StepResult r = began_step(G, D, opt_g, opt_d, f.at(s + "x"), f.at(s + "z_d"), f.at(s + "z_g"), k, options);
    const std::map<std::string, double> ours = {{"loss_real", r.loss_real},
                                                {"loss_fake_d", r.loss_fake_d},
                                                {"loss_fake_g", r.loss_fake_g},
                                                {"loss_d", r.loss_d},
                                                {"loss_g", r.loss_g},
                                                {"k_t", r.k_t},
                                                {"k_next", k},
                                                {"m_global", r.m_global}};
    for (const auto& scalar : ours) {
      // Named variables, not a structured binding: INFO's lambda captures them (clang before 16 cannot).
      const std::string& name = scalar.first;
      const double value = scalar.second;
      const double expected = f.at(s + name).item();
      const double err = std::abs(value - expected) / std::abs(expected);
      worst_scalar = std::max(worst_scalar, err);
      INFO("step " << t << " " << name << ": atelier " << value << ", PyTorch " << expected);
      CHECK(err <= 1e-5);
    }
    if (t == 1 || t == 3) {
      for (const auto& [prefix, module] : {std::pair<std::string, const nn::Module*>{"G.", &G}, {"D.", &D}}) {
        for (const auto& [name, p] : module->named_parameters()) {
          const std::string key = "after" + std::to_string(t) + "." + prefix + name;
          const double err = relative_error(p.to_vector<float>(), f.at(key).to_vector<float>());
          worst_param = std::max(worst_param, err);
          INFO(key << ": ||atelier - PyTorch|| / ||PyTorch|| = " << err);
          CHECK(err <= 1e-5);
        }
      }
    }
  }
  MESSAGE("golden step: worst scalar relative error " << worst_scalar << ", worst parameter relative error "
                                                      << worst_param);
  // k moved each step and was never clipped (the fixture is chosen so): the k checks above were not vacuous.
  CHECK(f.at("step3.k_next").item() != doctest::Approx(setting("k0")));
}

TEST_CASE("began step: the D step leaves G alone, the G step leaves D's parameters and gradients alone") {
  manual_seed(3);
  const ModelConfig c = small_config();
  Rig rig(c, 1e-3);
  auto& [G, D, opt_g, opt_d] = rig;
  const Tensor x = uniform({4, 1, 32, 32}, -1, 1, RandomKey{9, 0, 0});
  double k = 0.3;
  // One full step first, so that both have gradients and optimiser state.
  began_step(G, D, opt_g, opt_d, x, sample_z(4, 8, 1, 0, LatentStream::discriminator),
             sample_z(4, 8, 1, 0, LatentStream::generator), k);

  // D step: every G parameter and gradient bit-identical; D's parameters do change.
  const Snapshot g_before(G), d_before(D);
  d_step(G, D, opt_d, x, sample_z(4, 8, 1, 1, LatentStream::discriminator), k);
  const Snapshot g_after_d(G), d_after_d(D);
  CHECK(g_after_d.values == g_before.values);
  CHECK(g_after_d.has_grad == g_before.has_grad);
  CHECK(g_after_d.grads == g_before.grads);
  for (size_t i = 0; i < d_before.values.size(); ++i) CHECK(d_after_d.values[i] != d_before.values[i]);

  // G step: every D parameter and gradient bit-identical, requires_grad restored; G's parameters do change.
  g_step(G, D, opt_g, sample_z(4, 8, 1, 1, LatentStream::generator));
  const Snapshot d_after_g(D), g_after_g(G);
  CHECK(d_after_g.values == d_after_d.values);
  CHECK(d_after_g.has_grad == d_after_d.has_grad);
  CHECK(d_after_g.grads == d_after_d.grads);
  for (const Tensor& p : D.parameters()) CHECK(p.requires_grad());
  for (size_t i = 0; i < g_before.values.size(); ++i) CHECK(g_after_g.values[i] != g_after_d.values[i]);

  // No D weight gradient is even computed in the G step: with D's gradients dropped they stay undefined.
  D.zero_grad();
  g_step(G, D, opt_g, sample_z(4, 8, 1, 2, LatentStream::generator));
  for (const auto& param : D.named_parameters()) {
    INFO(param.first);
    CHECK(!param.second.grad().defined());
  }
}

TEST_CASE("began step: the same weights and inputs give bit-identical steps (what exact resume relies on)") {
  const ModelConfig c = small_config();
  const Tensor x = uniform({4, 1, 32, 32}, -1, 1, RandomKey{13, 0, 0});
  std::vector<std::vector<double>> scalars(2);
  std::vector<Snapshot> finals;
  for (int run = 0; run < 2; ++run) {
    manual_seed(8);
    Rig rig(c, 1e-3);
    auto& [G, D, opt_g, opt_d] = rig;
    if (run == 1) (void)uniform({1000}, 0, 1);  // other draws in between change nothing: z is keyed by the step
    double k = 0.05;
    for (int64_t s = 0; s < 3; ++s) {
      const StepResult r = began_step(G, D, opt_g, opt_d, x, sample_z(4, 8, 2, s, LatentStream::discriminator),
                                      sample_z(4, 8, 2, s, LatentStream::generator), k);
      scalars[run].insert(scalars[run].end(), {r.loss_real, r.loss_fake_d, r.loss_fake_g, r.m_global, k});
    }
    finals.emplace_back(G);
    finals.emplace_back(D);
  }
  CHECK(scalars[0] == scalars[1]);
  CHECK(finals[0].values == finals[2].values);
  CHECK(finals[1].values == finals[3].values);
}

TEST_CASE("began step: began_step_device reads nothing on the host and gives began_step's numbers, k on the device") {
  const ModelConfig c = small_config();
  const Tensor x = uniform({4, 1, 32, 32}, -1, 1, RandomKey{14, 0, 0});
  auto z = [](int64_t s, LatentStream stream) { return sample_z(4, 8, 5, s, stream); };
  manual_seed(9);
  Rig host(c, 1e-3);
  manual_seed(9);
  Rig device(c, 1e-3);
  double k = 0.3;
  const Tensor k_device = scalar_tensor(0.3, DType::Float64);
  for (int64_t s = 0; s < 3; ++s) {
    const uint64_t reads_before = host_sync_reads();
    const StepResult r = began_step(host.G, host.D, host.opt_g, host.opt_d, x, z(s, LatentStream::discriminator),
                                    z(s, LatentStream::generator), k, {.gamma = 0.5, .lambda_k = 0.05});
    // The counter sees began_step's one read of its scalars: it counts what it should.
    CHECK(host_sync_reads() == reads_before + 1);

    const uint64_t reads = host_sync_reads();
    const Tensor scalars =
        began_step_device(device.G, device.D, device.opt_g, device.opt_d, x, z(s, LatentStream::discriminator),
                          z(s, LatentStream::generator), k_device, {.gamma = 0.5, .lambda_k = 0.05});
    CHECK(host_sync_reads() == reads);  // the whole step, k's update included, read nothing
    REQUIRE(scalars.shape() == Shape{kStepScalars});
    const std::vector<double> v = scalars.to_vector<double>();
    const StepResult d = step_result(v);
    CHECK(d.loss_real == r.loss_real);
    CHECK(d.loss_fake_d == r.loss_fake_d);
    CHECK(d.loss_fake_g == r.loss_fake_g);
    CHECK(d.loss_d == r.loss_d);
    CHECK(d.k_t == r.k_t);
    CHECK(d.m_global == r.m_global);
    CHECK(v[kKNext] == k);
    CHECK(k_device.item() == k);  // updated in place
  }
  CHECK(k > 0.3);  // k moved
  CHECK(Snapshot(host.G).values == Snapshot(device.G).values);
  CHECK(Snapshot(host.D).values == Snapshot(device.D).values);
  check_throws_with([&] { step_result({1.0, 2.0}); }, {"expected 8 values, got 2"});
  check_throws_with(
      [&] {
        began_step_device(device.G, device.D, device.opt_g, device.opt_d, x, z(0, LatentStream::discriminator),
                          z(0, LatentStream::generator), scalar_tensor(0.3, DType::Float32));
      },
      {"k must be a 0-d float64 tensor"});
}

TEST_CASE("began step: a steady step leaks nothing (live TensorImpls, Nodes and storage bytes)") {
  const int64_t impls_before = live_tensor_impls();
  const size_t bytes_before = live_storage_bytes();
  {
    manual_seed(6);
    Rig rig(small_config(), 1e-4);
    const Tensor x = uniform({2, 1, 32, 32}, -1, 1, RandomKey{12, 0, 0});
    double k = 0.2;
    auto step = [&](int64_t s) {
      began_step(rig.G, rig.D, rig.opt_g, rig.opt_d, x, sample_z(2, 8, 6, s, LatentStream::discriminator),
                 sample_z(2, 8, 6, s, LatentStream::generator), k);
    };
    step(0);  // warm-up: the .grad tensors and Adam's moments exist from here on
    const int64_t impls = live_tensor_impls();
    const size_t bytes = live_storage_bytes();
    for (int64_t s = 1; s <= 20; ++s) step(s);
    CHECK(live_tensor_impls() == impls);
    CHECK(live_storage_bytes() == bytes);
    CHECK(live_nodes() == 0);  // each step's graphs died with its losses
  }
  CHECK(live_tensor_impls() == impls_before);
  CHECK(live_storage_bytes() == bytes_before);
}

TEST_CASE("began step: D's requires_grad is restored when the G step throws, and kept off where it was off") {
  manual_seed(4);
  const ModelConfig c = small_config();
  Generator G(c);
  Discriminator D(c);
  nn::Adam opt_g(G.parameters(), 1e-3);
  // A z of the wrong width makes G.forward throw inside the G step, after D was frozen.
  CHECK_THROWS_AS(g_step(G, D, opt_g, zeros({2, 5})), Error);
  for (const Tensor& p : D.parameters()) CHECK(p.requires_grad());

  // A parameter the caller froze stays frozen after a step.
  D.enc->fc->bias.requires_grad_(false);
  g_step(G, D, opt_g, zeros({2, 8}));
  CHECK(!D.enc->fc->bias.requires_grad());
  CHECK(D.enc->fc->weight.requires_grad());
}

TEST_CASE("began step: k is clipped to [0, 1], M_global and the result fields follow the equations") {
  manual_seed(5);
  const ModelConfig c = small_config();
  Rig rig(c, 1e-4);
  auto& [G, D, opt_g, opt_d] = rig;
  const Tensor x = uniform({2, 1, 32, 32}, -1, 1, RandomKey{11, 0, 0});
  StepOptions o;
  o.lambda_k = 1e6;  // any imbalance drives k to a bound
  // gamma 1 and 1e-3: the balance gamma L(x) - L(G(z)) takes both signs, so k meets both bounds and M_global's
  // |balance| is checked where it differs from balance.
  bool saw_positive = false, saw_negative = false;
  for (double gamma : {1.0, 1e-3}) {
    o.gamma = gamma;
    for (double k0 : {0.0, 1.0, 0.5}) {
      double k = k0;
      const StepResult r = began_step(G, D, opt_g, opt_d, x, sample_z(2, 8, 0, 0, LatentStream::discriminator),
                                      sample_z(2, 8, 0, 0, LatentStream::generator), k, o);
      const double balance = o.gamma * r.loss_real - r.loss_fake_g;
      (balance > 0 ? saw_positive : saw_negative) = true;
      CHECK(r.k_t == k0);
      CHECK(k == (balance > 0 ? 1.0 : 0.0));
      CHECK(r.m_global == doctest::Approx(r.loss_real + std::abs(balance)));
      CHECK(r.loss_d == doctest::Approx(r.loss_real - k0 * r.loss_fake_d));
      CHECK(r.loss_g == r.loss_fake_g);
      CHECK(r.loss_real > 0);
    }
  }
  CHECK(saw_positive);
  CHECK(saw_negative);
}

TEST_CASE("began step: bad inputs are refused with the shapes named") {
  const ModelConfig c = small_config();
  Rig rig(c, 1e-4);
  // References, not a structured binding: the lambdas below capture them (clang before 16 cannot).
  Generator& G = rig.G;
  Discriminator& D = rig.D;
  nn::Adam &opt_g = rig.opt_g, &opt_d = rig.opt_d;
  double k = 0;
  const Tensor x = zeros({2, 1, 32, 32}), z = zeros({2, 8});
  check_throws_with(
      [&] {
        began_step(G, D, opt_g, opt_d, zeros({2, 3, 32, 32}), z, z, k);
      },
      {"x must be (B, 1, 32, 32)", "[2, 3, 32, 32]"});
  check_throws_with([&] { began_step(G, D, opt_g, opt_d, x, zeros({3, 8}), z, k); }, {"z_d", "(2, 8)", "[3, 8]"});
  check_throws_with([&] { began_step(G, D, opt_g, opt_d, x, z, zeros({2, 7}), k); }, {"z_g", "(2, 8)", "[2, 7]"});
  double bad_k = 1.5;
  check_throws_with([&] { began_step(G, D, opt_g, opt_d, x, z, z, bad_k); }, {"k must be in [0, 1]", "1.5"});
  Discriminator D64(small_config(4, 16));
  nn::Adam opt_d64(D64.parameters(), 1e-4);
  check_throws_with([&] { began_step(G, D64, opt_g, opt_d64, x, z, z, k); }, {"G makes", "h 16"});
}

TEST_CASE("began pulling_away: closed forms, its gradient (float64), and bad shapes named") {
  // Orthogonal codes: 0. Codes pointing one way (any lengths): 1.
  CHECK(pulling_away(from_vector<double>({1, 0, 0, 0, 2, 0, 0, 0, 3}, {3, 3})).item() ==
        doctest::Approx(0).epsilon(1e-12));
  CHECK(pulling_away(from_vector<double>({1, 2, 2, 4, -3, -6}, {3, 2})).item() == doctest::Approx(1).epsilon(1e-9));
  // (1, 0) and (1, 1): cosine 1/sqrt(2), both ordered pairs give 1/2, over 2 pairs: 0.5. Add (0, 1): pairs
  // (a,b) 1/2, (a,c) 0, (b,c) 1/2, each twice, over 6: 1/3.
  CHECK(pulling_away(from_vector<double>({1, 0, 1, 1}, {2, 2})).item() == doctest::Approx(0.5).epsilon(1e-9));
  CHECK(pulling_away(from_vector<double>({1, 0, 1, 1, 0, 1}, {3, 2})).item() == doctest::Approx(1.0 / 3).epsilon(1e-9));

  manual_seed(5);
  const Tensor codes = uniform({4, 3}, -1, 1, RandomKey{5, 0, 0}, DType::Float64).requires_grad_(true);
  const GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return pulling_away(in[0]); }, {codes});
  CHECK_MESSAGE(r.passed, r.message);

  check_throws_with([] { pulling_away(zeros({1, 8})); }, {"B >= 2", "[1, 8]"});
  check_throws_with([] { pulling_away(zeros({8})); }, {"(B, h)", "[8]"});
}

TEST_CASE("began step: the pulling-away term changes G's update, not the losses k_t and M_global see") {
  const ModelConfig c = small_config();
  const Tensor x = uniform({4, 1, 32, 32}, -1, 1, RandomKey{9, 0, 0});
  const Tensor z_d = sample_z(4, 8, 1, 0, LatentStream::discriminator),
               z_g = sample_z(4, 8, 1, 0, LatentStream::generator);
  auto run = [&](double pull_away) {
    manual_seed(3);
    auto rig = std::make_unique<Rig>(c, 1e-3);
    double k = 0.3;
    StepOptions options;
    options.pull_away = pull_away;
    const StepResult r = began_step(rig->G, rig->D, rig->opt_g, rig->opt_d, x, z_d, z_g, k, options);
    return std::make_tuple(r, k, Snapshot(rig->G), Snapshot(rig->D));
  };
  const auto [plain, k_plain, g_plain, d_plain] = run(0);
  const auto [pulled, k_pulled, g_pulled, d_pulled] = run(0.5);
  // The D step comes first and does not see the term; L(G(z_G)) is computed before G's update in both runs.
  CHECK(pulled.loss_real == plain.loss_real);
  CHECK(pulled.loss_fake_g == plain.loss_fake_g);
  CHECK(pulled.loss_g == plain.loss_g);
  CHECK(pulled.m_global == plain.m_global);
  CHECK(k_pulled == k_plain);
  CHECK(d_pulled.values == d_plain.values);
  // The term reaches every G parameter's gradient (the first Adam step moves each weight by about lr * sign(g),
  // so the values themselves may not tell).
  size_t changed = 0;
  for (size_t i = 0; i < g_plain.grads.size(); ++i) changed += g_pulled.grads[i] != g_plain.grads[i];
  CHECK(changed == g_plain.grads.size());
  CHECK(g_pulled.values != g_plain.values);

  manual_seed(3);
  Rig rig(c, 1e-3);
  double k = 0;
  StepOptions options;
  options.pull_away = 0.1;
  check_throws_with(
      [&] {
        began_step(rig.G, rig.D, rig.opt_g, rig.opt_d, zeros({1, 1, 32, 32}), zeros({1, 8}), zeros({1, 8}), k, options);
      },
      {"pulling-away", "batch of at least 2", "[1, 1, 32, 32]"});
}

TEST_CASE("began sample_z: U[-1, 1], keyed by (seed, step, stream), streams and steps distinct") {
  const Tensor a = sample_z(16, 64, 42, 7, LatentStream::discriminator);
  CHECK(a.shape() == Shape{16, 64});
  CHECK(a.dtype() == DType::Float32);
  const std::vector<float> v = a.to_vector<float>();
  CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x >= -1 && x < 1; }));
  double mean = 0;
  for (float x : v) mean += x;
  mean /= static_cast<double>(v.size());
  CHECK(std::abs(mean) < 0.1);
  // The same key gives the same z whatever ran before (the default generator is not involved).
  manual_seed(99);
  (void)uniform({100}, 0, 1);
  CHECK(sample_z(16, 64, 42, 7, LatentStream::discriminator).to_vector<float>() == v);
  // Any other seed, step or stream gives other numbers, and no value of one draw reappears in the other.
  for (const Tensor& other :
       {sample_z(16, 64, 43, 7, LatentStream::discriminator), sample_z(16, 64, 42, 8, LatentStream::discriminator),
        sample_z(16, 64, 42, 7, LatentStream::generator), sample_z(16, 64, 42, 7, LatentStream::fixed_samples)}) {
    const std::vector<float> w = other.to_vector<float>();
    int shared = 0;
    for (size_t i = 0; i < v.size(); ++i) shared += v[i] == w[i];
    CHECK(shared < 3);
  }
  // A smaller batch is a prefix of a larger one at the same key (the counter range is per element).
  const std::vector<float> prefix = sample_z(4, 64, 42, 7, LatentStream::discriminator).to_vector<float>();
  CHECK(std::equal(prefix.begin(), prefix.end(), v.begin()));
  check_throws_with([] { sample_z(0, 8, 0, 0, LatentStream::generator); }, {"batch", "0"});
  check_throws_with([] { sample_z(2, 8, 0, -1, LatentStream::generator); }, {"step", "-1"});
}

// The long one: 1,000 steps at 32x32, C=1, n=4, h=8, batch 8 on synthetic shapes.
TEST_CASE("began control (long): over 1000 synthetic steps M_global falls and k_t follows the balance") {
  manual_seed(2017);
  ModelConfig c = small_config(4, 8);
  Rig rig(c, 1e-4);
  auto& [G, D, opt_g, opt_d] = rig;
  SyntheticOptions so;
  so.size = 2048;
  so.seed = 5;
  nn::DataLoaderOptions lo;
  lo.batch_size = 8;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.seed = 5;
  nn::DataLoader loader(std::make_shared<SyntheticShapes>(so), lo);
  const StepOptions options;
  constexpr int64_t kSteps = 1000;
  std::vector<double> m;
  double k = 0;
  int64_t step = 0, moved = 0, wrong_direction = 0;
  for (int64_t epoch = 0; step < kSteps; ++epoch) {
    for (nn::Batch& b : loader.epoch(epoch)) {
      if (step == kSteps) break;
      const double k_before = k;
      const StepResult r =
          began_step(G, D, opt_g, opt_d, b.data, sample_z(8, c.h, 5, step, LatentStream::discriminator),
                     sample_z(8, c.h, 5, step, LatentStream::generator), k, options);
      REQUIRE(std::isfinite(r.m_global));
      m.push_back(r.m_global);
      const double balance = options.gamma * r.loss_real - r.loss_fake_g;
      if (k > 0 && k < 1) {  // not clipped: k moved by lambda_k * balance, in its direction
        ++moved;
        if (balance != 0 && (k - k_before) * balance <= 0) ++wrong_direction;
        CHECK(k - k_before == doctest::Approx(options.lambda_k * balance).epsilon(1e-9));
      }
      ++step;
    }
  }
  const int64_t fifth = kSteps / 5;
  double first = 0, last = 0;
  for (int64_t i = 0; i < fifth; ++i) {
    first += m[static_cast<size_t>(i)];
    last += m[static_cast<size_t>(kSteps - fifth + i)];
  }
  first /= static_cast<double>(fifth);
  last /= static_cast<double>(fifth);
  MESSAGE("control: mean M_global first 20% " << first << ", last 20% " << last << " (ratio " << last / first
                                              << "); k_t final " << k << ", unclipped steps " << moved);
  CHECK(last < 0.8 * first);
  CHECK(wrong_direction == 0);
  CHECK(moved > kSteps / 10);  // the direction check above covered many steps
}

namespace {

// Step s's inputs, batch b: x keyed by s, z by (seed 5, s).
struct StepInputs {
  Tensor x, z_d, z_g;
  StepInputs(int64_t s, int64_t b = 4)
      : x(uniform({b, 1, 32, 32}, -1, 1, RandomKey{21, 0, static_cast<uint64_t>(s) << 20})),
        z_d(sample_z(b, 8, 5, s, LatentStream::discriminator)),
        z_g(sample_z(b, 8, 5, s, LatentStream::generator)) {}
};

// Runs the steps (batch sizes in order) with both runners from the same start and checks every step's scalars,
// then k, every parameter and the optimisers' step counts, bit for bit. Returns the graph runner's counters.
std::pair<int64_t, int64_t> check_graph_equals_eager(const std::vector<int64_t>& batches, int64_t warmup) {
  const ModelConfig c = small_config();
  manual_seed(9);
  Rig eager(c, 1e-3);
  manual_seed(9);
  Rig graph(c, 1e-3);
  const Tensor k_eager = scalar_tensor(0.3, DType::Float64), k_graph = scalar_tensor(0.3, DType::Float64);
  const StepOptions options{.gamma = 0.5, .lambda_k = 0.05};
  auto eager_runner = make_step_runner(StepMode::eager, eager.G, eager.D, eager.opt_g, eager.opt_d, k_eager, options);
  auto graph_runner =
      make_step_runner(StepMode::graph, graph.G, graph.D, graph.opt_g, graph.opt_d, k_graph, options, warmup);
  CHECK(graph_runner->mode() == StepMode::graph);
  for (size_t s = 0; s < batches.size(); ++s) {
    if (s == 3) {  // a new rate (the trainer's schedule) reaches the replays
      for (nn::Optimizer* opt : {&eager.opt_g, &eager.opt_d, &graph.opt_g, &graph.opt_d}) opt->set_lr(4e-4);
    }
    const StepInputs in(static_cast<int64_t>(s), batches[s]);
    const std::vector<double> e = eager_runner->run(in.x, in.z_d, in.z_g).to_vector<double>();
    const std::vector<double> g = graph_runner->run(in.x, in.z_d, in.z_g).to_vector<double>();
    INFO("step " << s);
    CHECK(g == e);
  }
  CHECK(k_graph.item<double>() == k_eager.item<double>());
  CHECK(Snapshot(graph.G).values == Snapshot(eager.G).values);
  CHECK(Snapshot(graph.D).values == Snapshot(eager.D).values);
  CHECK(graph.opt_d.step_count(0) == eager.opt_d.step_count(0));
  CHECK(graph.opt_g.step_count(0) == static_cast<int64_t>(batches.size()));
  return {graph_runner->captures(), graph_runner->replays()};
}

}  // namespace

TEST_CASE("began step runner: replayed steps equal eager steps bit for bit (losses, k_t, parameters)") {
  const auto [captures, replays] = check_graph_equals_eager({4, 4, 4, 4, 4, 4}, 2);
  CHECK(captures == 1);
  CHECK(replays == 4);  // steps 3 to 6; steps 1 and 2 ran eagerly
}

TEST_CASE("began step runner: a new batch shape drops the graph, warms up and captures again") {
  const auto [captures, replays] = check_graph_equals_eager({4, 4, 4, 2, 2, 2, 4}, 1);
  CHECK(captures == 2);  // at batch 4 (step 2) and at batch 2 (step 5); step 7, at batch 4 again, warms up eagerly
  CHECK(replays == 4);   // steps 2, 3, 5 and 6
}

TEST_CASE("began step runner: replays read nothing on the host and ask the system for no memory") {
  const ModelConfig c = small_config();
  manual_seed(9);
  Rig rig(c, 1e-3);
  const Tensor k = scalar_tensor(0.3, DType::Float64);
  auto runner = make_step_runner(StepMode::graph, rig.G, rig.D, rig.opt_g, rig.opt_d, k, {}, 1);
  Backend& cpu = backend_for(Device::cpu());
  size_t system_allocs = 0;
  uint64_t reads = 0;
  // Step 1 warms up, step 2 is captured and replayed, steps 3 to 6 are replays; each makes its inputs as the
  // trainer does (they come and go through the shared cache).
  for (int64_t s = 0; s < 6; ++s) {
    if (s == 3) {
      REQUIRE(runner->captures() == 1);
      system_allocs = cpu.allocator_stats().system_allocs;
      reads = host_sync_reads();
    }
    const StepInputs in(s);
    runner->run(in.x, in.z_d, in.z_g);
  }
  CHECK(cpu.allocator_stats().system_allocs == system_allocs);  // replays 3 to 5: the same blocks every step
  CHECK(host_sync_reads() == reads);
  CHECK(runner->replays() == 5);
}

TEST_CASE("began step runner: a step that reads on the host cannot be captured") {
  const ModelConfig c = small_config();
  manual_seed(9);
  Rig rig(c, 1e-3);
  const StepInputs in(0);
  double k = 0.3;
  began_step(rig.G, rig.D, rig.opt_g, rig.opt_d, in.x, in.z_d, in.z_g, k);  // state for the optimisers
  Backend& cpu = backend_for(Device::cpu());
  cpu.begin_capture();
  // began_step reads its scalars at once (began_step_device, which it runs, captures fine: the tests above).
  check_throws_with([&] { began_step(rig.G, rig.D, rig.opt_g, rig.opt_d, in.x, in.z_d, in.z_g, k); },
                    {"host read", "during a graph capture"});
  cpu.end_capture();
  CHECK_FALSE(cpu.capturing());
  check_throws_with(
      [&] {
        make_step_runner(StepMode::graph, rig.G, rig.D, rig.opt_g, rig.opt_d, scalar_tensor(0.3, DType::Float64), {},
                         0);
      },
      {"at least one eager warm-up step"});
}

TEST_CASE("began step runner: a capture that fails falls back to eager steps and says why") {
  // SGD has no captured form: the capture fails in the D step, having run nothing, and every step runs eagerly.
  const ModelConfig c = small_config();
  std::vector<std::vector<double>> scalars[2];
  std::string reason;
  for (int graph = 0; graph < 2; ++graph) {
    manual_seed(9);
    Generator G(c);
    Discriminator D(c);
    nn::SGD opt_g(G.parameters(), 1e-2), opt_d(D.parameters(), 1e-2);
    const Tensor k = scalar_tensor(0.3, DType::Float64);
    auto runner = make_step_runner(graph ? StepMode::graph : StepMode::eager, G, D, opt_g, opt_d, k, {}, 1);
    for (int64_t s = 0; s < 4; ++s) {
      const StepInputs in(s);
      scalars[graph].push_back(runner->run(in.x, in.z_d, in.z_g).to_vector<double>());
    }
    CHECK(runner->captures() == 0);
    reason = runner->fallback_reason();
  }
  CHECK(reason.find("SGD has no captured form") != std::string::npos);
  CHECK(scalars[1] == scalars[0]);
  CHECK_FALSE(backend_for(Device::cpu()).capturing());
}
