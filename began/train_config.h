// The settings of a BEGAN training run (TrainConfig), the --smoke preset, and resolve_config, which checks every
// setting and, on --resume, takes the checkpoint's before any work starts. The loop itself is began/trainer.h.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "began/data/fashion_mnist.h"
#include "began/data/image_folder.h"
#include "began/model.h"
#include "began/run_files.h"
#include "began/step.h"
#include "tensor/tensor.h"

namespace atelier::began {

// Every setting of a run; the `began train` flag of each is named in brackets.
struct TrainConfig {
  // The data.
  std::string data = "fashion-mnist";       // [--data] fashion-mnist (32x32, 1 channel), synthetic or folder
  std::string data_dir = kFashionMnistDir;  // [--data-dir] Fashion-MNIST's IDX files, or the image folder
  int64_t synthetic_size = 4096;            // [--synthetic-size] images in the synthetic set
  int64_t crop = 0;                         // [--crop] folder: side of the centred crop (0: the largest square)
  bool flip = false;                        // [--flip] folder: random horizontal flips keyed by (seed, epoch, i)
  std::string cache;                        // [--cache] folder: where the decoded images are cached ("": none)
  ModelConfig model;                        // [--image-size --channels --n --h --skip --tanh]
  // The optimisation (the defaults of the original BEGAN run; docs/began.md says where each comes from).
  int64_t batch = 16;                 // [--batch]
  StepOptions step;                   // [--gamma --lambda-k]
  double k0 = 0;                      // [--k0] k_t at the first step (the paper's k_0 = 0)
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
  std::string precision = "fp32";   // [--precision] fp32, tf32 or bf16: GEMM/conv precision (CUDA; the CPU is fp32)
  double progress_seconds = 2;      // [--progress-seconds] between progress lines
  std::string cuda_graph = "auto";  // [--cuda-graph] on, off or auto (on with --device cuda): began/step_runner.h
  // Set by the program, not by flags.
  std::string version = "unknown";  // git describe of the build
  // The settings given explicitly (names as in config.json, e.g. "image_size"). On --resume the checkpoint's
  // settings win; one of these that contradicts them is an error.
  std::set<std::string> given;
  // Filled by resolve_config on --resume: the checkpoint to continue from, and for a folder run the fingerprint of
  // the images it trained on (ImageFolderData::fingerprint; empty in checkpoints written before it was recorded).
  std::string resume_checkpoint;
  std::string resume_data_images;
  // Filled by resolve_config, which reads the data before it makes the run folder: for --data folder the decoded
  // images, for --data fashion-mnist the training images (N, 1, 32, 32). Their count sets the steps of an epoch.
  std::shared_ptr<const ImageFolderData> folder;
  Tensor fashion_mnist;
  // Filled by resolve_config: this process's hold on the run folder (began/run_files.h), kept while any copy of
  // the resolved config lives, so a second `began train` on the folder is refused.
  std::shared_ptr<const RunFolderLock> run_lock;
};

// The --smoke preset: a few dozen steps of a tiny model on a small synthetic set, with every output (samples,
// epoch ends, checkpoints, report). Settings in `config.given` are kept.
TrainConfig smoke_config(TrainConfig config);

// Checks every setting, the device and the run folder (a fresh run refuses a folder that already holds one), and on
// --resume takes the checkpoint's settings. It reads the data (Fashion-MNIST's training images into
// config.fashion_mnist; for --data folder the decoded images into config.folder, from the cache when there is
// one), so that a data set that cannot be used is refused too. Only when every check has passed is the run folder
// created, probed for writing and held (lock_run_dir), and for --data folder the summary line printed and the
// names of the skipped and rejected files written to <out>/image_folder.txt: a refused run leaves the folder as it
// was (none, for a fresh one). Throws atelier::Error naming the flag and the value at fault. Does no training
// work: `began train` runs it before anything else and exits 2 on its errors.
TrainConfig resolve_config(const TrainConfig& config);

// What a resolved config implies: the device, the steps of one epoch (the last partial batch is dropped) and of
// the whole run (--steps, or --epochs whole epochs), and whether the steps are captured and replayed
// (--cuda-graph: auto is on with --device cuda, off on the CPU).
Device train_device(const TrainConfig& config);
bool uses_cuda_graph(const TrainConfig& config);

// Checks a --device value ("cpu" or "cuda"): a CUDA device must exist and run every primitive of a BEGAN step (a
// step of a one-filter model runs there to find out). Throws atelier::Error naming what is missing.
void check_device(const std::string& name);
int64_t steps_per_epoch(const TrainConfig& config);
int64_t total_steps(const TrainConfig& config);

// The memory this machine can give a process now: MemAvailable and SwapFree from /proc/meminfo, each capped by the
// cgroup's memory.max and memory.swap.max less what the group uses (a container's limit, where the OOM killer
// acts; its page cache, memory.stat's `file`, is not counted as used). A negative value where it cannot be read.
// The paths are parameters for a test.
struct FreeMemory {
  double memory_bytes = -1;
  double swap_bytes = -1;
};
FreeMemory free_memory(const std::string& meminfo_path = "/proc/meminfo",
                       const std::string& cgroup_dir = "/sys/fs/cgroup");
// The refusal of a CPU run whose step (began/model.h, step_memory) needs more than `free` memory and swap
// together: one line naming the settings, both amounts and what to lower; "" when it fits (or `free` is unknown).
// `note` receives a warning when the step fits only with swap. resolve_config calls it with free_memory().
std::string step_memory_problem(const TrainConfig& config, const FreeMemory& free, std::string* note);
// "361 MiB", "1.2 GiB", "1234.5 GiB".
std::string bytes_text(double bytes);

}  // namespace atelier::began
