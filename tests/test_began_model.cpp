// BEGAN's networks (began/model.h): the parameter counts of the paper's 64x64 models, the PyTorch-style parameter
// names, output shapes at 32, 64 and 128 pixels with and without skip connections and tanh, and the errors for bad
// settings and inputs, the decoder's folded upsampling against the separate ops. Also the synthetic data set
// (began/data/synthetic.h).
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/backend.h"
#include "backends/thread_pool.h"
#include "began/data/synthetic.h"
#include "began/latent.h"
#include "began/model.h"
#include "began/step.h"
#include "nn/data/dataloader.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tests/test_util.h"

using namespace atelier;
using namespace atelier::began;
using testing::check_throws_with;

namespace {

ModelConfig config_of(int64_t image_size, int64_t channels, int64_t n, int64_t h, bool skip = false,
                      bool tanh = false) {
  ModelConfig c;
  c.image_size = image_size;
  c.channels = channels;
  c.n = n;
  c.h = h;
  c.skip = skip;
  c.tanh = tanh;
  return c;
}

std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, t] : m.named_parameters()) names.push_back(name);
  return names;
}

Shape shape_of(const nn::Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters()) {
    if (n == name) return t.shape();
  }
  FAIL("no parameter " << name);
  return {};
}

}  // namespace

TEST_CASE("began model: parameter counts of the paper's 64x64 models (C=3, h=64)") {
  {
    Discriminator D(config_of(64, 3, 64, 64));
    Generator G(config_of(64, 3, 64, 64));
    CHECK(D.num_parameters() == 4048323);
    CHECK(G.num_parameters() == 563395);
  }
  {
    Discriminator D(config_of(64, 3, 128, 64));
    Generator G(config_of(64, 3, 128, 64));
    CHECK(D.num_parameters() == 13552451);
    CHECK(G.num_parameters() == 1716611);
  }
  CHECK(began::parameter_count(config_of(64, 3, 128, 64)) == 13552451 + 1716611);
}

TEST_CASE("began model: parameter_count is the built models' count, for every size, channel count and skip") {
  for (int64_t size : {32, 64, 128}) {
    for (int64_t channels : {1, 3}) {
      for (bool skip : {false, true}) {
        ModelConfig config = config_of(size, channels, 3, 5);
        config.skip = skip;
        INFO("size " << size << ", channels " << channels << ", skip " << skip);
        CHECK(began::parameter_count(config) ==
              static_cast<double>(Discriminator(config).num_parameters() + Generator(config).num_parameters()));
      }
    }
  }
  // Any config gives a number: an --n typo of 10^9 is about 10^20 parameters, not an int64 overflow.
  CHECK(began::parameter_count(config_of(32, 1, 1000000000, 64)) > 1e20);
}

TEST_CASE("began model: parameter names and shapes follow the documented PyTorch module paths") {
  // 32x32, C=1, n=8, h=4: encoder convs 1->8, 8->8, 8->16 s2, 16->16, 16->24 s2, 24->24, 24->24; fc 8*8*24 -> 4.
  const ModelConfig c = config_of(32, 1, 8, 4);
  Discriminator D(c);
  Generator G(c);
  std::vector<std::string> expected_g = {"fc.weight", "fc.bias"};
  for (int i = 0; i < 6; ++i) {
    expected_g.push_back("convs." + std::to_string(i) + ".weight");
    expected_g.push_back("convs." + std::to_string(i) + ".bias");
  }
  expected_g.push_back("out.weight");
  expected_g.push_back("out.bias");
  CHECK(names_of(G) == expected_g);

  std::vector<std::string> expected_d;
  for (int i = 0; i < 7; ++i) {
    expected_d.push_back("enc.convs." + std::to_string(i) + ".weight");
    expected_d.push_back("enc.convs." + std::to_string(i) + ".bias");
  }
  expected_d.push_back("enc.fc.weight");
  expected_d.push_back("enc.fc.bias");
  for (const std::string& g : expected_g) expected_d.push_back("dec." + g);
  CHECK(names_of(D) == expected_d);

  CHECK(shape_of(D, "enc.convs.0.weight") == Shape{8, 1, 3, 3});
  CHECK(shape_of(D, "enc.convs.2.weight") == Shape{16, 8, 3, 3});
  CHECK(shape_of(D, "enc.convs.4.weight") == Shape{24, 16, 3, 3});
  CHECK(shape_of(D, "enc.convs.6.weight") == Shape{24, 24, 3, 3});
  CHECK(shape_of(D, "enc.fc.weight") == Shape{4, 8 * 8 * 24});
  CHECK(shape_of(D, "dec.fc.weight") == Shape{8 * 8 * 8, 4});
  CHECK(shape_of(G, "convs.5.weight") == Shape{8, 8, 3, 3});
  CHECK(shape_of(G, "out.weight") == Shape{1, 8, 3, 3});
  // The stride-2 convs are the first of each block after the first stage.
  for (size_t i = 0; i < D.enc->convs->size(); ++i) {
    auto conv = std::dynamic_pointer_cast<nn::Conv2d>((*D.enc->convs)[i]);
    REQUIRE(conv != nullptr);
    CHECK(conv->stride == (i == 2 || i == 4 ? 2 : 1));
  }
}

TEST_CASE("began model: output shapes at 32, 64 and 128 pixels, with skip and tanh variants") {
  manual_seed(1);
  NoGradGuard no_grad;
  for (int64_t size : {32, 64, 128}) {
    for (bool skip : {false, true}) {
      for (bool use_tanh : {false, true}) {
        INFO("size " << size << " skip " << skip << " tanh " << use_tanh);
        const ModelConfig c = config_of(size, 3, 4, 5, skip, use_tanh);
        Discriminator D(c);
        Generator G(c);
        Tensor z = uniform({2, 5}, -1, 1);
        Tensor img = G.forward(z);
        CHECK(img.shape() == Shape{2, 3, size, size});
        CHECK(D.enc->forward(img).shape() == Shape{2, 5});
        Tensor rec = D.forward(img);
        CHECK(rec.shape() == Shape{2, 3, size, size});
        std::vector<float> v = rec.to_vector<float>();
        CHECK(std::all_of(v.begin(), v.end(), [](float a) { return std::isfinite(a); }));
        if (use_tanh) {
          // tanh bounds every output to [-1, 1]; without it nothing does.
          CHECK(std::all_of(v.begin(), v.end(), [](float a) { return a >= -1 && a <= 1; }));
        }
        // 2 + 2 per upsampling; with skip the first conv of each stage reads 2n channels.
        const int64_t ups = num_upsamplings(c);
        CHECK(G.convs->size() == static_cast<size_t>(2 + 2 * ups));
        auto first = std::dynamic_pointer_cast<nn::Conv2d>((*G.convs)[2]);
        REQUIRE(first != nullptr);
        CHECK(first->in_channels == (skip ? 8 : 4));
        CHECK(D.enc->convs->size() == static_cast<size_t>(3 + 2 * ups));
      }
    }
  }
}

// The decoder as it was written before the upsampling moved into the convolutions: upsample_nearest2d, then
// conv2d_elu on the upsampled (with skip: concatenated) image, and h0 upsampled from 8x8 in one go.
Tensor decoder_with_separate_upsampling(const Decoder& dec, const Tensor& z) {
  const ModelConfig& c = dec.config();
  auto conv = [&](size_t i, const Tensor& x) {
    auto& layer = dynamic_cast<nn::Conv2d&>(*(*dec.convs)[i]);
    return conv2d_elu(x, layer.weight, layer.bias, 1, 1);
  };
  const Tensor h0 = dec.fc->forward(z).reshape({z.size(0), c.n, 8, 8});
  Tensor y = conv(1, conv(0, h0));
  const int64_t k = (static_cast<int64_t>(dec.convs->size()) - 2) / 2;
  for (int64_t i = 0; i < k; ++i) {
    y = upsample_nearest2d(y, 2);
    if (c.skip) y = cat({y, upsample_nearest2d(h0, int64_t{2} << i)}, 1);
    y = conv(static_cast<size_t>(3 + 2 * i), conv(static_cast<size_t>(2 + 2 * i), y));
  }
  return dec.out->forward(y);
}

TEST_CASE("began model: the decoder's folded upsampling gives the separate ops' output and gradients") {
  // Forward bit for bit (the same values reach the same convolutions); the gradients bit for bit without skip, and
  // within float rounding with skip, where h0's gradient sums its blocks in two steps (2^i, then 2) instead of one.
  for (bool skip : {false, true}) {
    INFO("skip " << skip);
    manual_seed(4);
    Decoder dec(config_of(32, 3, 4, 5, skip));
    const Tensor z = uniform({3, 5}, -1, 1, RandomKey{40, 0, 0});
    const Tensor r = uniform({3, 3, 32, 32}, -1, 1, RandomKey{40, 1, 0});
    std::vector<std::vector<float>> grads[2];
    std::vector<float> outputs[2];
    for (int side = 0; side < 2; ++side) {
      dec.zero_grad();
      const Tensor y = side == 0 ? dec.forward(z) : decoder_with_separate_upsampling(dec, z);
      (y * r).sum().backward();
      outputs[side] = y.to_vector<float>();
      for (const Tensor& p : dec.parameters()) grads[side].push_back(p.grad().to_vector<float>());
    }
    CHECK(outputs[0] == outputs[1]);
    REQUIRE(grads[0].size() == grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i) {
      INFO("parameter " << i);
      if (!skip) {
        CHECK(grads[0][i] == grads[1][i]);
        continue;
      }
      double diff = 0, norm = 0;
      for (size_t e = 0; e < grads[0][i].size(); ++e) {
        diff += (grads[0][i][e] - grads[1][i][e]) * static_cast<double>(grads[0][i][e] - grads[1][i][e]);
        norm += grads[1][i][e] * static_cast<double>(grads[1][i][e]);
      }
      CHECK(std::sqrt(diff) <= 1e-6 * std::sqrt(norm));
    }
  }
}

TEST_CASE("began model: skip connections change the parameter count by exactly the wider first convs") {
  const ModelConfig plain = config_of(64, 3, 16, 64);
  ModelConfig skip = plain;
  skip.skip = true;
  // Three stages, each first conv gains n * n * 9 weights.
  CHECK(Generator(skip).num_parameters() - Generator(plain).num_parameters() == 3 * 16 * 16 * 9);
  CHECK(Discriminator(skip).num_parameters() - Discriminator(plain).num_parameters() == 3 * 16 * 16 * 9);
}

TEST_CASE("began model: step_memory is at most a real step's allocator peak, and at least 80% of it" *
          doctest::test_suite("heavy")) {
  // A few settings, small enough for a test: the estimate's factors were fitted on 13 larger ones (model.h), at 2
  // threads. Each thread more adds its convolutions' scratch (0.5-1.1 MB at these sizes: at 7 threads the estimate
  // was 0.69-0.73 of the peak), which the estimate leaves out: it matters only for models this small.
  testing::ThreadCountGuard threads;
  set_num_threads(2);
  for (const ModelConfig config : {ModelConfig{.image_size = 32, .channels = 1, .n = 16, .h = 16},
                                   ModelConfig{.image_size = 64, .channels = 3, .n = 8, .h = 32}}) {
    const int64_t batch = 8;
    manual_seed(1);
    Generator G(config);
    Discriminator D(config);
    nn::Adam opt_g(G.parameters()), opt_d(D.parameters());
    Backend& cpu = backend_for(Device::cpu());
    cpu.reset_peak_in_use();
    const size_t before = cpu.allocator_stats().in_use;  // the networks' weights (and any other test's leftovers)
    const Tensor x = uniform({batch, config.channels, config.image_size, config.image_size}, -1, 1);
    double k = 0;
    for (int64_t step = 0; step < 2; ++step) {  // the first step makes Adam's moments
      began_step(G, D, opt_g, opt_d, x, sample_z(batch, config.h, 0, step, LatentStream::discriminator),
                 sample_z(batch, config.h, 0, step, LatentStream::generator), k);
    }
    // What the step holds above the weights, and the estimate less the weights it counts (one of its four copies).
    const double weights = 4.0 * parameter_count(config);
    const double peak = static_cast<double>(cpu.allocator_stats().peak_in_use - before);
    const double estimate = step_memory(config, batch).total() - weights;
    INFO("image size " << config.image_size << ": estimate " << estimate << " bytes, peak " << peak);
    CHECK(estimate <= peak);
    CHECK(estimate >= 0.8 * peak);
  }
}

TEST_CASE("began model: bad settings and inputs give clear errors") {
  check_throws_with([] { check_model_config(config_of(48, 1, 8, 8)); }, {"image_size", "48"});
  check_throws_with([] { check_model_config(config_of(16, 1, 8, 8)); }, {"image_size", "16"});
  check_throws_with([] { check_model_config(config_of(0, 1, 8, 8)); }, {"image_size"});
  check_throws_with([] { Discriminator D(config_of(96, 1, 8, 8)); }, {"image_size", "96"});
  check_throws_with([] { Generator G(config_of(32, 0, 8, 8)); }, {"channels", "0"});
  check_throws_with([] { Generator G(config_of(32, 1, -3, 8)); }, {"n (filters)", "-3"});
  check_throws_with([] { Encoder E(config_of(32, 1, 8, 0)); }, {"h", "0"});
  CHECK_NOTHROW(check_model_config(config_of(256, 4, 1, 1)));

  const ModelConfig c = config_of(32, 1, 4, 6);
  Discriminator D(c);
  Generator G(c);
  check_throws_with([&] { D.forward(zeros({2, 3, 32, 32})); }, {"(N, 1, 32, 32)", "[2, 3, 32, 32]"});
  check_throws_with([&] { D.forward(zeros({2, 1, 64, 64})); }, {"(N, 1, 32, 32)", "[2, 1, 64, 64]"});
  check_throws_with([&] { G.forward(zeros({2, 5})); }, {"(N, 6)", "[2, 5]"});
  check_throws_with([&] { G.forward(zeros({2, 6, 1})); }, {"(N, 6)"});
}

TEST_CASE("began synthetic data: deterministic by (seed, index), in range, shaped, varied") {
  SyntheticOptions o;
  o.size = 50;
  o.image_size = 32;
  o.channels = 3;
  o.seed = 7;
  SyntheticShapes data(o);
  CHECK(data.size() == 50);
  nn::Example e = data.get(3);
  CHECK(e.data.shape() == Shape{3, 32, 32});
  CHECK(e.data.dtype() == DType::Float32);
  CHECK(!e.target.defined());

  // Same (seed, index) -> the same image, whatever else was drawn in between; another index or seed differs.
  std::vector<float> a = data.get(3).data.to_vector<float>();
  (void)data.get(10);
  CHECK(data.get(3).data.to_vector<float>() == a);
  CHECK(data.get(4).data.to_vector<float>() != a);
  SyntheticOptions o2 = o;
  o2.seed = 8;
  CHECK(SyntheticShapes(o2).get(3).data.to_vector<float>() != a);

  // Background -1, shapes brighter; every value in [-1, 1]; every image has some shape pixels; colours appear.
  int colour_images = 0;
  for (int64_t i = 0; i < data.size(); ++i) {
    std::vector<float> v = data.get(i).data.to_vector<float>();
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x >= -1 && x <= 1; }));
    const int64_t plane = 32 * 32;
    int64_t background = std::count(v.begin(), v.begin() + plane, -1.0f);
    CHECK(background > plane / 10);  // shapes never cover everything
    CHECK(background < plane);       // and there is always a shape
    bool colour = false;
    for (int64_t p = 0; p < plane; ++p) colour |= v[p] != v[plane + p] || v[p] != v[2 * plane + p];
    colour_images += colour;
  }
  CHECK(colour_images > 5);
  CHECK(colour_images < 50);

  // Thread-safe: get() from several threads gives the single-threaded images.
  std::vector<std::vector<float>> expected;
  for (int64_t i = 0; i < data.size(); ++i) expected.push_back(data.get(i).data.to_vector<float>());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = data.size() - 1; i >= 0; --i)
        mismatches[t] += data.get(i).data.to_vector<float>() != expected[i];
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));

  // Any size and channel count; one channel is always grey.
  SyntheticOptions o3;
  o3.size = 3;
  o3.image_size = 17;
  o3.channels = 1;
  CHECK(SyntheticShapes(o3).get(2).data.shape() == Shape{1, 17, 17});

  // Batches through the DataLoader.
  nn::DataLoaderOptions lo;
  lo.batch_size = 8;
  lo.drop_last = true;
  nn::DataLoader loader(std::make_shared<SyntheticShapes>(o), lo);
  int batches = 0;
  for (nn::Batch& b : loader.epoch(0)) {
    CHECK(b.data.shape() == Shape{8, 3, 32, 32});
    ++batches;
  }
  CHECK(batches == 6);
}

TEST_CASE("began synthetic data: bad options and indices give clear errors") {
  SyntheticOptions o;
  o.size = 0;
  check_throws_with([&] { SyntheticShapes s(o); }, {"size", "0"});
  o.size = 5;
  o.channels = 0;
  check_throws_with([&] { SyntheticShapes s(o); }, {"channels", "0"});
  o.channels = 1;
  o.image_size = 2;
  check_throws_with([&] { SyntheticShapes s(o); }, {"image_size", "2"});
  o.image_size = 8;
  SyntheticShapes s(o);
  check_throws_with([&] { s.get(5); }, {"index 5", "5"});
  check_throws_with([&] { s.get(-1); }, {"index -1"});
}
