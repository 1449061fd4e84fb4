// What the checkpoint tools share (began/tools/tools.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "began/data/fashion_mnist.h"
#include "began/data/image_folder.h"
#include "began/data/synthetic.h"
#include "began/image_io.h"
#include "began/number_text.h"
#include "began/tools/cli_checks.h"
#include "began/tools/tools.h"
#include "began/train_config.h"
#include "nn/data/dataset.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier::began_cli {

void add_checkpoint_options(CLI::App& command, CheckpointArgs& args) {
  command
      .add_option("--checkpoint", args.checkpoint, "a checkpoint of `began train` (<run>/checkpoints/*.safetensors)")
      ->required();
  command.add_option("--device", args.device, "cpu or cuda")->capture_default_str();
}

void check_checkpoint_args(const CheckpointArgs& args) {
  check_readable_file("--checkpoint", args.checkpoint);
  began::check_device(args.device);
}

void add_overwrite_flag(CLI::App& command, bool& overwrite) {
  command.add_flag("--overwrite", overwrite,
                   "replace an existing PNG that atelier did not write (default: refused; atelier's own are replaced)");
}

void check_png_replaceable(const std::string& flag, const std::string& path, bool overwrite) {
  std::error_code ec;
  if (overwrite || !std::filesystem::exists(path, ec) || began::png_written_by_atelier(path)) return;
  ATELIER_FAIL(flag << " " << path
                    << " exists and is not a PNG atelier wrote: pass --overwrite to replace it, or pick another name");
}

void check_png_out(const std::string& out, bool overwrite) {
  ATELIER_CHECK(lower_extension(out) == ".png",
                "--out " << out << ": not a .png file name (the grid is written as PNG)");
  check_writable_file("--out", out);
  check_png_replaceable("--out", out, overwrite);
}

began::CheckpointNetworks load_networks(const CheckpointArgs& args) {
  began::CheckpointNetworks networks =
      began::load_checkpoint_networks(args.checkpoint, args.device == "cuda" ? Device::cuda(0) : Device::cpu());
  std::printf("checkpoint %s: step %lld, %s\n", args.checkpoint.c_str(), static_cast<long long>(networks.position.step),
              began::model_settings_text(networks.config).c_str());
  return networks;
}

Tensor batched_forward(nn::Module& module, const Tensor& input, int64_t batch) {
  NoGradGuard no_grad;
  const Device device = module.parameters().front().device();
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < input.size(0); start += batch) {
    const int64_t end = std::min(input.size(0), start + batch);
    parts.push_back(module.forward(input.slice(0, start, end).to(device)).to(Device::cpu()));
  }
  return cat(parts, 0);
}

CLI::Option* add_data_dir_option(CLI::App& command, std::string& data_dir) {
  return command.add_option("--data-dir", data_dir,
                            "where the run's Fashion-MNIST IDX files or image folder are now, if they moved (default: "
                            "the folder the checkpoint records)");
}

void check_data_dir(const std::string& data_dir) {
  if (!data_dir.empty()) began::check_data_dir(data_dir);
}

std::string run_data_dir(const began::TrainConfig& config, const std::string& data_dir) {
  if (!data_dir.empty()) {
    ATELIER_CHECK(config.data != "synthetic",
                  "--data-dir " << data_dir << ": the run's data is synthetic: it reads no folder");
    return data_dir;
  }
  ATELIER_CHECK(
      config.data == "synthetic" || is_folder(config.data_dir),
      "the run's " << (config.data == "folder" ? "image folder " : "Fashion-MNIST folder ") << config.data_dir
                   << " (recorded in the checkpoint) is not a folder here; point --data-dir at where it is now");
  return config.data_dir;
}

namespace {

// `what` holds `have` images (`noun`s); fewer than `count` throws TooFewImages.
void check_count(int64_t have, int64_t count, const std::string& what, const std::string& noun) {
  if (have < count)
    ATELIER_THROW(TooFewImages, what << " has " << began::count_text(have, noun) << ", fewer than " << count);
}

}  // namespace

Tensor run_images(const began::TrainConfig& config, int64_t count, const std::string& data_dir) {
  const std::string dir = run_data_dir(config, data_dir);
  if (config.data == "fashion-mnist") {
    Tensor images = began::load_fashion_mnist(dir, false, count).images;
    check_count(images.size(0), count, "Fashion-MNIST's test set", "image");
    return images;
  }
  if (config.data == "folder") {
    // The run's photos as training saw them (same crop and size; no flip), from its cache when there is one.
    began::ImageFolderOptions options;
    options.dir = dir;
    options.image_size = config.model.image_size;
    options.channels = config.model.channels;
    options.crop = config.crop;
    options.cache_dir = config.cache;
    options.write_cache = false;  // a tool reads the run's cache; training writes it
    auto data = std::make_shared<began::ImageFolderData>(began::load_image_folder(options));
    check_count(data->count(), count, "the run's image folder " + dir, "usable image");
    std::vector<int64_t> first(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) first[static_cast<size_t>(i)] = i;
    return began::ImageFolderDataset(data, false, 0).get_batch(first).data;
  }
  ATELIER_CHECK(config.data == "synthetic", "the run's data '" << config.data << "' gives no real images to the tools");
  check_count(config.synthetic_size, count, "the run's synthetic set", "image");
  began::SyntheticShapes data({.size = config.synthetic_size,
                               .image_size = config.model.image_size,
                               .channels = config.model.channels,
                               .seed = config.seed});
  std::vector<Tensor> images;
  for (int64_t i = 0; i < count; ++i) images.push_back(data.get(i).data.unsqueeze(0));
  return cat(images, 0);
}

}  // namespace atelier::began_cli
