// nn/: Module (dotted names, counts, summary, modes, devices, zero_grad, state dicts), the layers against their
// functional forms, the initialisers' statistics and determinism, and a tiny model trained with Adam.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::error_of;

namespace {

// encoder = Sequential(Linear(4, 3), ELU, Linear(3, 2)); head = Linear(2, 1, no bias).
struct Net : nn::Module {
  std::shared_ptr<nn::Sequential> encoder;
  std::shared_ptr<nn::Linear> head;

  Net() {
    encoder = register_module(
        "encoder", std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::ELU>(),
                                                    std::make_shared<nn::Linear>(3, 2)));
    head = register_module("head", std::make_shared<nn::Linear>(2, 1, false));
  }
  Tensor forward(const Tensor& x) override { return head->forward(encoder->forward(x)); }
  std::string type_name() const override { return "Net"; }
};

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

double std_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  double mean = 0, sq = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  for (double x : v) sq += (x - mean) * (x - mean);
  return std::sqrt(sq / static_cast<double>(v.size()));
}

double max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST_CASE("nn: nested modules name their parameters with dotted paths, in registration order") {
  Net net;
  const nn::NamedTensors params = net.named_parameters();
  CHECK(names_of(params) == std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "encoder.2.weight",
                                                     "encoder.2.bias", "head.weight"});
  CHECK(params[0].second.shape() == Shape{3, 4});  // PyTorch layout (out, in)
  CHECK(params[4].second.shape() == Shape{1, 2});
  CHECK(net.parameters().size() == 5);
  // The registry holds the layer's own handles: what an optimiser updates is what forward() reads.
  CHECK(params[4].second.impl_ptr() == net.head->weight.impl_ptr());
  for (const Tensor& p : net.parameters()) CHECK(p.requires_grad());
  CHECK_FALSE(net.head->bias.defined());
  CHECK(net.named_children().size() == 2);
  CHECK(net.encoder->size() == 3);
  CHECK((*net.encoder)[1]->type_name() == "ELU");
}

TEST_CASE("nn: parameter counts and the summary table") {
  Net net;
  CHECK(net.num_parameters() == (4 * 3 + 3) + (3 * 2 + 2) + 2);
  CHECK(nn::Conv2d(3, 64, 3).num_parameters() == 64 * 3 * 9 + 64);
  CHECK(nn::Conv2d(3, 64, 3, 1, 1, false).num_parameters() == 64 * 3 * 9);
  const std::string s = net.summary();
  CAPTURE(s);
  for (const char* piece : {"Net", "encoder.0.weight", "[3, 4]", "encoder.2.bias", "head.weight", "total", "25"}) {
    CHECK(s.find(piece) != std::string::npos);
  }
}

TEST_CASE("nn: Conv2d takes its kernel size, stride and padding as one value or {h, w}") {
  nn::Conv2d conv(2, 4, {3, 5}, {1, 2}, {1, 2});
  CHECK(conv.weight.shape() == Shape{4, 2, 3, 5});
  CHECK(conv.stride == HW(1, 2));
  // H' = (7 + 2 * 1 - 3) / 1 + 1 = 7, W' = (11 + 2 * 2 - 5) / 2 + 1 = 6.
  CHECK(conv.forward(zeros({1, 2, 7, 11})).shape() == Shape{1, 4, 7, 6});
  CHECK(nn::Conv2d(2, 4, 3, 2, 1).stride == HW(2, 2));
  CHECK_THROWS_WITH(nn::Conv2d(2, 4, {3, 0}), doctest::Contains("kernel (3, 0)"));
  CHECK_THROWS_WITH(nn::Conv2d(2, 4, 3, {1, -1}), doctest::Contains("stride (1, -1)"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 2, 4, 4}), zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {0, -2}),
                    doctest::Contains("padding must be non-negative, got (0, -2)"));
}

TEST_CASE("nn: registration rejects bad and repeated names") {
  nn::Module m;
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_WITH_AS(m.register_parameter("w", zeros({2})), doctest::Contains("'w'): the name is already"), Error);
  CHECK_THROWS_WITH_AS(m.register_module("w", std::make_shared<nn::ReLU>()), doctest::Contains("already"), Error);
  CHECK_THROWS_WITH_AS(m.register_buffer("a.b", zeros({2})), doctest::Contains("no '.'"), Error);
  CHECK_THROWS_WITH_AS(m.register_parameter("i", arange(3)), doctest::Contains("float32 or float64"), Error);
  CHECK_THROWS_WITH_AS(m.forward(zeros({1})), doctest::Contains("Module.forward"), Error);
}

TEST_CASE("nn: a weight shared by two modules is listed once") {
  nn::Module m;
  auto a = m.register_module("a", std::make_shared<nn::Linear>(2, 2));
  auto b = m.register_module("b", std::make_shared<nn::Module>());
  b->register_parameter("tied", a->weight);
  CHECK(names_of(m.named_parameters()) == std::vector<std::string>{"a.weight", "a.bias"});
  CHECK(m.num_parameters() == 6);
}

TEST_CASE("nn: train() and eval() reach every descendant") {
  Net net;
  CHECK(net.is_training());
  net.eval();
  CHECK_FALSE(net.is_training());
  CHECK_FALSE(net.encoder->is_training());
  CHECK_FALSE((*net.encoder)[2]->is_training());
  net.train();
  CHECK((*net.encoder)[0]->is_training());
}

TEST_CASE("nn: zero_grad drops every gradient") {
  Net net;
  mean(net(ones({5, 4}))).backward();
  for (const Tensor& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad();
  for (const Tensor& p : net.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("nn: to(device) and to(dtype) rebind storage and keep every handle valid") {
  Net net;
  Tensor w = net.head->weight;
  const std::vector<float> before = w.to_vector<float>();
  net.to(Device::cpu());  // already there: nothing is copied
  CHECK(w.to_vector<float>() == before);

  if (cuda_backend_or_null() == nullptr || !cuda_backend_or_null()->available()) {
    const std::string msg = error_of([&] { net.to(Device::cuda()); });
    CHECK(msg.find("cuda:0") != std::string::npos);
    CHECK(w.device() == Device::cpu());  // nothing moved
  }

  Tensor x = uniform({3, 4}, -1, 1, RandomKey{5, 0, 0});
  const Tensor y32 = net(x);
  net.to(DType::Float64);
  CHECK(w.dtype() == DType::Float64);  // the handle taken before the conversion sees it
  CHECK(w.requires_grad());
  const Tensor y64 = net(x.to(DType::Float64));
  CHECK(y64.dtype() == DType::Float64);
  CHECK(max_diff(y64, y32) < 1e-6);
}

TEST_CASE("nn: Linear and Conv2d match their functional forms") {
  nn::Linear lin(5, 3);
  Tensor x = uniform({2, 7, 5}, -1, 1, RandomKey{1, 0, 0});
  CHECK(max_diff(lin(x), nn::functional::linear(x, lin.weight, lin.bias)) == 0);
  nn::Linear nobias(5, 3, false);
  CHECK(max_diff(nobias(x), matmul(x, nobias.weight.t())) < 1e-6);

  nn::Conv2d conv(3, 4, 3, 2, 1);
  CHECK(conv.weight.shape() == Shape{4, 3, 3, 3});
  CHECK(conv.bias.shape() == Shape{4});
  Tensor img = uniform({2, 3, 8, 8}, -1, 1, RandomKey{2, 0, 0});
  Tensor y = conv(img);
  CHECK(y.shape() == Shape{2, 4, 4, 4});
  CHECK(max_diff(y, nn::functional::conv2d(img, conv.weight, conv.bias, 2, 1)) == 0);
  CHECK_THROWS_WITH_AS(conv(zeros({2, 5, 8, 8})), doctest::Contains("expected input (N, 3, H, W), got [2, 5, 8, 8]"),
                       Error);
  CHECK_THROWS_WITH_AS(lin(zeros({2, 4})), doctest::Contains("does not end in 5 features"), Error);
}

TEST_CASE("nn: activation, shape and upsampling layers") {
  Tensor x = tensor({-2, -0.5, 0, 1.5}, {1, 4});
  CHECK(max_diff(nn::ELU(0.5)(x), elu(x, 0.5)) == 0);
  CHECK(nn::ReLU()(x).to_vector<float>() == std::vector<float>{0, 0, 0, 1.5f});
  CHECK(max_diff(nn::Tanh()(x), tanh(x)) == 0);
  CHECK(max_diff(nn::Sigmoid()(x), sigmoid(x)) == 0);
  // Softplus: log(1 + e^x) (PyTorch's values for these inputs), and x itself past beta x > threshold.
  const std::vector<float> soft = nn::Softplus()(x).to_vector<float>();
  const std::vector<float> want = {0.126928f, 0.474077f, 0.693147f, 1.701413f};
  for (size_t i = 0; i < want.size(); ++i) CHECK(soft[i] == doctest::Approx(want[i]).epsilon(1e-5));
  CHECK(nn::Softplus(2.0, 2.0)(x).to_vector<float>()[3] == 1.5f);
  CHECK(max_diff(nn::Softplus(2.0, 2.0)(x), nn::functional::softplus(x, 2.0, 2.0)) == 0);
  CHECK_THROWS_WITH_AS(nn::Softplus(0.0), doctest::Contains("Softplus: beta must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS(softplus(x, -1.0), doctest::Contains("softplus: beta must be positive, got -1 (input [1, 4])"),
                       Error);
  // LeakyReLU, SiLU and GELU (both forms): PyTorch 2.15's float32 values for these inputs, and the functional
  // forms the same bits.
  auto near = [](const Tensor& y, const std::vector<float>& want) {
    const std::vector<float> got = y.to_vector<float>();
    bool ok = got.size() == want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = std::abs(got[i] - want[i]) <= 2e-7f * (1 + std::abs(want[i]));
    return ok;
  };
  CHECK(near(nn::LeakyReLU()(x), {-0.02f, -0.005f, 0.0f, 1.5f}));
  CHECK(near(nn::LeakyReLU(-0.5)(x), {1.0f, 0.25f, 0.0f, 1.5f}));
  CHECK(near(nn::SiLU()(x), {-0.23840584f, -0.18877034f, 0.0f, 1.2263616f}));
  CHECK(near(nn::GELU()(x), {-0.04550028f, -0.15426877f, 0.0f, 1.3997891f}));
  CHECK(near(nn::GELU(GeluApproximate::Tanh)(x), {-0.04540229f, -0.154286f, 0.0f, 1.3995715f}));
  CHECK(max_diff(nn::LeakyReLU(0.2)(x), nn::functional::leaky_relu(x, 0.2)) == 0);
  CHECK(max_diff(nn::SiLU()(x), nn::functional::silu(x)) == 0);
  CHECK(max_diff(nn::GELU(GeluApproximate::Tanh)(x), nn::functional::gelu(x, GeluApproximate::Tanh)) == 0);

  Tensor img = uniform({2, 3, 4, 5}, -1, 1, RandomKey{3, 0, 0});
  CHECK(nn::Flatten()(img).shape() == Shape{2, 60});
  CHECK(nn::Flatten(2)(img).shape() == Shape{2, 3, 20});
  CHECK(nn::Reshape({5, -1})(nn::Flatten()(img)).shape() == Shape{2, 5, 12});
  Tensor up = nn::UpsampleNearest2d(2)(img);
  CHECK(up.shape() == Shape{2, 3, 8, 10});
  CHECK(max_diff(up, nn::functional::upsample_nearest2d(img, 2)) == 0);

  // The BEGAN decoder's head: linear h -> 8*8*n, reshape to (n, 8, 8), conv.
  nn::Sequential dec(std::make_shared<nn::Linear>(16, 8 * 8 * 4), std::make_shared<nn::Reshape>(Shape{4, 8, 8}),
                     std::make_shared<nn::Conv2d>(4, 4, 3, 1, 1), std::make_shared<nn::ELU>(),
                     std::make_shared<nn::UpsampleNearest2d>(2));
  CHECK(dec(zeros({3, 16})).shape() == Shape{3, 4, 16, 16});
  CHECK(names_of(dec.named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
}

TEST_CASE("nn: default initialisation is U(+-1/sqrt(fan_in)) for weights and biases") {
  manual_seed(3);
  nn::Linear lin(400, 300);
  const double bound = 1.0 / std::sqrt(400.0);
  CHECK(max_abs(lin.weight) <= bound);
  CHECK(max_abs(lin.weight) > 0.99 * bound);
  CHECK(std_of(lin.weight) == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  CHECK(max_abs(lin.bias) <= bound);

  nn::Conv2d conv(16, 32, 3);
  const double cbound = 1.0 / std::sqrt(16.0 * 9.0);
  CHECK(max_abs(conv.weight) <= cbound);
  CHECK(max_abs(conv.weight) > 0.98 * cbound);
  CHECK(max_abs(conv.bias) <= cbound);

  // Same seed, same model; another seed, another model.
  manual_seed(3);
  nn::Linear again(400, 300);
  CHECK(max_diff(again.weight, lin.weight) == 0);
  manual_seed(4);
  nn::Linear other(400, 300);
  CHECK(max_diff(other.weight, lin.weight) > 0);
}

TEST_CASE("nn: Xavier and Kaiming initialisers have the right bounds and spread") {
  Tensor w = empty({256, 128, 3, 3});  // fan_in 1152, fan_out 2304
  auto [fan_in, fan_out] = nn::init::fan_in_and_fan_out(w);
  CHECK(fan_in == 128 * 9);
  CHECK(fan_out == 256 * 9);

  const double xb = std::sqrt(6.0 / (1152 + 2304));
  nn::init::xavier_uniform_(w);
  CHECK(max_abs(w) <= xb);
  CHECK(max_abs(w) > 0.999 * xb);
  nn::init::xavier_normal_(w, 2.0);
  CHECK(std_of(w) == doctest::Approx(2.0 * std::sqrt(2.0 / (1152 + 2304))).epsilon(0.01));

  nn::init::kaiming_uniform_(w, 0.0, nn::init::FanMode::FanIn, nn::init::Nonlinearity::ReLU);
  const double kb = std::sqrt(2.0) * std::sqrt(3.0 / 1152);
  CHECK(max_abs(w) <= kb);
  CHECK(max_abs(w) > 0.999 * kb);
  nn::init::kaiming_normal_(w, 0.0, nn::init::FanMode::FanOut, nn::init::Nonlinearity::ReLU);
  CHECK(std_of(w) == doctest::Approx(std::sqrt(2.0 / 2304)).epsilon(0.01));

  CHECK(nn::init::calculate_gain(nn::init::Nonlinearity::Tanh) == doctest::Approx(5.0 / 3.0));
  CHECK(nn::init::calculate_gain(nn::init::Nonlinearity::LeakyReLU, std::sqrt(5.0)) ==
        doctest::Approx(std::sqrt(1.0 / 3.0)));
  CHECK_THROWS_WITH_AS(nn::init::xavier_uniform_(empty({5})), doctest::Contains("at least 2 dims"), Error);
}

TEST_CASE("nn: initialisers work on parameters, keep dtype, and an explicit key fixes the values") {
  nn::Linear lin(8, 8);
  // lin.weight requires grad: the initialiser writes under NoGradGuard.
  nn::init::normal_(lin.weight, 0.0, 1.0, RandomKey{9, 1, 0});
  const std::vector<float> first = lin.weight.to_vector<float>();
  manual_seed(123);  // the default generator's state does not matter with an explicit key
  nn::init::normal_(lin.weight, 0.0, 1.0, RandomKey{9, 1, 0});
  CHECK(lin.weight.to_vector<float>() == first);
  CHECK(lin.weight.requires_grad());

  Tensor d = empty({1000}, DType::Float64);
  nn::init::uniform_(d, 2.0, 3.0);
  CHECK(d.dtype() == DType::Float64);
  const std::vector<double> v = d.to_vector<double>();
  CHECK(*std::min_element(v.begin(), v.end()) >= 2.0);
  CHECK(*std::max_element(v.begin(), v.end()) < 3.0);
  nn::init::constant_(d, 0.5);
  CHECK(d.to_vector<double>()[7] == 0.5);
}

TEST_CASE("nn: a state dict loads into a fresh model and reproduces its outputs") {
  manual_seed(1);
  Net a;
  manual_seed(2);
  Net b;
  Tensor x = uniform({4, 4}, -1, 1, RandomKey{7, 0, 0});
  CHECK(max_diff(a(x), b(x)) > 0);
  Tensor w = b.head->weight;
  b.load_state_dict(a.state_dict());
  CHECK(max_diff(a(x), b(x)) == 0);
  CHECK(w.impl_ptr() == b.head->weight.impl_ptr());  // values copied in, handles kept

  // The map form, and a dtype conversion on the way in.
  std::map<std::string, Tensor> as_map;
  for (const auto& [name, t] : a.state_dict()) as_map[name] = t.to(DType::Float64);
  manual_seed(9);
  Net c;
  c.load_state_dict(as_map);
  CHECK(c.head->weight.dtype() == DType::Float32);
  CHECK(max_diff(a(x), c(x)) == 0);
}

TEST_CASE("nn: load_state_dict names every missing, unexpected and mis-shaped entry at once") {
  Net net;
  nn::NamedTensors state;
  for (const auto& [name, t] : net.state_dict()) {
    if (name == "encoder.0.bias" || name == "head.weight") continue;                   // missing
    state.emplace_back(name, name == "encoder.2.weight" ? zeros({3, 2}) : t.clone());  // mis-shaped
  }
  state.emplace_back("encoder.1.weight", zeros({1}));  // unexpected (ELU has no weight)
  state.emplace_back("decoder.0.bias", zeros({1}));    // unexpected
  const std::vector<float> before = net.encoder->named_parameters()[0].second.to_vector<float>();
  state[0].second.fill_(42.0);

  const std::string msg = error_of([&] { net.load_state_dict(state); });
  CAPTURE(msg);
  for (const char* piece :
       {"2 missing", "encoder.0.bias", "head.weight", "2 unexpected", "encoder.1.weight", "decoder.0.bias",
        "1 mis-shaped", "encoder.2.weight (expected [2, 3], got [3, 2])", "nothing was loaded"}) {
    CHECK(msg.find(piece) != std::string::npos);
  }
  CHECK(net.encoder->named_parameters()[0].second.to_vector<float>() == before);  // untouched
}

TEST_CASE("nn: a tiny model trained with Adam fits a smooth function") {
  // y = sin(2 x0) + x1^2 on [-1, 1]^2, a 2-32-32-1 tanh MLP, full batch.
  manual_seed(0);
  Tensor x = uniform({256, 2}, -1, 1, RandomKey{21, 0, 0});
  std::vector<float> xs = x.to_vector<float>(), ys(256);
  for (int i = 0; i < 256; ++i) ys[i] = std::sin(2 * xs[2 * i]) + xs[2 * i + 1] * xs[2 * i + 1];
  Tensor y = from_vector(ys, {256, 1});
  auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 32), std::make_shared<nn::Tanh>(),
                                                std::make_shared<nn::Linear>(32, 32), std::make_shared<nn::Tanh>(),
                                                std::make_shared<nn::Linear>(32, 1));
  nn::Adam opt(model->parameters(), 1e-2);
  nn::MSELoss criterion;
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    Tensor loss = criterion((*model)(x), y);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < 0.02 * first);
}

TEST_CASE("log_softmax and cross_entropy: worked values, and logits of 1000 neither overflow nor lose the answer") {
  // log_softmax([0, 1, 2]) = [0, 1, 2] - log(1 + e + e^2); adding 1000 to every logit changes nothing, where a
  // plain exp(1000) would overflow to inf (and the result to NaN) in float32 and float64 alike.
  const double lse = std::log(1 + std::exp(1.0) + std::exp(2.0));
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype);
    for (double shift : {0.0, 1000.0}) {
      INFO("shift " << shift);
      const Tensor logits = tensor({shift, shift + 1, shift + 2}, {1, 3}).to(dtype);
      const std::vector<double> got = log_softmax(logits, 1).to(DType::Float64).to_vector<double>();
      REQUIRE(got.size() == 3);
      for (int i = 0; i < 3; ++i) CHECK(got[i] == doctest::Approx(i - lse).epsilon(1e-6));
      const Tensor label = from_vector(std::vector<int64_t>{2}, {1});
      CHECK(cross_entropy(logits, label).to(DType::Float64).item() == doctest::Approx(lse - 2).epsilon(1e-5));
    }
  }
}

TEST_CASE("nn: loss objects forward to the differentiable losses") {
  Tensor a = tensor({1, 2, 3}), b = tensor({1, 0, 5});
  CHECK(nn::L1Loss()(a, b).item() == doctest::Approx(4.0 / 3.0));
  CHECK(nn::MSELoss()(a, b).item() == doctest::Approx(8.0 / 3.0));
  Tensor logits = tensor({0, 0, 0, 0}, {2, 2});
  CHECK(nn::CrossEntropyLoss()(logits, from_vector(std::vector<int64_t>{0, 1}, {2})).item() ==
        doctest::Approx(std::log(2.0)));
  // Losses do not broadcast: a (3, 1) input against a (3) target would otherwise be a mean over (3, 3).
  Tensor column = zeros({3, 1}), row = zeros({3});
  testing::check_throws_with([&] { nn::MSELoss()(column, row); }, {"mse_loss", "[3, 1]", "[3]", "broadcasting"});
  testing::check_throws_with([&] { nn::L1Loss()(column, row); }, {"l1_loss", "[3, 1]", "[3]", "broadcasting"});
}

TEST_CASE("nn: binary cross-entropy from logits: the formula's values, finite at any logit, PyTorch's gradient") {
  // Against -(t log p + (1 - t) log(1 - p)), p = sigmoid(x), in double, where that formula is itself accurate.
  const std::vector<double> xs = {-3, -0.5, 0, 0.5, 2, 4}, ts = {0, 1, 0.5, 0.25, 1, 0};
  Tensor x = from_vector(xs, {6}).requires_grad_();
  Tensor t = from_vector(ts, {6}).requires_grad_();
  Tensor loss = nn::BCEWithLogitsLoss()(x, t);
  double want = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double p = 1 / (1 + std::exp(-xs[i]));
    want -= (ts[i] * std::log(p) + (1 - ts[i]) * std::log(1 - p)) / static_cast<double>(xs.size());
  }
  CHECK(loss.item() == doctest::Approx(want).epsilon(1e-14));
  loss.backward();
  const std::vector<double> gx = x.grad().to_vector<double>(), gt = t.grad().to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(gx[i] == doctest::Approx((1 / (1 + std::exp(-xs[i])) - ts[i]) / 6).epsilon(1e-14));
    CHECK(gt[i] == doctest::Approx(-xs[i] / 6).epsilon(1e-14));
  }
  CHECK(gx[2] == doctest::Approx((0.5 - 0.5) / 6));  // at x = 0: sigmoid(0) - t, where |x| has no derivative

  // Logits of +-100 in float32: sigmoid would round to 0 or 1 and its log to -inf; the loss stays exact.
  const Tensor big = nn::functional::binary_cross_entropy_with_logits(tensor({100, -100, 100}), tensor({1, 0, 0}));
  CHECK(big.item() == doctest::Approx(100.0 / 3).epsilon(1e-6));
  testing::check_throws_with(
      [&] {
        nn::BCEWithLogitsLoss()(zeros({3, 1}), zeros({3}));
      },
      {"binary_cross_entropy_with_logits", "[3, 1]", "[3]"});
}

TEST_CASE("nn: softmax is exp(log_softmax): rows sum to 1, large logits stay finite") {
  const Tensor p = nn::functional::softmax(tensor({1, 2, 3, 1000, 1000, -1000}, {2, 3}), 1);
  const std::vector<double> v = p.to_vector<double>();
  CHECK(v[0] + v[1] + v[2] == doctest::Approx(1.0));
  CHECK(v[2] == doctest::Approx(std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0))));
  CHECK(v[3] == doctest::Approx(0.5));
  CHECK(v[4] == doctest::Approx(0.5));
  CHECK(v[5] == 0.0);
}
