// The optimisers (nn/optim.h) and the CPU sgd_step / adam_step kernels: SGD (plain, momentum, dampening, Nesterov),
// Adam and AdamW against three steps of PyTorch (tests/fixtures/optim_fixture.txt, written by
// bench/peers/optim_fixture.py), fitting a plain latent tensor, state_dict round trips and error messages.
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tensor/readback.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;
using testing::error_of;

namespace {

// name -> values, from lines "<name> <count> <v0> ... <v(count-1)>" ('#' starts a comment line).
std::map<std::string, std::vector<double>> read_fixture() {
  const std::string path = ATELIER_SOURCE_DIR "/tests/fixtures/optim_fixture.txt";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::map<std::string, std::vector<double>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name;
    size_t count = 0;
    ls >> name >> count;
    std::vector<double> values(count);
    for (double& v : values) ls >> v;
    REQUIRE_MESSAGE(!ls.fail(), "malformed fixture line for " << name);
    out[name] = values;
  }
  return out;
}

const std::map<std::string, std::vector<double>>& fixture() {
  static const auto data = read_fixture();
  return data;
}

const std::vector<double>& fx(const std::string& name) {
  auto it = fixture().find(name);
  REQUIRE_MESSAGE(it != fixture().end(), "fixture has no entry " << name);
  return it->second;
}

// |a - b| <= rel |b| per element.
void check_close(const std::vector<double>& actual, const std::vector<double>& expected, double rel,
                 const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO(what << " element " << i << ": " << actual[i] << " vs PyTorch " << expected[i]);
    CHECK(std::abs(actual[i] - expected[i]) <= rel * std::abs(expected[i]));
  }
}

std::unique_ptr<nn::Optimizer> make_optimizer(const std::string& config, const Tensor& p) {
  if (config == "sgd") return std::make_unique<nn::SGD>(std::vector<Tensor>{p}, 0.1);
  if (config == "sgd_momentum") return std::make_unique<nn::SGD>(std::vector<Tensor>{p}, 0.1, 0.9, 0.0, 0.01);
  if (config == "sgd_dampening") return std::make_unique<nn::SGD>(std::vector<Tensor>{p}, 0.1, 0.9, 0.5);
  if (config == "sgd_nesterov") return std::make_unique<nn::SGD>(std::vector<Tensor>{p}, 0.1, 0.9, 0.0, 0.01, true);
  if (config == "adam")
    return std::make_unique<nn::Adam>(std::vector<Tensor>{p}, 0.1, std::array{0.5, 0.999}, 1e-8, 0.01);
  if (config == "adamw")
    return std::make_unique<nn::AdamW>(std::vector<Tensor>{p}, 0.1, std::array{0.9, 0.999}, 1e-8, 0.1);
  FAIL("unknown config " << config);
  return nullptr;
}

Tensor fixture_tensor(const std::string& name, DType dtype) { return from_vector(fx(name), {2, 3}, dtype); }

Tensor state_of(const nn::Optimizer& opt, const std::string& name) {
  for (const auto& [key, t] : opt.state_dict()) {
    if (key == name) return t;
  }
  return Tensor();
}

const char* kConfigs[] = {"sgd", "sgd_momentum", "sgd_dampening", "sgd_nesterov", "adam", "adamw"};

}  // namespace

TEST_CASE("optim: SGD, momentum, Nesterov, Adam and AdamW match PyTorch over 3 steps (float64)") {
  for (const char* config : kConfigs) {
    CAPTURE(config);
    Tensor p = fixture_tensor("initial", DType::Float64).requires_grad_();
    auto opt = make_optimizer(config, p);
    for (int step = 1; step <= 3; ++step) {
      p.set_grad(fixture_tensor("grad." + std::to_string(step), DType::Float64));
      opt->step();
      check_close(p.to_vector<double>(), fx(std::string(config) + ".step" + std::to_string(step)), 1e-6,
                  std::string(config) + " step " + std::to_string(step));
    }
    CHECK(opt->step_count(0) == 3);
    for (const char* buffer : {"momentum_buffer", "exp_avg", "exp_avg_sq"}) {
      const std::string key = std::string(config) + "." + buffer;
      if (!fixture().count(key)) continue;
      Tensor state = state_of(*opt, std::string("state.0.") + buffer);
      REQUIRE(state.defined());
      check_close(state.to_vector<double>(), fx(key), 1e-6, key);
    }
  }
}

TEST_CASE("optim: float32 parameters follow the float64 fixture to float32 precision") {
  for (const char* config : kConfigs) {
    CAPTURE(config);
    Tensor p = fixture_tensor("initial", DType::Float32).requires_grad_();
    auto opt = make_optimizer(config, p);
    for (int step = 1; step <= 3; ++step) {
      p.set_grad(fixture_tensor("grad." + std::to_string(step), DType::Float32));
      opt->step();
    }
    check_close(p.to_vector<double>(), fx(std::string(config) + ".step3"), 2e-6, config);
  }
}

TEST_CASE("optim: a large tensor (the parallel path) gets the same update in every element") {
  // 2x3 fixture values tiled 40,000 times (240,000 elements: above the parallel threshold).
  const int64_t tiles = 40000;
  auto tiled = [&](const std::vector<double>& v) {
    std::vector<double> out;
    out.reserve(v.size() * tiles);
    for (int64_t t = 0; t < tiles; ++t) out.insert(out.end(), v.begin(), v.end());
    return from_vector(out, {tiles * 2, 3}, DType::Float64);
  };
  for (const char* config : {"sgd_nesterov", "adam", "adamw"}) {
    CAPTURE(config);
    Tensor p = tiled(fx("initial")).requires_grad_();
    auto opt = make_optimizer(config, p);
    for (int step = 1; step <= 3; ++step) {
      p.set_grad(tiled(fx("grad." + std::to_string(step))));
      opt->step();
    }
    const std::vector<double> got = p.to_vector<double>();
    const std::vector<double>& want = fx(std::string(config) + ".step3");
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += std::abs(got[i] - want[i % 6]) > 1e-6 * std::abs(want[i % 6]);
    CHECK(bad == 0);
  }
}

TEST_CASE("optim: Adam fits a plain latent tensor that belongs to no module") {
  // Find z (1, 16) with tanh(z) close to a fixed target: a latent vector being fitted, as in BEGAN's
  // interpolation. The loss must fall by orders of magnitude.
  Tensor target = uniform({1, 16}, -0.8, 0.8, RandomKey{11, 0, 0});
  Tensor z = zeros({1, 16}).requires_grad_();
  nn::Adam opt({z}, 0.05);
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    Tensor loss = mse_loss(tanh(z), target);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < first * 1e-3);
}

TEST_CASE("optim: a step bumps the parameter's version and skips tensors without a gradient") {
  Tensor a = ones({3}).requires_grad_();
  Tensor b = ones({2}).requires_grad_();
  nn::SGD opt({a, b}, 0.5, 0.9);
  a.set_grad(full({3}, 2.0));
  const uint64_t va = a.version(), vb = b.version();
  opt.step();
  CHECK(a.version() > va);
  CHECK(b.version() == vb);
  CHECK(a.to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(b.to_vector<float>() == std::vector<float>{1, 1});
  CHECK(opt.step_count(0) == 1);
  CHECK(opt.step_count(1) == 0);
  // State exists only for a tensor that has stepped, as in PyTorch.
  CHECK(state_of(opt, "state.0.momentum_buffer").defined());
  CHECK_FALSE(state_of(opt, "state.1.step").defined());
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("optim: a state_dict round trip makes the next steps identical to an uninterrupted run") {
  for (const char* config : kConfigs) {
    CAPTURE(config);
    Tensor p = fixture_tensor("initial", DType::Float32).requires_grad_();
    auto run = make_optimizer(config, p);
    for (int step = 1; step <= 2; ++step) {
      p.set_grad(fixture_tensor("grad." + std::to_string(step), DType::Float32));
      run->step();
    }
    // Resume: a new parameter with the saved values and a fresh optimiser built with different
    // hyperparameters (the state dict restores them). Snapshot first: the state shares storage.
    nn::NamedTensors saved;
    for (const auto& [key, t] : run->state_dict()) saved.emplace_back(key, t.clone());
    Tensor q = p.detach().clone().requires_grad_();
    std::unique_ptr<nn::Optimizer> resumed;
    if (std::string(config).rfind("sgd", 0) == 0) {
      resumed = std::make_unique<nn::SGD>(std::vector<Tensor>{q}, 1.0, std::string(config) == "sgd" ? 0.0 : 0.5);
    } else if (std::string(config) == "adam") {
      resumed = std::make_unique<nn::Adam>(std::vector<Tensor>{q});
    } else {
      resumed = std::make_unique<nn::AdamW>(std::vector<Tensor>{q});
    }
    resumed->load_state_dict(saved);
    CHECK(resumed->lr() == run->lr());
    CHECK(resumed->step_count(0) == 2);
    p.set_grad(fixture_tensor("grad.3", DType::Float32));
    q.set_grad(fixture_tensor("grad.3", DType::Float32));
    run->step();
    resumed->step();
    CHECK(q.to_vector<float>() == p.to_vector<float>());  // bit for bit
  }
}

TEST_CASE(
    "optim: after module.to(...) the step refuses the old state, naming the fix; load_state_dict carries it over") {
  // to(Float64) rebinds the parameters as to(Device) does, so this runs on the CPU alone.
  manual_seed(3);
  nn::Linear layer(3, 2);
  nn::Adam opt(layer.parameters());
  const Tensor x = uniform({4, 3}, -1, 1);
  auto step = [&] {
    layer.zero_grad();
    sum(layer.forward(x.to(layer.weight.dtype()))).backward();
    opt.step();
  };
  step();
  step();
  const nn::NamedTensors before = opt.state_dict();
  std::vector<double> moments;  // every float32 state tensor's values, read before the move
  for (const auto& [key, t] : before) {
    if (t.dtype() == DType::Float32) {
      for (double v : t.to(DType::Float64).to_vector<double>()) moments.push_back(v);
    }
  }
  REQUIRE(!moments.empty());
  layer.to(DType::Float64);
  const std::string msg = error_of(step);
  CHECK(msg.find("Adam.step: the state of tensor 0 is float32 on cpu but the tensor is float64 on cpu") !=
        std::string::npos);
  CHECK(msg.find("state_dict() before module.to(...) and load_state_dict() after it") != std::string::npos);
  // The documented way: the state taken before the move, loaded after it, lands on the tensors' dtype unchanged.
  opt.load_state_dict(before);
  std::vector<double> carried;
  for (const auto& [key, t] : opt.state_dict()) {
    if (t.dtype() == DType::Float64 && t.numel() > 1) {
      for (double v : t.to_vector<double>()) carried.push_back(v);
    }
  }
  CHECK(carried == moments);
  CHECK(opt.step_count(0) == 2);
  step();
  CHECK(opt.step_count(0) == 3);
  CHECK(layer.weight.dtype() == DType::Float64);
}

TEST_CASE("optim: set_lr changes the step size; the state dict records it") {
  Tensor p = zeros({2}).requires_grad_();
  nn::SGD opt({p}, 0.1);
  opt.set_lr(0.25);
  p.set_grad(ones({2}));
  opt.step();
  CHECK(p.to_vector<float>() == std::vector<float>{-0.25f, -0.25f});
  CHECK(state_of(opt, "param_groups.lr").item() == 0.25);
  CHECK(state_of(opt, "param_groups.lr").dtype() == DType::Float64);
  CHECK(state_of(opt, "state.0.step").dtype() == DType::Int64);
  CHECK_THROWS_WITH_AS(opt.set_lr(-1), doctest::Contains("invalid learning rate"), Error);
}

TEST_CASE("optim: load_state_dict names every missing, unexpected and mis-shaped entry and changes nothing") {
  Tensor p = ones({2, 3}).requires_grad_();
  Tensor r = ones({4}).requires_grad_();
  nn::Adam opt({p, r}, 0.1);
  p.set_grad(ones({2, 3}));
  r.set_grad(ones({4}));
  opt.step();
  nn::NamedTensors state = opt.state_dict();

  nn::NamedTensors broken;
  for (const auto& [key, t] : state) {
    if (key == "state.0.exp_avg_sq" || key == "param_groups.beta2") continue;  // missing
    if (key == "state.1.exp_avg") {
      broken.emplace_back(key, zeros({2, 2}));  // mis-shaped
    } else {
      broken.emplace_back(key, t);
    }
  }
  broken.emplace_back("state.7.exp_avg", zeros({2}));      // no tensor 7
  broken.emplace_back("state.0.momentum", zeros({2, 3}));  // not an Adam buffer
  broken.emplace_back("lr", scalar_tensor(1.0));

  nn::Adam fresh({p, r}, 0.5);
  const std::string msg = error_of([&] { fresh.load_state_dict(broken); });
  CAPTURE(msg);
  for (const char* name : {"state.0.exp_avg_sq", "param_groups.beta2", "state.1.exp_avg", "[2, 2]", "state.7.exp_avg",
                           "state.0.momentum", "3 unexpected: lr,", "2 missing", "1 mis-shaped"}) {
    CHECK(msg.find(name) != std::string::npos);
  }
  CHECK(fresh.lr() == 0.5);  // nothing was loaded
  CHECK(fresh.step_count(0) == 0);

  // The state of another rule is refused by name.
  nn::AdamW other({p, r});
  CHECK_THROWS_WITH_AS(other.load_state_dict(state), doctest::Contains("the state is from Adam, not AdamW"), Error);
  nn::SGD sgd({p, r}, 0.1);
  CHECK_THROWS_WITH_AS(sgd.load_state_dict(state), doctest::Contains("from Adam, not SGD"), Error);
}

TEST_CASE("optim: bad arguments are reported with the tensor at fault") {
  Tensor ok = ones({2, 3}).requires_grad_();
  CHECK_THROWS_WITH_AS(nn::SGD({}, 0.1), doctest::Contains("empty list"), Error);
  CHECK_THROWS_WITH_AS(nn::SGD({ok, ok}, 0.1), doctest::Contains("appears twice"), Error);
  CHECK_THROWS_WITH_AS(nn::SGD({ok, ones({3, 2}).t()}, 0.1), doctest::Contains("tensor 1 (shape [2, 3], strides"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::SGD({arange(4)}, 0.1), doctest::Contains("int64"), Error);
  CHECK_THROWS_WITH_AS(nn::SGD({ok * 2.0}, 0.1), doctest::Contains("only leaf tensors"), Error);
  CHECK_THROWS_WITH_AS(nn::SGD({ok}, -0.1), doctest::Contains("invalid learning rate"), Error);
  CHECK_THROWS_WITH_AS(nn::SGD({ok}, 0.1, 0.0, 0.0, 0.0, true), doctest::Contains("Nesterov"), Error);
  CHECK_THROWS_WITH_AS(nn::Adam({ok}, 0.1, {1.0, 0.999}), doctest::Contains("beta1"), Error);

  nn::Adam opt({ok}, 0.1);
  ok.set_grad(ones({2, 3}, DType::Float64));
  CHECK_THROWS_WITH_AS(
      opt.step(),
      doctest::Contains("tensor 0: adam_step: the parameter is float32 [2, 3] on cpu but its gradient is float64"),
      Error);
}

TEST_CASE("optim: adam_step_multi_ gives each tensor adam_step_'s result bit for bit, or writes nothing on error") {
  for (bool decoupled : {false, true}) {
    AdamHyperparameters h;
    h.beta1 = 0.5;
    h.weight_decay = 0.01;
    h.decoupled_weight_decay = decoupled;
    // Sizes 0 to 5000 (a run split over the pool crosses tensor ends), each at its own step, two dtypes.
    std::vector<raw::AdamTensors> multi, single;
    for (int j = 0; j < 9; ++j) {
      const int64_t n = std::vector<int64_t>{7, 0, 5000, 1, 300, 0, 64, 1025, 2}[static_cast<size_t>(j)];
      const DType dtype = j % 4 == 2 ? DType::Float64 : DType::Float32;
      const Tensor p = uniform({n}, -1, 1, RandomKey{40, static_cast<uint64_t>(j), 0}, dtype);
      const Tensor g = uniform({n}, -1, 1, RandomKey{41, static_cast<uint64_t>(j), 0}, dtype);
      const Tensor m = uniform({n}, -1, 1, RandomKey{42, static_cast<uint64_t>(j), 0}, dtype);
      const Tensor v = uniform({n}, 0, 1, RandomKey{43, static_cast<uint64_t>(j), 0}, dtype);
      multi.push_back({p, g, m, v, 1 + j % 3, j});
      single.push_back({p.clone(), g, m.clone(), v.clone(), 1 + j % 3, j});
    }
    raw::adam_step_multi_(multi, 1e-2, h);
    for (size_t j = 0; j < multi.size(); ++j) {
      const raw::AdamTensors& s = single[j];
      raw::adam_step_(s.param, s.grad, s.exp_avg, s.exp_avg_sq, s.step, 1e-2, h);
      INFO("tensor " << j << (decoupled ? " (AdamW)" : " (Adam)"));
      CHECK(multi[j].param.to_vector<double>() == s.param.to_vector<double>());
      CHECK(multi[j].exp_avg.to_vector<double>() == s.exp_avg.to_vector<double>());
      CHECK(multi[j].exp_avg_sq.to_vector<double>() == s.exp_avg_sq.to_vector<double>());
    }
    CHECK(multi[2].param.to_vector<double>() !=
          uniform({5000}, -1, 1, RandomKey{40, 2, 0}, DType::Float64).to_vector<double>());  // it did move
  }
  // A bad item (a gradient of the wrong shape) is named by its label and nothing is written, not even the items
  // before it.
  const Tensor p0 = ones({3}), p1 = ones({4});
  std::vector<raw::AdamTensors> items = {{p0, ones({3}), zeros({3}), zeros({3}), 1, 5},
                                         {p1, ones({5}), zeros({4}), zeros({4}), 1, 6}};
  check_throws_with([&] { raw::adam_step_multi_(items, 0.1, {}); },
                    {"tensor 6: adam_step: the parameter is float32 [4]", "gradient is float32 [5]"});
  CHECK(p0.to_vector<float>() == std::vector<float>{1, 1, 1});
}

TEST_CASE("optim: the CPU backend supports sgd_step and adam_step for floating dtypes only") {
  Backend& backend = backend_for(Device::cpu());
  for (PrimitiveOp op : {PrimitiveOp::sgd_step, PrimitiveOp::adam_step, PrimitiveOp::adam_step_multi}) {
    CHECK(backend.supports(op, DType::Float32));
    CHECK(backend.supports(op, DType::Float64));
    CHECK_FALSE(backend.supports(op, DType::Int64));
  }
}

TEST_CASE("optim: clip_grad_norm_ scales every gradient by min(1, max_norm / total norm), reading nothing") {
  Tensor a = tensor({3, 4}, {}, DType::Float64).requires_grad_();
  Tensor b = tensor({0, 0, 12}, {}, DType::Float64).requires_grad_();
  Tensor skipped = tensor({1}, {}, DType::Float64).requires_grad_();  // no gradient: left alone
  a.set_grad(tensor({3, 4}, {}, DType::Float64));
  b.set_grad(tensor({0, 0, 12}, {}, DType::Float64));  // total norm sqrt(9 + 16 + 144) = 13
  const uint64_t reads = host_sync_reads();
  const Tensor norm = nn::clip_grad_norm_({a, b, skipped}, 6.5);
  CHECK(host_sync_reads() == reads);
  CHECK(norm.dim() == 0);
  CHECK(norm.item() == doctest::Approx(13.0).epsilon(1e-15));
  const double scale = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().to_vector<double>() == std::vector<double>{3 * scale, 4 * scale});
  CHECK(b.grad().to_vector<double>()[2] == 12 * scale);
  CHECK_FALSE(skipped.grad().defined());

  // Under max_norm the gradients stay as they are (the scale is 1); float32 gradients, a float32 norm.
  Tensor c = zeros({2}).requires_grad_();
  c.set_grad(tensor({0.3, 0.4}));
  const Tensor small = nn::clip_grad_norm_({c}, 1.0);
  CHECK(small.dtype() == DType::Float32);
  CHECK(small.item() == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(c.grad().to_vector<float>() == std::vector<float>{0.3f, 0.4f});

  // A non-finite gradient makes the norm say so and the gradients non-finite (nothing is hidden).
  c.set_grad(tensor({std::numeric_limits<double>::infinity(), 1.0}));
  CHECK(std::isinf(nn::clip_grad_norm_({c}, 1.0).item()));
  CHECK(std::isnan(c.grad().to_vector<float>()[0]));

  // Nothing to clip: a zero norm. Bad max_norm: refused, naming it.
  CHECK(nn::clip_grad_norm_({skipped}, 1.0).item() == 0.0);
  testing::check_throws_with([&] { nn::clip_grad_norm_({a}, 0.0); }, {"clip_grad_norm_", "max_norm", "got 0"});
  testing::check_throws_with([&] { nn::clip_grad_norm_({a}, std::nan("")); }, {"max_norm", "nan"});
  Tensor i = zeros({2}).requires_grad_();
  i.set_grad(zeros({2}, DType::Int64));
  testing::check_throws_with([&] { nn::clip_grad_norm_({i}, 1.0); }, {"int64", "only float32 and float64"});
}
