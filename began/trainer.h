// Training BEGAN: the settings of a run (TrainConfig), checking them and merging a checkpoint's on --resume
// (resolve_config), and the training loop itself (train). What one step does lives in began/step.h; the files of
// the run folder (metrics.csv, config.json, checkpoints) in began/run_files.h.
//
// A run, step by step (step s = 1, 2, ... counts completed D+G updates):
//   x   = the next batch of the epoch (a DataLoader over the data set, shuffled per epoch by (seed, epoch),
//         dropping the last partial batch)
//   z_D = sample_z(seed, s, discriminator), z_G = sample_z(seed, s, generator)
//   began_step(G, D, x, z_D, z_G, k_t)          -> one metrics.csv row (k_t as used in the step)
//   the window rule on M_global sets the rate of both Adam optimisers
//   every --sample-every steps and at each epoch end: a grid of G(fixed z), then the report is rewritten
//   every --checkpoint-every steps and at each epoch end: a checkpoint (the last two are kept)
//
// Exact resume: nothing random depends on what ran before (the data order is keyed by (seed, epoch) and the start
// batch, z by (seed, step)), so a run resumed from a checkpoint at the same thread count repeats the rows and
// the parameters of an uninterrupted run bit for bit.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "began/data/fashion_mnist.h"
#include "began/model.h"
#include "began/step.h"

namespace atelier::began {

// Every setting of a run; the `began train` flag of each is named in brackets.
struct TrainConfig {
  // The data.
  std::string data = "fashion-mnist";       // [--data] fashion-mnist (32x32, 1 channel) or synthetic
  std::string data_dir = kFashionMnistDir;  // [--data-dir] Fashion-MNIST's IDX files
  int64_t synthetic_size = 4096;            // [--synthetic-size] images in the synthetic set
  ModelConfig model;                        // [--image-size --channels --n --h --skip --tanh]
  // The optimisation (DESIGN defaults: the original BEGAN run).
  int64_t batch = 16;                 // [--batch]
  StepOptions step;                   // [--gamma --lambda-k]
  double lr = 1e-4;                   // [--lr] the starting rate of both Adam optimisers
  double beta1 = 0.5, beta2 = 0.999;  // [--beta1 --beta2]
  int64_t lr_window = 0;              // [--lr-window] steps; 0: one epoch, at most 2,000 steps
  double lr_threshold = 1e-3;         // [--lr-threshold] relative improvement a window needs
  double lr_factor = 0.5;             // [--lr-factor]
  double lr_min = 2e-5;               // [--lr-min]
  // The length: --steps when > 0, else --epochs full epochs.
  int64_t epochs = 10;  // [--epochs]
  int64_t steps = 0;    // [--steps] total steps of the run (a resumed run counts on)
  // The run.
  std::string out = "runs/began";   // [--out] the run folder
  uint64_t seed = 0;                // [--seed] initialisation, data order, z
  std::string resume;               // [--resume] a run folder to continue
  int threads = 0;                  // [--threads] 0: ATELIER_NUM_THREADS or all cores
  int64_t checkpoint_every = 1000;  // [--checkpoint-every] steps
  int64_t sample_every = 500;       // [--sample-every] steps
  int64_t sample_count = 64;        // [--sample-count] images in each grid of G(fixed z)
  std::string device = "cpu";       // [--device] cpu or cuda
  double progress_seconds = 2;      // [--progress-seconds] between progress lines
  // Set by the program, not by flags.
  std::string version = "unknown";  // git describe of the build
  // The settings given explicitly (names as in config.json, e.g. "image_size"). On --resume the checkpoint's
  // settings win; one of these that contradicts them is an error.
  std::set<std::string> given;
  // Filled by resolve_config on --resume: the checkpoint to continue from.
  std::string resume_checkpoint;
};

// The --smoke preset: a few dozen steps of a tiny model on a small synthetic set, with every output (samples,
// epoch ends, checkpoints, report). Settings in `config.given` are kept.
TrainConfig smoke_config(TrainConfig config);

// Checks every setting, the device and the run folder (created and probed for writing; a fresh run refuses a
// folder that already holds one), and on --resume takes the checkpoint's settings. Throws atelier::Error naming
// the flag and the value at fault. Does no training work: `began train` runs it before anything else and exits 2
// on its errors.
TrainConfig resolve_config(const TrainConfig& config);

// How a run ended.
struct TrainOutcome {
  enum class Status { completed, interrupted, diverged };
  Status status = Status::completed;
  int signal = 0;       // interrupted: SIGINT or SIGTERM
  int64_t step = 0;     // the steps done (diverged: the step whose loss was not finite)
  std::string message;  // diverged: the step, the losses and the last good checkpoint
};

struct TrainHooks {
  // Where progress lines go (default: stdout).
  std::function<void(const std::string& line)> log;
  // Called after every step with the step number (tests use it to send a signal mid-run).
  std::function<void(int64_t step)> after_step;
};

// Trains with a config from resolve_config. SIGINT and SIGTERM are caught while it runs: the step under way
// finishes, a checkpoint is written, and the outcome is `interrupted`. A non-finite loss writes its metrics row,
// then stops with `diverged`, leaving the last good checkpoint in place. Other failures throw atelier::Error.
TrainOutcome train(const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace atelier::began
