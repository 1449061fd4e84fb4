// Training BEGAN: the training loop (train) over a config from resolve_config (began/train_config.h). What one
// step does lives in began/step.h; the files of the run folder (metrics.csv, config.json, checkpoints) in
// began/run_files.h and began/train_checkpoint.h.
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
#include <string>

#include "began/train_config.h"

namespace atelier::began {

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
