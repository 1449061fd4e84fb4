// `began interpolate`: walks between latent points through a checkpoint's generator, along straight (linear) and
// spherical (slerp) paths, one grid row per path. With --real I J the two ends are Fashion-MNIST test images (or
// synthetic images) I and J: z is fitted to each as the BEGAN paper did (began/latent.h), and each row starts and
// ends with the real image.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "began/latent.h"
#include "began/number_text.h"
#include "began/report.h"
#include "began/step.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"

namespace atelier::began_cli {

namespace {

struct InterpolateArgs {
  CheckpointArgs source;
  std::string out;
  bool overwrite = false;
  int64_t pairs = 4;
  int64_t points = 10;
  uint64_t seed = 1;
  std::vector<int64_t> real;  // empty, or the two image indices
  began::FitOptions fit;
  std::string data_dir;  // empty: the run's
};

// Row k of a batch, without its batch dimension.
Tensor row(const Tensor& t, int64_t k) { return t.slice(0, k, k + 1).squeeze(0); }

// The linear and the spherical path from z_a to z_b, (points, h) each.
std::vector<Tensor> two_paths(const Tensor& z_a, const Tensor& z_b, int64_t points) {
  return {began::lerp_path(z_a, z_b, points), began::slerp_path(z_a, z_b, points)};
}

int run_interpolate(const InterpolateArgs& args) {
  began::CheckpointNetworks networks = load_networks(args.source);
  began::Generator& G = *networks.G;
  const int64_t h = networks.config.model.h;
  std::vector<Tensor> cells;  // the grid's images in order, rows of `width`
  int64_t width = args.points;
  if (args.real.empty()) {
    const Tensor z = began::sample_z(2 * args.pairs, h, args.seed, 0, began::LatentStream::fixed_samples);
    for (int64_t p = 0; p < args.pairs; ++p) {
      for (const Tensor& path : two_paths(row(z, 2 * p), row(z, 2 * p + 1), args.points)) {
        cells.push_back(batched_forward(G, path));
      }
    }
    std::printf("%s of random latent points: rows of %lld images, linear then spherical\n",
                began::count_text(args.pairs, "pair").c_str(), static_cast<long long>(args.points));
  } else {
    const int64_t i = args.real[0], j = args.real[1];
    Tensor images;
    try {
      images = run_images(networks.config, std::max(i, j) + 1, args.data_dir);
    } catch (const TooFewImages& e) {  // "has N images, fewer than M" is about a count: name the index asked for
      ATELIER_FAIL("--real " << i << " " << j << ": image " << std::max(i, j) << " is not among the run's images ("
                             << e.what() << ")");
    }
    const Tensor x = cat({images.slice(0, i, i + 1), images.slice(0, j, j + 1)}, 0);
    const Device device = G.parameters().front().device();
    began::FitOptions fit = args.fit;
    fit.seed = args.seed;
    const Tensor z = began::fit_latent(G, x.to(device), fit).to(Device::cpu());
    const Tensor fitted = batched_forward(G, z);
    const double error_i = mean(abs(sub(row(fitted, 0), row(x, 0)))).item<double>();
    const double error_j = mean(abs(sub(row(fitted, 1), row(x, 1)))).item<double>();
    std::printf("z fitted to images %lld and %lld in %s (lr %g): mean |x - G(z)| %.4f and %.4f\n",
                static_cast<long long>(i), static_cast<long long>(j), began::count_text(fit.steps, "Adam step").c_str(),
                fit.lr, error_i, error_j);
    width = args.points + 2;
    for (const Tensor& path : two_paths(row(z, 0), row(z, 1), args.points)) {
      cells.push_back(x.slice(0, 0, 1));
      cells.push_back(batched_forward(G, path));
      cells.push_back(x.slice(0, 1, 2));
    }
    std::printf("rows: image %lld, the linear path, image %lld; then the same along the spherical path\n",
                static_cast<long long>(i), static_cast<long long>(j));
  }
  began::save_image_grid(args.out, cat(cells, 0), width);
  std::printf("grid written to %s\n", args.out.c_str());
  return 0;
}

}  // namespace

Tool add_interpolate_tool(CLI::App& app) {
  auto args = std::make_shared<InterpolateArgs>();
  CLI::App* command =
      app.add_subcommand("interpolate",
                         "linear and spherical (slerp) paths between latent points, or between two real images (--real "
                         "I J, z fitted to each with Adam), through a checkpoint's generator; one grid");
  add_checkpoint_options(*command, args->source);
  command->add_option("--out", args->out, "the grid's PNG file")->required();
  add_overwrite_flag(*command, args->overwrite);
  CLI::Option* pairs = command->add_option("--pairs", args->pairs, "pairs of random latent points (two rows each)");
  pairs->check(whole_number<int64_t>(1, 1000))->capture_default_str();
  command->add_option("--points", args->points, "images along each path, both ends included")
      ->check(whole_number<int64_t>(2, 1000))
      ->capture_default_str();
  command->add_option("--seed", args->seed, "seed of the random latent points and of the fits' U[-1, 1] start")
      ->check(whole_number<uint64_t>())
      ->capture_default_str();
  CLI::Option* real = command->add_option("--real", args->real,
                                          "two indices of real images (Fashion-MNIST test images, the run's synthetic "
                                          "set or its image folder) to walk between, instead of --pairs");
  real->expected(2)->check(whole_number<int64_t>(0, 1000000));
  pairs->excludes(real);  // flags that would do nothing are refused, not ignored
  command->add_option("--fit-steps", args->fit.steps, "with --real: Adam steps fitting z to each real image")
      ->check(whole_number<int64_t>(0, 1000000))
      ->needs(real)
      ->capture_default_str();
  command->add_option("--fit-lr", args->fit.lr, "with --real: Adam's learning rate fitting z")
      ->check(real_number(0, 10, /*open_lo=*/true))
      ->needs(real)
      ->capture_default_str();
  add_data_dir_option(*command, args->data_dir)->needs(real);
  Tool tool;
  tool.command = command;
  tool.check = [args] {
    check_checkpoint_args(args->source);
    check_png_out(args->out, args->overwrite);
    check_data_dir(args->data_dir);
    const int64_t images = 2 * args->pairs * args->points;  // with --real: 2 rows of points + 2, always in bounds
    ATELIER_CHECK(!args->real.empty() || images <= kMaxImages,
                  "--pairs " << args->pairs << " and --points " << args->points << " make " << images
                             << " images in one grid, more than " << kMaxImages);
  };
  tool.run = [args] { return run_interpolate(*args); };
  return tool;
}

}  // namespace atelier::began_cli
