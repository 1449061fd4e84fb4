// A training checkpoint: one safetensors file with everything a run needs to continue exactly where it stopped.
//
//   tensors       G.<name>, D.<name>         the two networks' state dicts (PyTorch names, began/model.h)
//                 opt_g.<name>, opt_d.<name> the two Adam optimisers' state dicts
//                 schedule.<name>            the learning-rate schedule's state (nn/lr_schedule.h)
//                 fixed_z                    (sample_count, h) the latent vectors of every sample grid
//   __metadata__  format, step, epoch, batch_in_epoch, k_t, time_s, threads, and setting.<key> for every setting
//                 of began/run_settings.h (model: image_size, channels, n, h, skip, tanh; data: data,
//                 synthetic_size; optimisation; seed). Floats are hex-float text ("%a"), so they read back exactly.
//
// Written atomically by nn::save_safetensors (nn/safetensors.h): a crash leaves the previous file or the complete new
// one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "began/model.h"
#include "began/train_config.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "nn/safetensors.h"

namespace atelier::began {

// Where a run stands after `step` steps.
struct TrainPosition {
  int64_t step = 0;            // steps done
  int64_t epoch = 0;           // the epoch under way, 0-based
  int64_t batch_in_epoch = 0;  // batches of that epoch done (the next one to run)
  double k = 0;                // k_t for the next step
  double time_s = 0;           // training time so far (metrics.csv's time_s continues from it)
  int threads = 1;             // the thread count of the run so far
};

// The live objects a checkpoint saves and restores.
struct TrainState {
  Generator& G;
  Discriminator& D;
  nn::Optimizer& opt_g;
  nn::Optimizer& opt_d;
  nn::LrSchedule& schedule;
  Tensor& fixed_z;
};

void save_train_checkpoint(const std::string& path, const TrainConfig& config, const TrainPosition& position,
                           const TrainState& state);

// The metadata of a checkpoint written by save_train_checkpoint; throws naming the file when it is not one.
std::map<std::string, std::string> read_train_metadata(const std::string& path);
TrainPosition train_position(const std::map<std::string, std::string>& metadata, const std::string& path);

// Loads the networks, optimisers, schedule and fixed z of `path` into `state`; throws naming the file and every
// mismatching name.
void load_train_state(const std::string& path, const TrainState& state);

// The networks of a checkpoint, for the tools (`began sample`, `interpolate`, `reconstruct`, `eval`).
struct CheckpointNetworks {
  TrainConfig config;  // the run's settings, read as --resume reads them
  TrainPosition position;
  std::shared_ptr<Generator> G;
  std::shared_ptr<Discriminator> D;
};

// Builds G and D from the settings in `path`'s metadata (through merge_checkpoint_settings, the path --resume
// takes) on `device` and loads their weights. Throws atelier::Error naming the file: missing or unreadable, not a
// `began train` checkpoint (naming what its metadata says it holds, e.g. the classifier's weights), or weights
// that do not fit the settings (naming the settings and the mismatching tensors).
CheckpointNetworks load_checkpoint_networks(const std::string& path, Device device);

// "data fashion-mnist, image_size 32, channels 1, n 32, h 64, skip off, tanh off": the settings that decide what a
// checkpoint's networks are, for messages.
std::string model_settings_text(const TrainConfig& config);

}  // namespace atelier::began
