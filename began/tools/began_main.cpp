// bin/began: the command-line front of the BEGAN floor. For now it trains and evaluates the Fashion-MNIST
// classifier whose features measure sample quality; `train`, `sample`, `interpolate`, `reconstruct` and `eval`
// come with the BEGAN issue. Arguments are parsed with CLI11 (Debian's libcli11-dev): subcommands, typed options,
// defaults and --help come from a maintained library instead of a hand-written parser.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "backends/thread_pool.h"
#include "began/data/fashion_mnist.h"
#include "began/eval/fmnist_classifier.h"
#include "tensor/creation.h"

using namespace atelier;

namespace {

struct ClassifyTrainArgs {
  std::string data_dir = began::kFashionMnistDir;
  std::string out = began::kClassifierWeights;
  int64_t limit = -1;
  began::ClassifierTrainOptions train;
};

int classify_train(const ClassifyTrainArgs& args) {
  auto t0 = std::chrono::steady_clock::now();
  began::FashionMnist train = began::load_fashion_mnist(args.data_dir, true, args.limit);
  began::FashionMnist test = began::load_fashion_mnist(args.data_dir, false);
  std::printf("Fashion-MNIST: %lld training and %lld test images (32x32, [-1, 1]); %d threads\n",
              static_cast<long long>(train.images.size(0)), static_cast<long long>(test.images.size(0)), num_threads());
  manual_seed(args.train.seed);  // parameter initialisation draws from the default generator
  began::FmnistClassifier model;
  std::printf("%s\n", model.summary().c_str());
  began::train_classifier(model, train.images, train.labels, args.train, [](const began::ClassifierProgress& p) {
    std::printf("epoch %lld  batch %5lld/%lld  loss %.4f  %.1f batches/s  ETA %.0f s\n",
                static_cast<long long>(p.epoch + 1), static_cast<long long>(p.batch),
                static_cast<long long>(p.batches_per_epoch), p.loss, p.batches_per_second, p.eta_seconds);
    std::fflush(stdout);
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double accuracy = began::classifier_accuracy(model, test.images, test.labels);
  // tests/test_classifier.cpp checks the committed weights against the first-1,000 figure (a quick test).
  const int64_t first = std::min<int64_t>(1000, test.images.size(0));
  double accuracy_first_1000 =
      began::classifier_accuracy(model, test.images.slice(0, 0, first), test.labels.slice(0, 0, first));
  std::printf("test accuracy %.2f%% on %lld images (%.2f%% on the first %lld); %.0f s in all\n", 100 * accuracy,
              static_cast<long long>(test.images.size(0)), 100 * accuracy_first_1000, static_cast<long long>(first),
              seconds);
  began::save_classifier(model, args.out,
                         {{"model", "FmnistClassifier"},
                          {"test_accuracy", std::to_string(accuracy)},
                          {"test_accuracy_first_1000", std::to_string(accuracy_first_1000)},
                          {"epochs", std::to_string(args.train.epochs)},
                          {"seed", std::to_string(args.train.seed)}});
  std::printf("weights written to %s\n", args.out.c_str());
  return 0;
}

int classify_eval(const std::string& weights, const std::string& data_dir, int64_t limit) {
  auto model = began::load_classifier(weights);
  began::FashionMnist test = began::load_fashion_mnist(data_dir, false, limit);
  double accuracy = began::classifier_accuracy(*model, test.images, test.labels);
  std::printf("test accuracy %.2f%% on %lld images (%s)\n", 100 * accuracy, static_cast<long long>(test.images.size(0)),
              weights.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "began: BEGAN on atelier (this version: the Fashion-MNIST classifier behind the sample-quality "
      "measure)"};
  app.require_subcommand(1);

  ClassifyTrainArgs train_args;
  CLI::App* train = app.add_subcommand("classify-train", "train the Fashion-MNIST classifier and write its weights");
  train->add_option("--data-dir", train_args.data_dir, "folder with the Fashion-MNIST IDX files")
      ->capture_default_str();
  train->add_option("--out", train_args.out, "safetensors file to write")->capture_default_str();
  train->add_option("--epochs", train_args.train.epochs, "passes over the training set")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--batch-size", train_args.train.batch_size, "images per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--lr", train_args.train.lr, "Adam learning rate (halved after each epoch)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--seed", train_args.train.seed, "initialisation and shuffling seed")->capture_default_str();
  train->add_option("--limit", train_args.limit, "use only the first N training images (-1: all)")
      ->capture_default_str();

  std::string eval_weights = began::kClassifierWeights, eval_dir = began::kFashionMnistDir;
  int64_t eval_limit = -1;
  CLI::App* eval = app.add_subcommand("classify-eval", "test accuracy of classifier weights");
  eval->add_option("--weights", eval_weights, "safetensors file")->capture_default_str();
  eval->add_option("--data-dir", eval_dir, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  eval->add_option("--limit", eval_limit, "use only the first N test images (-1: all)")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    if (*train) return classify_train(train_args);
    if (*eval) return classify_eval(eval_weights, eval_dir, eval_limit);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "began: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
