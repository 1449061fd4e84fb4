// The subcommands of bin/began that work on a `began train` checkpoint: sample, reconstruct, interpolate and eval
// (one file each beside this one), and what they share: --checkpoint and --device, loading the networks, and the
// run's real images.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "began/train_checkpoint.h"

namespace atelier::began_cli {

// The most images one call of a tool makes (sample's --count, interpolate's pairs x points): at 32x32 that is
// 400 MB of floats, and each flag in its own range must not multiply into more.
constexpr int64_t kMaxImages = 100000;

// A registered subcommand. Its flags parse into state that the two functions share. check() runs before any work
// (an Error there exits 2, a bad command line); run() does the work (an Error there exits 1).
struct Tool {
  CLI::App* command = nullptr;
  std::function<void()> check;
  std::function<int()> run;
};

Tool add_sample_tool(CLI::App& app);
Tool add_reconstruct_tool(CLI::App& app);
Tool add_interpolate_tool(CLI::App& app);
Tool add_eval_tool(CLI::App& app);

// --checkpoint F (required) and --device (cpu or cuda).
struct CheckpointArgs {
  std::string checkpoint;
  std::string device = "cpu";
};
void add_checkpoint_options(CLI::App& command, CheckpointArgs& args);
// Before any work: the file is readable and the device usable. Throws a one-line Error naming the flag.
void check_checkpoint_args(const CheckpointArgs& args);
// --overwrite, for the tools that write PNGs: allows replacing a PNG that atelier did not write.
void add_overwrite_flag(CLI::App& command, bool& overwrite);
// Before any work: an existing file at `path` may be replaced only when it is a PNG atelier wrote (its mark,
// began/image_io.h: png_written_by_atelier) or with --overwrite, so that a slip in --out cannot destroy a person's
// own picture; an earlier output of the tools, or a run's sample, is replaced as before. The error names `flag`.
void check_png_replaceable(const std::string& flag, const std::string& path, bool overwrite);
// Before any work: --out names a PNG file (*.png, any case) that can be written (check_png_replaceable too). A grid
// written under another name could overwrite the checkpoint itself (its path is the one completion offers) or
// another file of the run.
void check_png_out(const std::string& out, bool overwrite);
// The networks on the device, with one line saying which run and step they come from.
began::CheckpointNetworks load_networks(const CheckpointArgs& args);

// module.forward over `input` in batches of `batch` rows (bounding the memory of large counts), without a graph,
// on the module's device; the result on the CPU.
Tensor batched_forward(nn::Module& module, const Tensor& input, int64_t batch = 256);

// --data-dir DIR: where the run's real images are now (its Fashion-MNIST IDX files or its image folder), for a run
// whose folder moved since training (default: the folder the checkpoint records). `check_data_dir` (before any
// work): a given DIR is a folder.
CLI::Option* add_data_dir_option(CLI::App& command, std::string& data_dir);
void check_data_dir(const std::string& data_dir);
// The folder of the run's real images: `data_dir` (--data-dir) when given, else the checkpoint's, which must still be
// a folder (the error says to pass --data-dir). Throws for a synthetic run given a `data_dir`: it reads no folder.
std::string run_data_dir(const began::TrainConfig& config, const std::string& data_dir);

// The first `count` real images of the run's data (count, C, S, S) in [-1, 1]: Fashion-MNIST's test images (the
// images training did not see), synthetic images 0, 1, ... of the run's set, or the first images of its image
// folder (--data folder: rebuilt from the checkpoint's crop and cache and run_data_dir). Throws naming the data
// setting when it has no such images, and TooFewImages when it has fewer than `count`.
class TooFewImages : public Error {  // so that interpolate --real can name the index it asked for, and only then
 public:
  using Error::Error;
};
Tensor run_images(const began::TrainConfig& config, int64_t count, const std::string& data_dir = "");

}  // namespace atelier::began_cli
