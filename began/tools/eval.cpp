// `began eval`: FD-FMNIST for a checkpoint of a Fashion-MNIST run (began/eval/fd_fmnist.h), printed beside two
// baselines that frame it: real training images against the test images (what a perfect generator would score,
// about), and an untrained generator of the same settings (where the run started).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "began/data/fashion_mnist.h"
#include "began/eval/fd_fmnist.h"
#include "began/number_text.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"
#include "tensor/creation.h"

#ifndef ATELIER_INSTALL_DATADIR
#define ATELIER_INSTALL_DATADIR "share"
#endif

namespace atelier::began_cli {

namespace {

struct EvalArgs {
  CheckpointArgs source;
  std::string classifier;  // empty: beside the executable
  std::string data_dir;    // empty: the run's
  int64_t count = 10000;
  uint64_t seed = 0;
  CLI::Option* seed_option = nullptr;
};

// The classifier's weights as the build tree and `cmake --install` place them: <bin>/../share/atelier/, found from
// the running executable (/proc/self/exe), so the default works from any folder.
std::string default_classifier_path() {
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path base = error ? std::filesystem::path(".") : exe.parent_path().parent_path();
  return (base / ATELIER_INSTALL_DATADIR / "atelier" / "fmnist_classifier.safetensors").lexically_normal().string();
}

int run_eval(const EvalArgs& args) {
  began::CheckpointNetworks networks = load_networks(args.source);
  const began::TrainConfig& config = networks.config;
  ATELIER_CHECK(config.data == "fashion-mnist", "checkpoint " << args.source.checkpoint
                                                              << " is not of a Fashion-MNIST run ("
                                                              << began::model_settings_text(config)
                                                              << "): FD-FMNIST measures Fashion-MNIST samples only");
  const Device device = networks.G->parameters().front().device();
  auto classifier = began::load_classifier(args.classifier);
  classifier->to(device);
  const std::string dir = run_data_dir(config, args.data_dir);
  const uint64_t seed = args.seed_option->count() > 0 ? args.seed : config.seed;

  const began::FeatureStats test = began::feature_stats(
      began::classifier_features(*classifier, began::load_fashion_mnist(dir, false, args.count).images));
  ATELIER_CHECK(test.count == args.count, "--count " << args.count << ": Fashion-MNIST's test set in " << dir
                                                     << " has only " << began::count_text(test.count, "image"));
  const began::FeatureStats train = began::feature_stats(
      began::classifier_features(*classifier, began::load_fashion_mnist(dir, true, args.count).images));
  const Tensor generated_features = began::generated_features(*classifier, *networks.G, args.count, seed);
  const began::FeatureStats generated = began::feature_stats(generated_features);
  // The generator the run started from: the trainer seeds, then builds D, then G (began/trainer.cpp).
  manual_seed(config.seed);
  began::Discriminator untrained_d(config.model);
  began::Generator untrained(config.model);
  untrained.to(device);
  const began::FeatureStats fresh =
      began::feature_stats(began::generated_features(*classifier, untrained, args.count, seed));

  const double fd = began::frechet_distance(generated, test);
  const double real_fd = began::frechet_distance(train, test);
  const double fresh_fd = began::frechet_distance(fresh, test);
  std::printf(
      "FD-FMNIST against %lld Fashion-MNIST test images (classifier features; lower is better; not "
      "comparable to Inception FID):\n",
      static_cast<long long>(args.count));
  auto row = [](const std::string& label, double value) { std::printf("  %-34s %10.3f\n", label.c_str(), value); };
  row("this generator (step " + std::to_string(networks.position.step) + ")", fd);
  row("baseline: real training images", real_fd);
  row("baseline: untrained generator", fresh_fd);
  row("ratio: this generator / untrained", fd / fresh_fd);
  // The classes the classifier sees in the samples: a generator that dropped classes scores high for that reason.
  std::string classes;
  const auto counts = began::class_counts(*classifier, generated_features);
  for (size_t c = 0; c < counts.size(); ++c) {
    char part[48];
    std::snprintf(part, sizeof part, "%s%s %.1f%%", c == 0 ? "" : ", ", began::kFashionMnistClasses[c],
                  100.0 * static_cast<double>(counts[c]) / static_cast<double>(args.count));
    classes += part;
  }
  std::printf("classes of the generated images (the classifier's; the test set has 10%% each): %s\n", classes.c_str());
  return 0;
}

}  // namespace

Tool add_eval_tool(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* command = app.add_subcommand(
      "eval",
      "FD-FMNIST of a Fashion-MNIST run's generator: the Frechet distance between the committed Fashion-MNIST "
      "classifier's features of generated images and of the test images, beside two baselines (real training "
      "images; an untrained generator). Its own scale: not comparable to Inception FID");
  add_checkpoint_options(*command, args->source);
  command->add_option("--classifier", args->classifier,
                      "the classifier's weights (default: " + default_classifier_path() + ")");
  add_data_dir_option(*command, args->data_dir);
  command->add_option("--count", args->count, "images in each set: generated, test and training")
      ->check(whole_number<int64_t>(2, 10000))
      ->capture_default_str();
  args->seed_option = command->add_option("--seed", args->seed, "seed of z (default: the run's seed)");
  args->seed_option->check(whole_number<uint64_t>());
  Tool tool;
  tool.command = command;
  tool.check = [args] {
    check_checkpoint_args(args->source);
    if (args->classifier.empty()) args->classifier = default_classifier_path();
    check_readable_file("--classifier", args->classifier);
    check_data_dir(args->data_dir);
  };
  tool.run = [args] { return run_eval(*args); };
  return tool;
}

}  // namespace atelier::began_cli
