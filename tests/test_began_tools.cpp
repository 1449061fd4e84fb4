// What the checkpoint tools of bin/began stand on: latent paths and fitting z to images (began/latent.h), the
// Frechet distance behind FD-FMNIST (began/eval/frechet.h), and loading a checkpoint's networks
// (began/train_checkpoint.h). The programs themselves run in the began_tools ctest (tests/tools/check_began_tools.sh).
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "began/data/fashion_mnist.h"
#include "began/eval/fd_fmnist.h"
#include "began/eval/fmnist_classifier.h"
#include "began/eval/frechet.h"
#include "began/latent.h"
#include "began/step.h"
#include "began/train_checkpoint.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tests/test_util.h"

using namespace atelier;
using namespace atelier::began;
using testing::check_throws_with;

namespace {

double mean_abs_diff(const Tensor& a, const Tensor& b) { return mean(abs(sub(a, b))).item<double>(); }

// A random orthogonal d x d matrix (Gram-Schmidt on Gaussian columns), row-major.
std::vector<double> random_rotation(int64_t d, uint64_t seed) {
  manual_seed(seed);
  std::vector<double> q = randn({d, d}, DType::Float64).to_vector<double>();
  for (int64_t j = 0; j < d; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double dot = 0;
      for (int64_t i = 0; i < d; ++i) dot += q[i * d + j] * q[i * d + k];
      for (int64_t i = 0; i < d; ++i) q[i * d + j] -= dot * q[i * d + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < d; ++i) norm += q[i * d + j] * q[i * d + j];
    for (int64_t i = 0; i < d; ++i) q[i * d + j] /= std::sqrt(norm);
  }
  return q;
}

// Q diag(eigenvalues) Q^T.
std::vector<double> rotated_diagonal(const std::vector<double>& q, const std::vector<double>& eigenvalues) {
  const auto d = static_cast<int64_t>(eigenvalues.size());
  std::vector<double> m(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      for (int64_t k = 0; k < d; ++k) m[i * d + j] += q[i * d + k] * eigenvalues[k] * q[j * d + k];
    }
  }
  return m;
}

}  // namespace

TEST_CASE("frechet_distance: commuting covariances match the closed form to 1e-9") {
  // S_1 = Q diag(a) Q^T and S_2 = Q diag(b) Q^T commute, so (S_1 S_2)^1/2 = Q diag(sqrt(a b)) Q^T and
  // d^2 = |mu_1 - mu_2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
  const int64_t d = 12;
  const std::vector<double> q = random_rotation(d, 5);
  std::vector<double> a, b;
  FeatureStats s1, s2;
  s1.dim = s2.dim = d;
  double expected = 0;
  for (int64_t i = 0; i < d; ++i) {
    a.push_back(0.1 + 0.37 * static_cast<double>(i));
    b.push_back(2.5 / (1.0 + static_cast<double>(i)));
    s1.mean.push_back(0.3 * static_cast<double>(i));
    s2.mean.push_back(1.0 - 0.2 * static_cast<double>(i));
    expected += std::pow(s1.mean.back() - s2.mean.back(), 2) + std::pow(std::sqrt(a.back()) - std::sqrt(b.back()), 2);
  }
  s1.cov = rotated_diagonal(q, a);
  s2.cov = rotated_diagonal(q, b);
  CHECK(frechet_distance(s1, s2) == doctest::Approx(expected).epsilon(1e-12).scale(0));
  CHECK(std::abs(frechet_distance(s1, s2) - expected) < 1e-9);
  CHECK(std::abs(frechet_distance(s2, s1) - expected) < 1e-9);
  // Diagonal (Q = I) too, where the closed form needs no rotation at all.
  FeatureStats diag1 = s1, diag2 = s2;
  std::vector<double> identity(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < d; ++i) identity[i * d + i] = 1;
  diag1.cov = rotated_diagonal(identity, a);
  diag2.cov = rotated_diagonal(identity, b);
  CHECK(std::abs(frechet_distance(diag1, diag2) - expected) < 1e-9);
}

TEST_CASE("frechet_distance: a feature set against itself is 0; a shifted copy is the squared shift") {
  manual_seed(11);
  const Tensor features = randn({500, 16}, DType::Float64);
  const FeatureStats s = feature_stats(features);
  CHECK(s.count == 500);
  CHECK(s.dim == 16);
  CHECK(std::abs(frechet_distance(s, s)) < 1e-9);
  // Shifting every feature by 0.5 moves the mean only: d^2 = 16 * 0.25.
  const FeatureStats shifted = feature_stats(add(features, 0.5));
  CHECK(std::abs(frechet_distance(s, shifted) - 4.0) < 1e-9);
  // Scaling by 2 doubles every sqrt eigenvalue: d^2 = tr(S) (2 - 1)^2 = tr(S), mean 0 scaled stays the same shift.
  const FeatureStats scaled = feature_stats(mul(features, 2.0));
  double mean_term = 0, trace = 0;
  for (int64_t i = 0; i < 16; ++i) {
    mean_term += s.mean[i] * s.mean[i];
    trace += s.cov[i * 16 + i];
  }
  CHECK(std::abs(frechet_distance(s, scaled) - (mean_term + trace)) < 1e-9);
}

TEST_CASE("feature_stats: the mean and the covariance divided by n - 1, worked by hand") {
  // Rows (1, 2), (3, 2), (5, 6), (7, 6): mean (4, 4); centred (-3, -2), (-1, -2), (1, 2), (3, 2). Sums of products
  // 20, 16 (off the diagonal) and 16, over n - 1 = 3 (the unbiased estimate, numpy.cov's default).
  const FeatureStats s = feature_stats(from_vector(std::vector<double>{1, 2, 3, 2, 5, 6, 7, 6}, {4, 2}));
  REQUIRE(s.mean.size() == 2);
  REQUIRE(s.cov.size() == 4);
  CHECK(s.mean[0] == 4.0);
  CHECK(s.mean[1] == 4.0);
  CHECK(std::abs(s.cov[0] - 20.0 / 3) < 1e-12);
  CHECK(std::abs(s.cov[1] - 16.0 / 3) < 1e-12);
  CHECK(std::abs(s.cov[2] - 16.0 / 3) < 1e-12);
  CHECK(std::abs(s.cov[3] - 16.0 / 3) < 1e-12);
}

TEST_CASE("feature_stats and frechet_distance refuse bad input") {
  check_throws_with([] { feature_stats(zeros({1, 4})); }, {"n >= 2", "[1, 4]"});
  check_throws_with([] { feature_stats(zeros({8})); }, {"(n, d)"});
  FeatureStats a = feature_stats(randn({10, 3}));
  FeatureStats b = feature_stats(randn({10, 4}));
  check_throws_with([&] { frechet_distance(a, b); }, {"dimensions 3 and 4"});
  std::vector<float> bad(20, 1.0f);
  bad[3] = std::nanf("");
  check_throws_with([&] { feature_stats(from_vector(bad, {10, 2})); }, {"not all finite"});
}

TEST_CASE("lerp_path and slerp_path: the ends, even steps, and the slerp norm between unit vectors") {
  const Tensor a = tensor({1, 0, 0});
  const Tensor b = tensor({0, 1, 0});
  const std::vector<float> line = lerp_path(a, b, 5).to_vector<float>();
  REQUIRE(line.size() == 15);
  CHECK(line[0] == 1.0f);
  CHECK(line[12 + 1] == 1.0f);
  CHECK(line[3 * 2] == doctest::Approx(0.5));  // t = 0.5
  CHECK(line[3 * 2 + 1] == doctest::Approx(0.5));
  const std::vector<float> arc = slerp_path(a, b, 5).to_vector<float>();
  for (int i = 0; i < 5; ++i) {
    const double norm = std::sqrt(arc[3 * i] * arc[3 * i] + arc[3 * i + 1] * arc[3 * i + 1]);
    CHECK(norm == doctest::Approx(1.0).epsilon(1e-6));  // on the circle, where the straight line cuts inside
    CHECK(std::atan2(arc[3 * i + 1], arc[3 * i]) == doctest::Approx(M_PI / 8 * i).epsilon(1e-5));
  }
  // An obtuse pair (135 degrees apart) stays on the circle too: the arc, not the chord, which cuts deep inside.
  const Tensor obtuse = tensor({-std::sqrt(0.5), std::sqrt(0.5), 0});
  const std::vector<float> wide = slerp_path(a, obtuse, 4).to_vector<float>();
  for (int i = 0; i < 4; ++i) {
    const double norm = std::sqrt(wide[3 * i] * wide[3 * i] + wide[3 * i + 1] * wide[3 * i + 1]);
    CHECK(norm == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(std::atan2(wide[3 * i + 1], wide[3 * i]) == doctest::Approx(M_PI / 4 * i).epsilon(1e-5));
  }
  // Parallel ends fall back to the straight line.
  const std::vector<float> same = slerp_path(a, mul(a, 2.0), 3).to_vector<float>();
  CHECK(same[3] == doctest::Approx(1.5));
  check_throws_with([&] { lerp_path(a, b, 1); }, {"at least 2 points"});
  check_throws_with([&] { slerp_path(a, tensor({1, 2}), 3); }, {"two (h) vectors"});
}

TEST_CASE("fit_latent: Adam on z recovers G(z*) for a random z* to a mean |G(z_fit) - G(z*)| below 0.02" *
          doctest::test_suite("heavy")) {
  manual_seed(3);
  const ModelConfig config{.image_size = 32, .channels = 1, .n = 4, .h = 8};
  Generator G(config);
  {
    // A freshly initialised G barely depends on z (its images differ by about 0.01 on average), which would make
    // any z pass; its last convolution scaled by 30 spreads them over a range like a trained G's.
    NoGradGuard no_grad;
    G.out->weight.mul_(30.0);
    G.out->bias.mul_(30.0);
  }
  const Tensor z_star = sample_z(4, config.h, 7, 0, LatentStream::generator);
  Tensor target;
  {
    NoGradGuard no_grad;
    target = G.forward(z_star);
  }
  const std::vector<float> before = G.parameters().front().to_vector<float>();
  FitOptions options;
  options.steps = 300;
  options.lr = 0.05;
  options.seed = 1;
  const Tensor z_fit = fit_latent(G, target, options);
  NoGradGuard no_grad;
  const Tensor start = sample_z(4, config.h, options.seed, 0, LatentStream::fixed_samples);
  const double error_start = mean_abs_diff(G.forward(start), target);
  const double error_fit = mean_abs_diff(G.forward(z_fit), target);
  MESSAGE("mean |G(z) - G(z*)|: " << error_start << " at the start, " << error_fit << " after fitting");
  CHECK(error_fit < 0.02);
  CHECK(error_start > 0.1);  // the start alone is far: the fit did the work
  // z stays in [-1, 1]; G is untouched and its parameters still want gradients.
  CHECK(amax(abs(z_fit)).item<double>() <= 1.0);
  CHECK(G.parameters().front().to_vector<float>() == before);
  CHECK(G.parameters().front().requires_grad());
  check_throws_with([&] { fit_latent(G, zeros({2, 3, 32, 32})); }, {"(N, 1, 32, 32)", "[2, 3, 32, 32]"});
}

TEST_CASE("load_checkpoint_networks: a missing file and another model's weights are named") {
  check_throws_with([] { load_checkpoint_networks("/nonexistent-atelier/step.safetensors", Device::cpu()); },
                    {"/nonexistent-atelier/step.safetensors"});
  const std::string classifier = std::string(ATELIER_SOURCE_DIR) + "/" + kClassifierWeights;
  check_throws_with([&] { load_checkpoint_networks(classifier, Device::cpu()); },
                    {"holds another model", "model FmnistClassifier"});
}

TEST_CASE("FD-FMNIST features: (N, 128), the same in any batch size, and generated features keyed by the seed") {
  auto classifier = load_classifier(std::string(ATELIER_SOURCE_DIR) + "/" + kClassifierWeights);
  manual_seed(2);
  const Tensor images = uniform({20, 1, 32, 32}, -1.0, 1.0);
  const Tensor whole = classifier_features(*classifier, images);
  CHECK(whole.shape() == Shape{20, FmnistClassifier::kFeatures});
  CHECK(amax(abs(sub(whole, classifier_features(*classifier, images, 7)))).item<double>() < 1e-5);
  // Values outside [-1, 1] are clamped first, as a PNG would: 3x the images score as their clamped selves.
  const Tensor tripled = mul(images, 3.0);
  CHECK(amax(abs(sub(classifier_features(*classifier, tripled),
                     classifier_features(*classifier, clamp(tripled, -1.0, 1.0)))))
            .item<double>() == 0.0);

  const ModelConfig config{.image_size = 32, .channels = 1, .n = 4, .h = 8};
  Generator G(config);
  const Tensor a = generated_features(*classifier, G, 12, 5, 5);
  const Tensor b = generated_features(*classifier, G, 12, 5, 12);
  const Tensor c = generated_features(*classifier, G, 12, 6);
  CHECK(a.shape() == Shape{12, FmnistClassifier::kFeatures});
  CHECK(amax(abs(sub(a, b))).item<double>() < 1e-5);
  CHECK(amax(abs(sub(a, c))).item<double>() > 0.0);
  check_throws_with([&] { classifier_features(*classifier, images, 0); }, {"batch must be >= 1"});
}

TEST_CASE("class_counts: the classes the classifier sees in the first 1,000 test images, as their labels say" *
          doctest::test_suite("heavy")) {
  auto classifier = load_classifier(std::string(ATELIER_SOURCE_DIR) + "/" + kClassifierWeights);
  FashionMnist test;
  try {
    test = load_fashion_mnist(kFashionMnistDir, /*train=*/false, /*limit=*/1000);
  } catch (const Error& e) {
    FAIL("cannot read the Fashion-MNIST test set (install the Debian package dataset-fashion-mnist): " << e.what());
  }
  const auto counts = class_counts(*classifier, classifier_features(*classifier, test.images));
  std::array<int64_t, FmnistClassifier::kClasses> truth{};
  for (int64_t label : test.labels.to_vector<int64_t>()) truth[static_cast<size_t>(label)] += 1;
  int64_t total = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    INFO("class " << kFashionMnistClasses[c] << ": " << counts[c] << " seen, " << truth[c] << " labelled");
    CHECK(std::abs(counts[c] - truth[c]) <= truth[c] / 4 + 5);  // a 90% classifier: close, not exact
    total += counts[c];
  }
  CHECK(total == 1000);
  check_throws_with([&] { class_counts(*classifier, zeros({3, 5})); }, {"(N, 128)", "[3, 5]"});
}
