// `began sample`: images from a checkpoint's generator, as separate PNG files or one grid.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "autograd/functions.h"
#include "began/number_text.h"
#include "began/report.h"
#include "began/step.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"

namespace atelier::began_cli {

namespace {

struct SampleArgs {
  CheckpointArgs source;
  int64_t count = 64;
  bool grid = false;
  std::string out;
  bool overwrite = false;
  uint64_t seed = 0;
  CLI::Option* seed_option = nullptr;
};

// Without --grid, image i goes to <out>/sample_NNNNN.png (five digits at least).
std::string sample_path(const std::string& out, int64_t i) {
  char name[48];  // "/sample_" + up to 19 digits + ".png": room for any int64_t
  std::snprintf(name, sizeof name, "/sample_%05lld.png", static_cast<long long>(i));
  return out + name;
}

int run_sample(const SampleArgs& args) {
  began::CheckpointNetworks networks = load_networks(args.source);
  // Without --seed, the run's seed: the first --sample-count images are then the run's own sample grids' images.
  const uint64_t seed = args.seed_option->count() > 0 ? args.seed : networks.config.seed;
  const Tensor z = began::sample_z(args.count, networks.config.model.h, seed, 0, began::LatentStream::fixed_samples);
  const Tensor images = batched_forward(*networks.G, z);
  if (args.grid) {
    began::save_image_grid(args.out, images);
    std::printf("a grid of %s written to %s\n", began::count_text(args.count, "sample").c_str(), args.out.c_str());
    return 0;
  }
  std::filesystem::create_directories(args.out);
  for (int64_t i = 0; i < args.count; ++i) {
    began::save_image_grid(sample_path(args.out, i), images.slice(0, i, i + 1), 1);
  }
  std::printf("%s written to %s/sample_NNNNN.png\n", began::count_text(args.count, "sample").c_str(), args.out.c_str());
  return 0;
}

}  // namespace

Tool add_sample_tool(CLI::App& app) {
  auto args = std::make_shared<SampleArgs>();
  CLI::App* command = app.add_subcommand("sample", "images from a checkpoint's generator: separate PNGs or one grid");
  add_checkpoint_options(*command, args->source);
  command->add_option("--count", args->count, "images to generate")
      ->check(whole_number<int64_t>(1, kMaxImages))
      ->capture_default_str();
  command->add_flag("--grid", args->grid, "one grid PNG at --out instead of a folder of PNGs (default: off)");
  command->add_option("--out", args->out, "the grid's PNG file (--grid), else a folder for sample_NNNNN.png")
      ->required();
  add_overwrite_flag(*command, args->overwrite);
  args->seed_option = command->add_option("--seed", args->seed,
                                          "seed of z (default: the run's seed, so the first images are those of "
                                          "the run's sample grids)");
  args->seed_option->check(whole_number<uint64_t>());
  Tool tool;
  tool.command = command;
  tool.check = [args] {
    check_checkpoint_args(args->source);
    if (args->grid) {
      check_png_out(args->out, args->overwrite);
    } else {
      while (args->out.size() > 1 && args->out.back() == '/') args->out.pop_back();
      if (is_folder(args->out)) {
        ATELIER_CHECK(::access(args->out.c_str(), W_OK | X_OK) == 0, "--out " << args->out << ": cannot write into it");
        for (int64_t i = 0; i < args->count; ++i)
          check_png_replaceable("--out", sample_path(args->out, i), args->overwrite);
      } else {
        std::error_code ec;  // a path that cannot be looked at: check_writable_file names the folder at fault
        ATELIER_CHECK(!std::filesystem::exists(args->out, ec),
                      "--out " << args->out << ": is a file; without --grid --out names a folder");
        check_writable_file("--out", args->out);  // its parent folder exists and can be written into
        ATELIER_CHECK(lower_extension(args->out) != ".png",
                      "--out " << args->out << ": a .png name, but without --grid --out names a folder of "
                               << "sample_NNNNN.png files; pass --grid for one grid PNG");
      }
    }
  };
  tool.run = [args] { return run_sample(*args); };
  return tool;
}

}  // namespace atelier::began_cli
