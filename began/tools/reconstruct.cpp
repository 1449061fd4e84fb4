// `began reconstruct`: real images beside the discriminator's reconstructions D(x), in one grid. BEGAN's D is an
// auto-encoder, so how well it reconstructs real images (and how it fails) shows what it has learnt.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "autograd/functions.h"
#include "began/number_text.h"
#include "began/report.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"

namespace atelier::began_cli {

namespace {

struct ReconstructArgs {
  CheckpointArgs source;
  int64_t count = 32;
  std::string out;
  bool overwrite = false;
  std::string data_dir;  // empty: the run's
};

constexpr int64_t kPairsPerRow = 8;

int run_reconstruct(const ReconstructArgs& args) {
  began::CheckpointNetworks networks = load_networks(args.source);
  const Tensor real = run_images(networks.config, args.count, args.data_dir);
  const Tensor reconstructed = batched_forward(*networks.D, real);
  // Interleaved: x_0, D(x_0), x_1, D(x_1), ... so that each pair sits side by side in the grid.
  std::vector<Tensor> pairs;
  for (int64_t i = 0; i < args.count; ++i) {
    pairs.push_back(real.slice(0, i, i + 1));
    pairs.push_back(reconstructed.slice(0, i, i + 1));
  }
  began::save_image_grid(args.out, cat(pairs, 0), 2 * std::min(args.count, kPairsPerRow));
  const double l1 = mean(abs(sub(reconstructed, real))).item<double>();
  std::printf("%s (%s) and their reconstructions written to %s; mean |x - D(x)| %.4f\n",
              began::count_text(args.count, "real image").c_str(), networks.config.data.c_str(), args.out.c_str(), l1);
  return 0;
}

}  // namespace

Tool add_reconstruct_tool(CLI::App& app) {
  auto args = std::make_shared<ReconstructArgs>();
  CLI::App* command =
      app.add_subcommand("reconstruct",
                         "real images (the run's data: Fashion-MNIST test images, its synthetic set or its image "
                         "folder) beside D's reconstructions, pairs side by side in one grid");
  add_checkpoint_options(*command, args->source);
  command->add_option("--count", args->count, "real images")
      ->check(whole_number<int64_t>(1, 10000))
      ->capture_default_str();
  command->add_option("--out", args->out, "the grid's PNG file")->required();
  add_overwrite_flag(*command, args->overwrite);
  add_data_dir_option(*command, args->data_dir);
  Tool tool;
  tool.command = command;
  tool.check = [args] {
    check_checkpoint_args(args->source);
    check_png_out(args->out, args->overwrite);
    check_data_dir(args->data_dir);
  };
  tool.run = [args] { return run_reconstruct(*args); };
  return tool;
}

}  // namespace atelier::began_cli
