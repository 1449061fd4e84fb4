// The files of a BEGAN run folder, apart from the report's (began/report.h):
//
//   <out>/config.json                             every setting, the version, the thread count
//   <out>/metrics.csv                             one row per step (MetricsLog)
//   <out>/checkpoints/step_NNNNNNN.safetensors    the last two checkpoints (began/train_checkpoint.h)
//   <out>/samples/*.png                           grids of G(fixed z) (step_NNNNNNN, epoch_NNNN, final)
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "began/step.h"

namespace atelier::began {

// The header of metrics.csv, exactly.
constexpr const char* kMetricsHeader =
    "epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s";

std::string metrics_path(const std::string& run_dir);
std::string samples_dir(const std::string& run_dir);
std::string checkpoints_dir(const std::string& run_dir);
// <run_dir>/checkpoints/step_NNNNNNN.safetensors (seven digits, more when the step needs them).
std::string checkpoint_path(const std::string& run_dir, int64_t step);
// "samples/step_0000500.png", "samples/epoch_0003.png", "samples/final.png" under run_dir.
std::string step_sample_path(const std::string& run_dir, int64_t step);
std::string epoch_sample_path(const std::string& run_dir, int64_t epoch);
std::string final_sample_path(const std::string& run_dir);

// The checkpoints in run_dir/checkpoints, oldest (lowest step) first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// Deletes all but the newest `keep` checkpoints. (Temporary files of interrupted checkpoint writes are removed by
// nn::save_safetensors itself on its next save into the folder.)
void remove_old_checkpoints(const std::string& run_dir, size_t keep = 2);

// Before anything is made, without making anything: `dir` (the value of `flag`) is a folder (one that can be
// written into, with `write`), or does not exist and its nearest existing parent is a folder that can be written
// into (to create it). Throws naming the flag and the path at fault. A cheap first look, so that a typo in --out or
// --cache is refused before the data is read; creating the folder has the last word.
void check_folder_path(const std::string& flag, const std::string& dir, bool write);
// Why the system would refuse `path` as a name whatever the disk holds, or "": a part longer than a file name may
// be (NAME_MAX, 255 bytes on Linux's file systems) or a whole longer than PATH_MAX. Creating it would fail with a
// bare "File name too long" that does not say which part.
std::string path_length_problem(const std::string& path);
// `path` as it is quoted in a message: its first 48 characters and "..." when longer (a message stays one line).
std::string cut_path(const std::string& path);
// Creates run_dir (and samples/, checkpoints/) and proves it writable by creating and deleting a file; throws
// naming the folder and the system's reason otherwise.
void prepare_run_dir(const std::string& run_dir);
// True when run_dir already holds a run (a metrics.csv or a checkpoint).
bool holds_run(const std::string& run_dir);

// One training process's exclusive hold on a run folder, so that two `began train` on one folder (the same command
// in two terminals) cannot both append to metrics.csv and write checkpoints: an flock(2) on <run_dir>/.lock, which
// the system drops when the process ends however it ends (a killed run leaves no stale lock to clear by hand). The
// holder writes its pid into the file. A second process is refused, naming that pid; the same process asking again
// (a test resolving a resume while the first run's config lives) shares the hold. Released when the last holder goes.
class RunFolderLock {
 public:
  explicit RunFolderLock(int fd) : fd_(fd) {}
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_;
};
// Takes the hold on run_dir (which must exist: prepare_run_dir) or throws naming the folder and the holder's pid.
// Writing the pid into the lock file is best effort: a failure is a warning on stderr, and the hold stands.
std::shared_ptr<const RunFolderLock> lock_run_dir(const std::string& run_dir);
// Throws lock_run_dir's refusal when another process holds run_dir, without taking the hold or creating anything:
// a fresh run asks first, since the folder another run is writing "already holds a run", but a --resume of it would
// be refused too while that run lives.
void check_not_held(const std::string& run_dir);
// How many run folders this process holds now (a hold ends when the last shared_ptr to it goes).
size_t held_run_dirs();

// The shortest decimal text that reads back as the same double ("0.001", "1e-04").
std::string shortest_text(double v);

// Writes `text` to `path` atomically: began/image_io.h's write_file_atomically (temporary file, fsync, rename).
void write_text_atomically(const std::string& path, const std::string& text);

// metrics.csv: the header, then one row per step, each flushed as soon as it is written so that a killed run
// loses no finished step. Numbers are written in the shortest form that reads back to the same double.
class MetricsLog {
 public:
  // A fresh run writes a new file with the header; a resumed one appends to the existing file.
  MetricsLog(const std::string& path, bool fresh);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void append(int64_t epoch, int64_t step, const StepResult& r, double lr, double time_s);

  // Keeps the header and the rows of steps <= last_step (rewritten atomically): after a resume from the
  // checkpoint of last_step, the rows a killed run wrote after it are gone and are not written twice. Throws when
  // the file is missing, its header is not kMetricsHeader, or it has fewer than last_step rows.
  static void truncate(const std::string& path, int64_t last_step);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace atelier::began
