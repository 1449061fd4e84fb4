// bin/began: the command-line front of the BEGAN floor. `began train` trains BEGAN (began/trainer.h);
// `classify-train` and `classify-eval` train and evaluate the Fashion-MNIST classifier whose features measure
// sample quality; `sample`, `reconstruct`, `interpolate` and `eval` work on a training checkpoint (one file each
// beside this one, began/tools/tools.h). Arguments are parsed with CLI11 (Debian's libcli11-dev): subcommands, typed
// options, defaults and
// --help come from a maintained library instead of a hand-written parser.
//
// Exit codes: 0 done; 1 an error during the run; 2 a bad command line or setting (found before any work starts);
// 3 training diverged (a non-finite loss); 130 / 143 stopped by SIGINT / SIGTERM after writing a checkpoint.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/conv_algo.h"
#include "backends/cpu/simd.h"
#include "backends/error.h"
#include "backends/thread_pool.h"
#include "began/data/fashion_mnist.h"
#include "began/data/image_folder.h"
#include "began/eval/fmnist_classifier.h"
#include "began/number_text.h"
#include "began/run_settings.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"
#include "began/trainer.h"
#include "nn/safetensors.h"
#include "tensor/creation.h"

// The build's `git describe`, captured when CMake configures, and atelier's version (see CMakeLists.txt).
#ifndef ATELIER_GIT_DESCRIBE
#define ATELIER_GIT_DESCRIBE "unknown"
#endif
#ifndef ATELIER_VERSION
#define ATELIER_VERSION "unknown"
#endif

using namespace atelier;
using namespace atelier::began_cli;

namespace {

struct ClassifyTrainArgs {
  std::string data_dir = began::kFashionMnistDir;
  std::string out = began::kClassifierWeights;
  bool overwrite = false;
  int64_t limit = -1;
  began::ClassifierTrainOptions train;
};

// classify-train --out, before any work: a .safetensors name, and a file already there is replaced only when it
// holds classifier weights (save_classifier's metadata: model FmnistClassifier), i.e. an earlier output of this
// command, or with --overwrite. Otherwise a slip (a checkpoint's path, which completion offers) would replace a
// BEGAN checkpoint or someone's weights with the classifier's, after a minute of training.
void check_classifier_out(const std::string& out, bool overwrite) {
  ATELIER_CHECK(lower_extension(out) == ".safetensors", "--out " << out
                                                                 << ": not a .safetensors file name (the weights are "
                                                                 << "written as safetensors)");
  std::error_code ec;
  if (overwrite || !std::filesystem::exists(out, ec)) return;
  std::string holds;  // what the file holds, when it is not classifier weights
  try {
    const std::map<std::string, std::string> metadata = nn::load_safetensors(out).metadata;
    const auto model = metadata.find("model");
    if (metadata.count("format")) {
      holds = "holds a checkpoint of began train";
    } else if (model == metadata.end()) {
      holds = "holds weights without a model name";
    } else if (model->second != "FmnistClassifier") {
      holds = "holds another model, " + cut_quote(model->second);
    }
  } catch (const Error&) {
    holds = "is not a safetensors file";
  }
  ATELIER_CHECK(holds.empty(), "--out " << out << " " << holds
                                        << ", not classifier weights: pass --overwrite to replace it, or pick "
                                           "another --out");
}

// The data and weights of classify-train and classify-eval, read with the checks before any work, so that a damaged
// file is refused with exit 2 as `began train` refuses its data.
struct ClassifyInputs {
  began::FashionMnist train, test;
  std::shared_ptr<began::FmnistClassifier> model;  // classify-eval's weights
};

int classify_train(const ClassifyTrainArgs& args, const began::FashionMnist& train, const began::FashionMnist& test) {
  auto t0 = std::chrono::steady_clock::now();
  std::printf(
      "Fashion-MNIST: %lld training and %s (32x32, [-1, 1]); %s\n", static_cast<long long>(train.images.size(0)),
      began::count_text(test.images.size(0), "test image").c_str(), began::count_text(num_threads(), "thread").c_str());
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
  std::printf("test accuracy %.2f%% on %s (%.2f%% on the first %lld); %.0f s in all\n", 100 * accuracy,
              began::count_text(test.images.size(0), "image").c_str(), 100 * accuracy_first_1000,
              static_cast<long long>(first), seconds);
  began::save_classifier(model, args.out,
                         {{"model", "FmnistClassifier"},
                          {"test_accuracy", std::to_string(accuracy)},
                          {"test_accuracy_first_1000", std::to_string(accuracy_first_1000)},
                          {"epochs", std::to_string(args.train.epochs)},
                          {"seed", std::to_string(args.train.seed)}});
  std::printf("weights written to %s\n", args.out.c_str());
  return 0;
}

int classify_eval(const std::string& weights, began::FmnistClassifier& model, const began::FashionMnist& test) {
  double accuracy = began::classifier_accuracy(model, test.images, test.labels);
  std::printf("test accuracy %.2f%% on %s (%s)\n", 100 * accuracy,
              began::count_text(test.images.size(0), "image").c_str(), weights.c_str());
  return 0;
}

// ---- began train ----

struct TrainCli {
  began::TrainConfig config;
  bool smoke = false;
  std::map<std::string, CLI::Option*> options;  // config.json key -> option, to learn which were given
};

void add_train_options(CLI::App& cmd, TrainCli& cli) {
  began::TrainConfig& c = cli.config;
  auto add = [&](const std::string& key, auto& field, const std::string& help) {
    CLI::Option* option = cmd.add_option(began::flag_name(key), field, help)->capture_default_str();
    check_number<std::remove_reference_t<decltype(field)>>(option);
    cli.options[key] = option;
  };
  auto add_flag = [&](const std::string& key, bool& field, const std::string& help) {
    cli.options[key] = cmd.add_flag(began::flag_name(key), field, help + " (default: off)");
  };
  add("data", c.data, "data set: fashion-mnist (32x32, 1 channel), synthetic, or folder (JPEG/PNG photos)");
  add("data_dir", c.data_dir, "folder with the Fashion-MNIST IDX files, or the image folder (searched recursively)");
  add("synthetic_size", c.synthetic_size, "images in the synthetic data set");
  add("crop", c.crop, "--data folder: side of the centred square crop in pixels (0: the largest square)");
  add_flag("flip", c.flip, "--data folder: mirror images left to right at random, keyed by (seed, epoch, image)");
  add("cache", c.cache, "--data folder: folder for the decoded-image cache (default: none)");
  add("image_size", c.model.image_size, "image side in pixels, 8 * 2^k with k >= 2");
  add("channels", c.model.channels, "image channels");
  add("n", c.model.n, "filters of the first stage");
  add("h", c.model.h, "bottleneck and z size");
  add_flag("skip", c.model.skip, "the paper's skip connections in the decoders");
  add_flag("tanh", c.model.tanh, "tanh on the decoders' output");
  add("batch", c.batch, "images per step");
  add("gamma", c.step.gamma, "diversity ratio: the target of L(G(z)) / L(x)");
  add("lambda_k", c.step.lambda_k, "learning rate of k_t");
  add("k0", c.k0, "k_t at the first step, in [0, 1] (the paper: 0)");
  add("pull_away", c.step.pull_away,
      "weight of EBGAN's pulling-away term on D's codes of G's batch in G's loss (0: off, the paper's BEGAN)");
  add("lr", c.lr, "starting learning rate of both Adam optimisers");
  add("beta1", c.beta1, "Adam beta1");
  add("beta2", c.beta2, "Adam beta2");
  add("lr_window", c.lr_window, "steps per learning-rate window (0: one epoch, at most 2000)");
  add("lr_threshold", c.lr_threshold, "relative drop of a window's mean M_global that counts as progress");
  add("lr_factor", c.lr_factor, "learning-rate multiplier after a window without progress");
  add("lr_min", c.lr_min, "the learning rate never goes below this (at most --lr)");
  add("epochs", c.epochs, "full passes over the data (when --steps is 0)");
  add("steps", c.steps, "total steps of the run (0: --epochs decides)");
  add("out", c.out, "run folder (metrics.csv, samples/, checkpoints/, report.html)");
  add("seed", c.seed, "seed of the initialisation, the data order and z");
  add("resume", c.resume, "continue the run in this folder from its newest checkpoint (default: none, a fresh run)");
  add("threads", c.threads,
      "CPU threads (0: ATELIER_NUM_THREADS or all cores; a --resume without it keeps the checkpoint's count, so "
      "that it continues bit for bit)");
  add("checkpoint_every", c.checkpoint_every, "steps between checkpoints (also one at each epoch end)");
  add("sample_every", c.sample_every, "steps between sample grids (also one at each epoch end)");
  add("sample_count", c.sample_count, "images in each sample grid");
  add("device", c.device, "cpu or cuda");
  add("precision", c.precision,
      "fp32, tf32 or bf16: GEMM and convolution precision on CUDA (bf16: bfloat16 products, float32 sums and "
      "weights; the CPU computes fp32 under every setting)");
  add("progress_seconds", c.progress_seconds, "seconds between progress lines");
  add("cuda_graph", c.cuda_graph,
      "on, off or auto: capture the whole training step once (after two eager warm-up steps) and replay it, one graph "
      "launch per step instead of hundreds of kernel launches, with the eager step's numbers bit for bit (auto: on "
      "with --device cuda, off on the CPU, where on replays a recording of the step's calls)");
  cmd.add_flag("--smoke", cli.smoke,
               "a few dozen steps of a tiny model on synthetic data with every output, in seconds, in a new folder "
               "under $TMPDIR or /tmp unless --out says where (default: off)");
}

// Settles the config: which flags were given, the --smoke preset, the version; then every check.
began::TrainConfig settle_train_config(TrainCli& cli) {
  began::TrainConfig c = cli.config;
  for (const auto& [key, option] : cli.options) {
    if (option->count() > 0) c.given.insert(key);
  }
  c.version = ATELIER_GIT_DESCRIBE;
  bool made_out = false;
  if (cli.smoke) {
    if (!c.resume.empty()) throw Error("--smoke starts a fresh run; it cannot be combined with --resume");
    c = began::smoke_config(c);
    if (!c.given.count("out")) {
      const char* tmpdir = std::getenv("TMPDIR");  // the usual place for temporary folders, /tmp without it
      const std::string base = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
      std::string folder = base + "/began-smoke-XXXXXX";
      if (::mkdtemp(folder.data()) == nullptr) {
        throw Error("--smoke: cannot create a folder under " + base + ": " + std::strerror(errno));
      }
      c.out = folder;
      made_out = true;
    }
  }
  try {
    return began::resolve_config(c);
  } catch (const std::exception&) {
    // A refused run leaves nothing behind: resolve_config writes into the folder only once every check passed, so
    // the folder made above is still empty (rmdir removes nothing else, and fails if it is not).
    if (made_out) ::rmdir(c.out.c_str());
    throw;
  }
}

int run_train(const began::TrainConfig& config) {
  began::TrainOutcome outcome = began::train(config);
  switch (outcome.status) {
    case began::TrainOutcome::Status::completed: return 0;
    case began::TrainOutcome::Status::interrupted:
      std::fprintf(stderr,
                   "began train: stopped by signal %d at step %lld; checkpoint written, continue with "
                   "--resume %s\n",
                   outcome.signal, static_cast<long long>(outcome.step), config.out.c_str());
      return 128 + outcome.signal;
    case began::TrainOutcome::Status::diverged:
      std::fprintf(stderr, "began train: %s\n", outcome.message.c_str());
      return 3;
  }
  return 1;
}

// `began --version`: the build, the vector registers its CPU kernels were compiled for (they set the kernels' block
// shapes and speed: docs/benchmarks.md, "AVX2") and whether the CUDA backend is built in (no device is queried).
std::string version_text() {
  std::ostringstream text;
  text << "began " << ATELIER_GIT_DESCRIBE << " (atelier " << ATELIER_VERSION << ")\n"
       << "CPU kernels: " << cpu::kVectorIsa << ", " << cpu::kVectorRegisters << " vector registers of "
       << cpu::kVectorBytes << " bytes\n"
       << "CUDA backend: " << (cuda_backend_or_null() != nullptr ? "built in" : "not built (-DATELIER_CUDA=OFF)");
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "began: BEGAN on atelier (train), tools on its checkpoints (sample, reconstruct, interpolate, eval) and the "
      "Fashion-MNIST classifier behind the sample-quality measure. Exit codes: 0 done, 1 error during the work, 2 "
      "refused before any work (the command line, or an input that cannot be read), 3 diverged (train)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());

  ClassifyTrainArgs train_args;
  CLI::App* train = app.add_subcommand("classify-train", "train the Fashion-MNIST classifier and write its weights");
  train->add_option("--data-dir", train_args.data_dir, "folder with the Fashion-MNIST IDX files")
      ->capture_default_str();
  CLI::Option* train_out = train->add_option("--out", train_args.out,
                                             "safetensors file to write (the default is relative to the repository "
                                             "root: the committed weights)");
  train_out->capture_default_str();
  train->add_flag("--overwrite", train_args.overwrite,
                  "replace --out even if it holds something other than classifier weights (default: off, refused)");
  train->add_option("--epochs", train_args.train.epochs, "passes over the training set")
      ->check(whole_number<int64_t>(1, 1000))
      ->capture_default_str();
  train->add_option("--batch-size", train_args.train.batch_size, "images per step")
      ->check(whole_number<int64_t>(1, 60000))
      ->capture_default_str();
  train->add_option("--lr", train_args.train.lr, "Adam learning rate (halved after each epoch)")
      ->check(real_number(0, 10, /*open_lo=*/true))
      ->capture_default_str();
  train->add_option("--seed", train_args.train.seed, "initialisation and shuffling seed")
      ->check(whole_number<uint64_t>())
      ->capture_default_str();
  train->add_option("--limit", train_args.limit, "use only the first N training images (-1: all)")
      ->check(whole_number<int64_t>(-1))
      ->capture_default_str();

  std::string eval_weights = began::kClassifierWeights, eval_dir = began::kFashionMnistDir;
  int64_t eval_limit = -1;
  CLI::App* eval = app.add_subcommand("classify-eval", "test accuracy of classifier weights");
  CLI::Option* weights =
      eval->add_option("--weights", eval_weights,
                       "safetensors file (the default is relative to the repository root: the committed weights)");
  weights->capture_default_str();
  eval->add_option("--data-dir", eval_dir, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  eval->add_option("--limit", eval_limit, "use only the first N test images (-1: all)")
      ->check(whole_number<int64_t>(-1))
      ->capture_default_str();

  TrainCli train_cli;
  CLI::App* began_train = app.add_subcommand("train",
                                             "train BEGAN (exit codes: 0 done, 1 error, 2 refused before any "
                                             "work, 3 diverged, 130/143 interrupted)");
  add_train_options(*began_train, train_cli);

  // The tools on a checkpoint (began/tools/tools.h).
  const std::vector<Tool> tools = {add_sample_tool(app), add_reconstruct_tool(app), add_interpolate_tool(app),
                                   add_eval_tool(app)};

  // A first argument that is no flag must name a subcommand (CLI11 would only say that one is required).
  const std::string first = argc > 1 ? argv[1] : "-";
  const auto named = app.get_subcommands([&](CLI::App* sub) { return sub->check_name(first); });
  if (first[0] != '-' && named.empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    std::fprintf(stderr, "began: error: unknown subcommand %s (%s)\n", cut_quote(argv[1]).c_str(), names.c_str());
    return 2;
  }
  // Unknown flags and bad values: one line and exit 2, before any work starts.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "began: error: %s (see --help)\n", parse_error_text(e.what()).c_str());
    return 2;
  }
  try {
    num_threads_from_environment();  // a bad ATELIER_NUM_THREADS: one line and exit 2, before any work
    conv_algo_from_environment();    // and a bad ATELIER_CONV_ALGO
  } catch (const std::exception& e) {
    std::fprintf(stderr, "began: error: %s\n", e.what());
    return 2;
  }
  began::TrainConfig train_config;
  if (*began_train) {
    try {
      train_config = settle_train_config(train_cli);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "began train: error: %s\n", e.what());
      return 2;
    }
  }
  // The other subcommands' paths and ranges, and their inputs, also before any work.
  ClassifyInputs inputs;
  try {
    if (*train) {
      ATELIER_CHECK(train_args.limit == -1 || train_args.limit >= train_args.train.batch_size,
                    "--limit " << train_args.limit << " is less than --batch-size " << train_args.train.batch_size
                               << ": not one full batch (-1: all images)");
      began::check_data_dir(train_args.data_dir);
      check_writable_file("--out", train_args.out);
      check_classifier_out(train_args.out, train_args.overwrite);
      inputs.train = began::load_fashion_mnist(train_args.data_dir, true, train_args.limit);
      inputs.test = began::load_fashion_mnist(train_args.data_dir, false);
    }
    if (*eval) {
      ATELIER_CHECK(eval_limit != 0, "--limit 0 leaves no test image (-1: all)");
      check_readable_file("--weights", eval_weights);
      began::check_data_dir(eval_dir);
      inputs.model = began::load_classifier(eval_weights);
      inputs.test = began::load_fashion_mnist(eval_dir, false, eval_limit);
    }
  } catch (const std::exception& e) {
    // The default weights are a path in the source tree: from another folder, say so.
    const bool default_path = *train ? train_out->count() == 0 : *eval && weights->count() == 0;
    const std::string path = *train ? train_args.out : eval_weights;
    const std::string hint =
        default_path && std::string(e.what()).find(path) != std::string::npos
            ? std::string(" (the default, relative to the repository root: run from there or pass ") +
                  (*train ? "--out)" : "--weights)")
            : "";
    std::fprintf(stderr, "began %s: error: %s%s\n", *train ? "classify-train" : "classify-eval", e.what(),
                 hint.c_str());
    return 2;
  }
  for (const Tool& tool : tools) {
    if (!*tool.command) continue;
    try {
      tool.check();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "began %s: error: %s\n", tool.command->get_name().c_str(), e.what());
      return 2;
    }
    try {
      return tool.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "began %s: error: %s\n", tool.command->get_name().c_str(), e.what());
      return 1;
    }
  }
  try {
    if (*began_train) return run_train(train_config);
    if (*train) return classify_train(train_args, inputs.train, inputs.test);
    if (*eval) return classify_eval(eval_weights, *inputs.model, inputs.test);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "began: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
