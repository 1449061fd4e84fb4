// The Fashion-MNIST classifier (began/eval/): a tiny training run on generated images learns, and the committed
// weights still reach the accuracy recorded in their own metadata when they were trained (reading the real test set
// that the Debian package dataset-fashion-mnist installs).
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "atelier.h"
#include "began/data/fashion_mnist.h"
#include "began/eval/fmnist_classifier.h"
#include "nn/safetensors.h"
#include "tests/test_util.h"

using namespace atelier;

namespace {

// 4 classes of 32x32 images in [-1, 1]: a bright 12x12 square in one of the four quadrants, on noise.
void make_quadrant_images(int64_t n, uint64_t seed, Tensor& images, Tensor& labels) {
  Tensor noise = uniform({n, 1, 32, 32}, -1.0, -0.6, RandomKey{seed, 0, 0});
  std::vector<float> pixels = noise.to_vector<float>();
  std::vector<int64_t> classes(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = (i * 7 + 3) % 4;
    classes[i] = c;
    int64_t y0 = 2 + (c / 2) * 16, x0 = 2 + (c % 2) * 16;
    for (int64_t y = y0; y < y0 + 12; ++y)
      for (int64_t x = x0; x < x0 + 12; ++x) pixels[i * 1024 + y * 32 + x] = 0.8f;
  }
  images = from_vector(pixels, {n, 1, 32, 32});
  labels = from_vector(classes, {n});
}

}  // namespace

TEST_CASE("classifier: a tiny run on generated images learns" * doctest::test_suite("heavy")) {
  // Seed 5, 256 images of 4 classes, batch 32, 4 epochs = 32 Adam steps at lr 2e-3.
  Tensor images, labels;
  make_quadrant_images(256, 5, images, labels);
  manual_seed(5);
  began::FmnistClassifier model;
  began::ClassifierTrainOptions options;
  options.epochs = 4;
  options.batch_size = 32;
  options.seed = 5;
  options.log_every = 1;  // one report per step: the first is the untrained loss
  std::vector<double> losses;
  double last = began::train_classifier(model, images, labels, options,
                                        [&](const began::ClassifierProgress& p) { losses.push_back(p.loss); });
  REQUIRE(losses.size() >= 4);
  INFO("first window loss " << losses.front() << ", last epoch " << last);
  CHECK(losses.front() > 1.0);  // about log 4 = 1.39 at the start
  CHECK(last < 0.5 * losses.front());
  Tensor test_images, test_labels;
  make_quadrant_images(64, 6, test_images, test_labels);
  CHECK(began::classifier_accuracy(model, test_images, test_labels) > 0.9);
  CHECK(model.features(test_images).shape() == Shape{64, 128});
}

TEST_CASE("classifier: a loss that turns non-finite stops training with the epoch, batch and --lr named") {
  // lr 1e30: the first Adam step moves every weight by about 1e30, so the next batch's logits overflow.
  Tensor images, labels;
  make_quadrant_images(64, 5, images, labels);
  began::FmnistClassifier model;
  began::ClassifierTrainOptions options;
  options.epochs = 1;
  options.batch_size = 16;
  options.lr = 1e30;
  testing::check_throws_with([&] { began::train_classifier(model, images, labels, options); },
                             {"epoch 1, batch 2", "the loss is not finite", "lower --lr", "1e+30"});
}

TEST_CASE("classifier: the committed weights reach the accuracy their metadata records on the first 1,000 images" *
          doctest::test_suite("heavy")) {
  // `bin/began classify-train` writes test_accuracy_first_1000 (a fraction, e.g. "0.903000") into the weights.
  const std::string weights = std::string(ATELIER_SOURCE_DIR) + "/" + began::kClassifierWeights;
  const auto metadata = nn::load_safetensors(weights).metadata;
  const auto recorded_it = metadata.find("test_accuracy_first_1000");
  REQUIRE_MESSAGE(recorded_it != metadata.end(), weights << " has no test_accuracy_first_1000 in its metadata");
  const double recorded = 100 * std::stod(recorded_it->second);

  began::FashionMnist test;
  try {
    test = began::load_fashion_mnist(began::kFashionMnistDir, /*train=*/false, /*limit=*/1000);
  } catch (const Error& e) {
    FAIL("cannot read the Fashion-MNIST test set (install the Debian package dataset-fashion-mnist): " << e.what());
  }
  auto model = began::load_classifier(weights);
  double accuracy = 100 * began::classifier_accuracy(*model, test.images, test.labels);
  INFO("accuracy " << accuracy << "%, recorded " << recorded << "%");
  // The same weights on the same images; a different thread count may round the convolutions differently, so
  // allow 2 points for that (a broken kernel or loader costs far more).
  CHECK(accuracy >= recorded - 2.0);
  CHECK(accuracy > 85.0);
}

TEST_CASE("classifier: weights of another model are refused in one line that says what the file holds") {
  testing::TempDir dir;
  const std::string path = dir.file("other.safetensors");
  // A BEGAN training checkpoint's kind of file: many tensors, none of them the classifier's.
  nn::NamedTensors tensors;
  for (int i = 0; i < 100; ++i) tensors.emplace_back("G.convs." + std::to_string(i) + ".weight", zeros({2}));
  std::map<std::string, std::string> metadata = {{"epoch", "4"}, {"format", "atelier-began-train-1"}};
  for (int i = 0; i < 30; ++i) metadata["setting." + std::to_string(i)] = "0x1.0624dd2f1a9fcp-10";
  nn::save_safetensors(path, tensors, metadata);
  std::string msg = testing::error_of([&] { began::load_classifier(path); });
  INFO(msg);
  CHECK(msg.find(path + " holds another model, not the Fashion-MNIST classifier's weights") != std::string::npos);
  CHECK(msg.find("epoch 4, format atelier-began-train-1, setting.0 0x1.0624dd2f1a9fcp-10,") != std::string::npos);
  CHECK(msg.find("and 26 more") != std::string::npos);
  CHECK(msg.size() < 400);  // neither the 100 unexpected names nor the 32 metadata entries
  nn::save_safetensors(path, tensors, {{"model", "ResNet"}});
  CHECK(testing::error_of([&] { began::load_classifier(path); }).find("model ResNet") != std::string::npos);
}
