// The BEGAN trainer (began/trainer.h) on a tiny model and a small synthetic set (26 images, batch 4: 6 steps per
// epoch, 2 images dropped; lr windows of 4 steps with a threshold every window misses, so the rate halves at
// steps 8, 12, 16, 20): exact resume (straight vs stopped and resumed, by --steps, by a killed run, by SIGTERM),
// metrics.csv truncation, settings a resume refuses, another thread count, divergence, and the files of a run
// folder.
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backends/precision.h"
#include "backends/thread_pool.h"
#include "began/model.h"
#include "began/number_text.h"
#include "began/run_files.h"
#include "began/train_checkpoint.h"
#include "began/train_progress.h"
#include "began/trainer.h"
#include "nn/safetensors.h"
#include "tensor/creation.h"
#include "tensor/readback.h"
#include "tests/began_train_util.h"
#include "tests/test_util.h"

using namespace atelier;
using began::TrainConfig;
using began::TrainOutcome;
using testing::file_lines;
using testing::metrics_without_time;
using testing::TempDir;

namespace {

TrainConfig tiny_config(const std::string& out, int64_t steps) {
  TrainConfig c;
  c.data = "synthetic";
  c.synthetic_size = 26;
  c.model = {.image_size = 32, .channels = 1, .n = 4, .h = 4};
  c.batch = 4;
  c.lr = 1e-3;
  c.lr_window = 4;
  c.lr_threshold = 0.5;  // no window improves by half: the rate halves at the end of every window but the first
  c.lr_min = 1e-8;
  c.steps = steps;
  c.checkpoint_every = 4;
  c.sample_every = 1000;
  c.sample_count = 4;
  c.out = out;
  c.progress_seconds = 1e9;
  return c;
}

TrainOutcome run(const TrainConfig& config, const began::TrainHooks& hooks = {}) {
  return testing::run_training(config, hooks);
}

TrainConfig resume_config(const std::string& dir, int64_t steps) {
  TrainConfig c;
  c.resume = dir;
  c.steps = steps;
  c.given = {"steps"};
  c.progress_seconds = 1e9;
  return c;
}

// Column `col` of every data row.
std::vector<std::string> column(const std::string& run_dir, int col) {
  std::vector<std::string> out;
  std::vector<std::string> all = file_lines(began::metrics_path(run_dir));
  for (size_t i = 1; i < all.size(); ++i) {
    std::istringstream row(all[i]);
    std::string cell;
    for (int c = 0; c <= col; ++c) std::getline(row, cell, ',');
    out.push_back(cell);
  }
  return out;
}

// Every tensor (parameters, optimiser state, schedule, fixed z) of two checkpoints, byte for byte.
void check_same_tensors(const std::string& a_path, const std::string& b_path) {
  nn::SafetensorsFile a = nn::load_safetensors(a_path), b = nn::load_safetensors(b_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const std::string& name = a.tensors[i].first;
    const Tensor& ta = a.tensors[i].second;
    const Tensor& tb = b.tensors[i].second;
    INFO("tensor " << name);
    REQUIRE(name == b.tensors[i].first);
    REQUIRE(ta.shape() == tb.shape());
    REQUIRE(ta.dtype() == tb.dtype());
    CHECK(std::memcmp(ta.raw_data(), tb.raw_data(), static_cast<size_t>(ta.numel()) * dtype_size(ta.dtype())) == 0);
  }
}

// A straight run of 20 steps, shared by the resume tests.
struct StraightRun {
  TempDir dir;
  StraightRun() { REQUIRE(run(tiny_config(dir.path, 20)).status == TrainOutcome::Status::completed); }
};

void check_same_as_straight(const StraightRun& straight, const std::string& resumed_dir) {
  std::vector<std::string> want = metrics_without_time(straight.dir.path), got = metrics_without_time(resumed_dir);
  REQUIRE(want.size() == 21);
  CHECK(got == want);
  check_same_tensors(began::checkpoint_path(straight.dir.path, 20), began::checkpoint_path(resumed_dir, 20));
}

}  // namespace

TEST_CASE("began train: 10 steps, stop, resume, 10 more is bit-identical to 20 straight steps" *
          doctest::test_suite("heavy")) {
  StraightRun straight;
  // The resumed half must cross an epoch end (steps 12, 18) and lr-window ends (12, 16, 20) where the rate drops.
  std::vector<std::string> lr = column(straight.dir.path, 9), epoch = column(straight.dir.path, 0);
  CHECK(lr[10] != lr[19]);
  CHECK(epoch[10] != epoch[19]);

  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 10)).status == TrainOutcome::Status::completed);
  REQUIRE(run(resume_config(dir.path, 20)).status == TrainOutcome::Status::completed);
  check_same_as_straight(straight, dir.path);
  // The last two checkpoints are kept: the epoch end at 18 and the end at 20.
  CHECK(began::list_checkpoints(dir.path) ==
        std::vector<std::string>{began::checkpoint_path(dir.path, 18), began::checkpoint_path(dir.path, 20)});
}

TEST_CASE("began train: a killed run resumes from its older checkpoint and metrics.csv never repeats a row" *
          doctest::test_suite("heavy")) {
  StraightRun straight;
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 10)).status == TrainOutcome::Status::completed);
  // As if killed after writing step 10's row but before its checkpoint: the newest checkpoint is step 8's, and
  // metrics.csv also ends in a half-written row.
  std::filesystem::remove(began::checkpoint_path(dir.path, 10));
  { std::ofstream(began::metrics_path(dir.path), std::ios::app) << "2,11,0.5"; }
  REQUIRE(file_lines(began::metrics_path(dir.path)).size() == 12);
  REQUIRE(run(resume_config(dir.path, 20)).status == TrainOutcome::Status::completed);
  check_same_as_straight(straight, dir.path);
}

TEST_CASE("began train: SIGTERM writes a checkpoint at the step boundary; resuming from it is exact") {
  StraightRun straight;
  TempDir dir;
  began::TrainHooks hooks;
  hooks.after_step = [](int64_t step) {
    if (step == 7) std::raise(SIGTERM);
  };
  TrainOutcome out = run(tiny_config(dir.path, 20), hooks);
  CHECK(out.status == TrainOutcome::Status::interrupted);
  CHECK(out.signal == SIGTERM);
  CHECK(out.step == 7);
  CHECK(std::filesystem::exists(began::checkpoint_path(dir.path, 7)));
  CHECK(file_lines(began::metrics_path(dir.path)).size() == 8);
  REQUIRE(run(resume_config(dir.path, 20)).status == TrainOutcome::Status::completed);
  check_same_as_straight(straight, dir.path);
}

TEST_CASE("began train: a step that needs nothing from the host reads nothing from the device") {
  // Steps are read one later (the pipelined trainer); only a step whose results the host must act on before the
  // next one is queued (an lr-window end, an epoch end, a checkpoint, samples, the last step) is read at once, and
  // a checkpoint reads the parameters and k_t. Every other step must add no synchronous host read.
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 11);
  c.lr_window = 5;
  c.checkpoint_every = 1000;
  std::vector<uint64_t> reads;  // host_sync_reads() after each step's hook, step 1 first
  began::TrainHooks hooks;
  hooks.after_step = [&](int64_t) { reads.push_back(host_sync_reads()); };
  REQUIRE(run(c, hooks).status == TrainOutcome::Status::completed);
  REQUIRE(reads.size() == 11);
  // Steps 5 and 10 end lr windows, step 6 ends the first epoch (6 steps per epoch) and writes a checkpoint.
  for (int64_t step : {2, 3, 4, 5, 7, 8, 9, 10, 11}) {
    INFO("step " << step);
    CHECK(reads[static_cast<size_t>(step - 1)] == reads[static_cast<size_t>(step - 2)]);
  }
  CHECK(reads[5] > reads[4]);  // step 6's checkpoint read the parameters: the counter counts
  // The pipelined run wrote every row in order.
  CHECK(column(dir.path, 1) == std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"});
  // Step 10 ends the second window, which does not improve by half: the rate halves, and step 11, queued right
  // after step 10, already runs at the new rate (the window's end was read at once, not one step later).
  const std::vector<std::string> lr = column(dir.path, 9);
  REQUIRE(lr.size() == 11);
  for (size_t i = 0; i < 10; ++i) CHECK(lr[i] == lr[0]);
  CHECK(std::stod(lr[10]) == std::stod(lr[0]) * 0.5);
}

TEST_CASE("began train: a resume refuses flags that contradict the checkpoint and a folder without one") {
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 6)).status == TrainOutcome::Status::completed);
  TrainConfig bad = resume_config(dir.path, 12);
  bad.model.n = 8;
  bad.lr = 1e-4;
  bad.given = {"steps", "n", "lr"};
  std::string msg = testing::error_of([&] { began::resolve_config(bad); });
  CHECK(msg.find("--n 8 (the run has 4)") != std::string::npos);
  CHECK(msg.find("--lr 1e-04 (the run has 0.001)") != std::string::npos);
  CHECK(msg.find("step_0000006.safetensors") != std::string::npos);

  // A value equal to the checkpoint's is no contradiction; --steps may change.
  TrainConfig same = resume_config(dir.path, 12);
  same.model.n = 4;
  same.given = {"steps", "n"};
  TrainConfig resolved = began::resolve_config(same);
  CHECK(resolved.model.n == 4);
  CHECK(resolved.lr == 1e-3);  // from the checkpoint
  CHECK(resolved.synthetic_size == 26);
  // The run counts steps (--steps 6): an --epochs alone would do nothing (the resume ended at once, silently).
  TrainConfig epochs = resume_config(dir.path, 0);
  epochs.epochs = 5;
  epochs.given = {"epochs"};
  testing::check_throws_with([&] { began::resolve_config(epochs); },
                             {"--epochs 5 does nothing: --steps 6 (the run's, from its checkpoint) sets the run's "
                              "length; give one of them (--steps 0 lets --epochs decide)"});
  epochs.steps = 0;
  epochs.given.insert("steps");
  CHECK(began::total_steps(began::resolve_config(epochs)) == 30);  // 5 epochs of 6 steps

  // --out naming the same folder another way (a trailing slash, "/./") is no contradiction.
  for (const std::string& spelling : {dir.path + "/", dir.path + "/./"}) {
    TrainConfig again = resume_config(dir.path, 12);
    again.out = spelling;
    again.given.insert("out");
    CHECK(testing::error_of([&] { began::resolve_config(again); }) == "");
  }
  testing::check_throws_with([&] { began::resolve_config(resume_config(dir.path, 3)); },
                             {"the run is at step 6, beyond the 3 steps asked for"});
  TempDir empty;
  testing::check_throws_with([&] { began::resolve_config(resume_config(empty.path, 12)); }, {"no checkpoint"});
  // A missing folder and a file (a checkpoint's own path) are named as such, not as folders without checkpoints.
  testing::check_throws_with([&] { began::resolve_config(resume_config(empty.file("typo"), 12)); },
                             {"--resume " + empty.file("typo") + ": no such folder"});
  const std::string checkpoint = began::checkpoint_path(dir.path, 6);
  testing::check_throws_with([&] { began::resolve_config(resume_config(checkpoint, 12)); },
                             {"--resume " + checkpoint + ": not a folder; --resume takes the run folder"});
  // A fresh run into a folder that holds one is refused too.
  testing::check_throws_with([&] { began::resolve_config(tiny_config(dir.path, 6)); }, {"already holds a run"});

  // A name of a step beyond int64 is no checkpoint of the run (std::stoll threw: "error: stoll", and nothing else).
  testing::write_bytes(began::checkpoints_dir(dir.path) + "/step_99999999999999999999.safetensors", "");
  CHECK(began::list_checkpoints(dir.path) ==
        std::vector<std::string>{began::checkpoint_path(dir.path, 4), began::checkpoint_path(dir.path, 6)});
  std::filesystem::remove(began::checkpoints_dir(dir.path) + "/step_99999999999999999999.safetensors");

  // A damaged newest checkpoint (not from a kill: saves are atomic; a copy cut short, a failing disk) is named, with
  // the one before it to resume from.
  {
    const std::vector<std::string> checkpoints = began::list_checkpoints(dir.path);
    REQUIRE(checkpoints.size() == 2);
    std::filesystem::resize_file(checkpoints.back(), 100);
    testing::check_throws_with([&] { began::resolve_config(resume_config(dir.path, 12)); },
                               {checkpoints.back(), "the one before it is " + checkpoints.front(),
                                "move the damaged file aside to resume from there"});
    std::filesystem::remove(checkpoints.back());
    CHECK(began::resolve_config(resume_config(dir.path, 12)).resume_checkpoint == checkpoints.front());
  }
  // A run killed before its first checkpoint: neither message may send the user to the other, which refuses too.
  std::filesystem::remove_all(began::checkpoints_dir(dir.path));
  std::string fresh = testing::error_of([&] { began::resolve_config(tiny_config(dir.path, 6)); });
  CHECK(fresh.find("holds a run stopped before its first checkpoint (nothing to resume): pick another --out, or "
                   "remove " +
                   dir.path) != std::string::npos);
  CHECK(fresh.find("continue it with --resume") == std::string::npos);
  testing::check_throws_with([&] { began::resolve_config(resume_config(dir.path, 12)); },
                             {"no checkpoint in " + began::checkpoints_dir(dir.path) +
                              ": the run stopped before its first one, so there is nothing to resume"});
}

TEST_CASE("began train: a fresh run does not overwrite files of the same names in a folder that holds no run") {
  TempDir dir;
  // Other files are no obstacle: the run is written beside them.
  std::ofstream(dir.file("notes.txt")) << "mine";
  REQUIRE(run(tiny_config(dir.path, 2)).status == TrainOutcome::Status::completed);
  CHECK(file_lines(dir.file("notes.txt")) == std::vector<std::string>{"mine"});
  for (const std::string name : {"config.json", "report.html", "losses.svg", "samples/step_0000000.png"}) {
    TempDir out;
    std::filesystem::create_directories(out.path + "/samples");
    std::ofstream(out.file(name)) << "not a run's";
    testing::check_throws_with(
        [&] { began::resolve_config(tiny_config(out.path, 2)); },
        {"--out " + out.path + " holds " + name + " but no run of began train", "a run would overwrite it"});
    CHECK(file_lines(out.file(name)) == std::vector<std::string>{"not a run's"});
  }
}

TEST_CASE("began train: data that cannot be read is refused before anything is written into the run folder") {
  TempDir data, empty, parent;
  // Fashion-MNIST files that are there but empty (a download cut short), and an image folder without images.
  std::ofstream(data.file("train-images-idx3-ubyte.gz"));
  std::ofstream(data.file("train-labels-idx1-ubyte.gz"));
  TrainConfig fmnist;
  fmnist.data_dir = data.path;
  fmnist.given = {"data_dir"};
  TrainConfig folder = fmnist;
  folder.data = "folder";
  folder.data_dir = empty.path;
  folder.given.insert("data");
  // A folder of the user's: refused, it holds exactly what it held.
  std::filesystem::create_directories(parent.file("mine"));
  std::ofstream(parent.file("mine/notes.txt")) << "mine";
  for (const std::string& out : {parent.file("run"), parent.file("mine")}) {
    fmnist.out = folder.out = out;
    testing::check_throws_with([&] { began::resolve_config(fmnist); },
                               {"read_idx: '" + data.file("train-images-idx3-ubyte.gz") + "': truncated"});
    testing::check_throws_with([&] { began::resolve_config(folder); },
                               {"--data-dir " + empty.path + ": no image files"});
  }
  // An --out that cannot be a folder is named before the data is read (a typo must not wait for a decode).
  folder.out = parent.file("mine/notes.txt/run");
  testing::check_throws_with([&] { began::resolve_config(folder); },
                             {"--out " + folder.out + ": " + parent.file("mine/notes.txt") + " is not a folder"});
  CHECK(parent.list() == std::set<std::string>{"mine"});
  CHECK(std::filesystem::directory_iterator(parent.file("mine"))->path().filename() == "notes.txt");
  CHECK(std::distance(std::filesystem::directory_iterator(parent.file("mine")), {}) == 1);
}

TEST_CASE("began train: a run folder that another process trains in is refused, naming it; the hold ends with it") {
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 3)).status == TrainOutcome::Status::completed);
  const std::string lock_file = dir.file(".lock");
  // Another process's hold, as flock(2) sees it: a lock through another open file of the lock file, with its pid.
  const int other = ::open(lock_file.c_str(), O_RDWR);
  REQUIRE(other >= 0);
  REQUIRE(::flock(other, LOCK_EX | LOCK_NB) == 0);
  REQUIRE(::ftruncate(other, 0) == 0);
  REQUIRE(::pwrite(other, "4242\n", 5, 0) == 5);
  testing::check_throws_with([&] { began::resolve_config(resume_config(dir.path, 6)); },
                             {"--out " + dir.path + ": another began train (process 4242) is writing this run folder"});
  // The same command in a second terminal (a fresh run): that process is named too, not "already holds a run:
  // continue it with --resume", which would be refused as well while it lives.
  testing::check_throws_with([&] { began::resolve_config(tiny_config(dir.path, 6)); },
                             {"--out " + dir.path + ": another began train (process 4242) is writing this run folder"});
  ::close(other);  // the holder ends, however it ends: its hold goes with it

  {
    // This process may resolve the folder twice (one hold, shared), and holds it while a resolved config lives.
    const TrainConfig first = began::resolve_config(resume_config(dir.path, 6));
    const TrainConfig second = began::resolve_config(resume_config(dir.path, 6));
    REQUIRE(first.run_lock != nullptr);
    CHECK(first.run_lock == second.run_lock);
    const int probe = ::open(lock_file.c_str(), O_RDWR);
    REQUIRE(probe >= 0);
    CHECK(::flock(probe, LOCK_EX | LOCK_NB) != 0);
    std::ifstream pid_file(lock_file);
    int64_t pid = 0;
    pid_file >> pid;
    CHECK(pid == ::getpid());
    ::close(probe);
  }
  const int after = ::open(lock_file.c_str(), O_RDWR);
  REQUIRE(after >= 0);
  CHECK(::flock(after, LOCK_EX | LOCK_NB) == 0);  // released with the last config that held it
  ::close(after);
  CHECK(run(resume_config(dir.path, 6)).status == TrainOutcome::Status::completed);
}

TEST_CASE("began train: the holds of run folders end with their runs; a pid that cannot be written is a warning") {
  // One hold per folder while its configs live, none after: a process that trains in many folders keeps no entry
  // for the folders it is done with.
  const size_t before = began::held_run_dirs();
  {
    TempDir a, b;
    const TrainConfig first = began::resolve_config(tiny_config(a.path, 2));
    const TrainConfig again = first;
    const TrainConfig second = began::resolve_config(tiny_config(b.path, 2));
    CHECK(began::held_run_dirs() == before + 2);
  }
  CHECK(began::held_run_dirs() == before);
  TempDir refused;
  const int other = ::open(refused.file(".lock").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(other >= 0);
  REQUIRE(::flock(other, LOCK_EX | LOCK_NB) == 0);
  CHECK_THROWS(began::lock_run_dir(refused.path));
  CHECK(began::held_run_dirs() == before);  // a refused folder leaves no entry either
  ::close(other);

  // Files may not grow past 0 bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so the write fails with EFBIG): the hold is
  // taken all the same, and stderr (a pipe here, which the limit does not touch) says why the pid is missing.
  TempDir dir;
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const int saved_stderr = ::dup(STDERR_FILENO);
  struct rlimit old_limit {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit no_growth = old_limit;
  no_growth.rlim_cur = 0;
  std::fflush(stderr);
  ::dup2(pipe_fds[1], STDERR_FILENO);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &no_growth) == 0);
  std::shared_ptr<const began::RunFolderLock> hold;
  const std::string error = testing::error_of([&] { hold = began::lock_run_dir(dir.path); });
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::fflush(stderr);
  ::dup2(saved_stderr, STDERR_FILENO);
  ::close(saved_stderr);
  std::signal(SIGXFSZ, old_handler);
  ::close(pipe_fds[1]);
  char text[512] = {};
  const ssize_t n = ::read(pipe_fds[0], text, sizeof text - 1);
  ::close(pipe_fds[0]);
  CHECK(error == "");
  CHECK(hold != nullptr);
  const std::string warning(text, n > 0 ? static_cast<size_t>(n) : 0);
  CHECK(warning.find("began train: warning: cannot write this process's pid into " + dir.file(".lock") + " (" +
                     std::strerror(EFBIG) + "); the folder is held all the same") != std::string::npos);
  const int probe = ::open(dir.file(".lock").c_str(), O_RDWR);
  REQUIRE(probe >= 0);
  CHECK(::flock(probe, LOCK_EX | LOCK_NB) != 0);  // held, without a pid
  ::close(probe);
}

TEST_CASE("began train: a non-finite loss stops the run, names the step, and keeps the last good checkpoint") {
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 20);
  c.lr = 10;  // diverges at step 2 (at 1e3 and above already at step 1, before any checkpoint)
  c.checkpoint_every = 1;
  TrainOutcome out = run(c);
  REQUIRE(out.status == TrainOutcome::Status::diverged);
  CHECK(out.message.find("step " + std::to_string(out.step)) != std::string::npos);
  CHECK(out.message.find("not finite") != std::string::npos);
  // The advice fits what can be done: --resume cannot change --lr (and would stop at the same step again).
  CHECK(out.message.find("a new run with a lower --lr may help (--resume keeps the run's settings") !=
        std::string::npos);
  CHECK(out.message.find("--pull-away") == std::string::npos);  // not used: not advised
  REQUIRE(out.step >= 2);
  CHECK(out.message.find("last good checkpoint is " + began::checkpoint_path(dir.path, out.step - 1)) !=
        std::string::npos);
  // Every checkpoint left is from before the bad step and holds finite parameters (Adam's second moments may
  // already have overflowed: with an infinite v the update is 0, not NaN).
  for (const std::string& path : began::list_checkpoints(dir.path)) {
    nn::SafetensorsFile file = nn::load_safetensors(path);
    CHECK(std::stoll(file.metadata.at("step")) < out.step);
    for (const auto& tensor : file.tensors) {
      // A named variable, not a structured binding: REQUIRE_MESSAGE's lambda captures it (clang before 16 cannot).
      const std::string& name = tensor.first;
      if (name.rfind("G.", 0) != 0 && name.rfind("D.", 0) != 0) continue;
      for (float v : tensor.second.to_vector<float>()) REQUIRE_MESSAGE(std::isfinite(v), name << " in " << path);
    }
  }
  CHECK(file_lines(began::metrics_path(dir.path)).size() == static_cast<size_t>(out.step) + 1);
}

TEST_CASE("began train: a run folder holds config.json, metrics.csv, samples, checkpoints and the report") {
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 13);
  c.sample_every = 5;
  c.version = "v-test";
  REQUIRE(run(c).status == TrainOutcome::Status::completed);
  std::vector<std::string> metrics = file_lines(began::metrics_path(dir.path));
  REQUIRE(metrics.size() == 14);
  CHECK(metrics[0] == began::kMetricsHeader);
  CHECK(metrics[13].rfind("3,13,", 0) == 0);  // step 13 is the first of epoch 3
  for (const char* name :
       {"step_0000000.png", "step_0000005.png", "step_0000010.png", "epoch_0001.png", "epoch_0002.png", "final.png"}) {
    CHECK_MESSAGE(std::filesystem::exists(dir.file(std::string("samples/") + name)), name);
  }
  CHECK(std::filesystem::exists(dir.file("report.html")));
  const std::string config = testing::read_bytes(dir.file("config.json"));
  for (const char* frag :
       {"\"n\": 4", "\"batch\": 4", "\"lr_window\": 4", "\"version\": \"v-test\"", "\"threads\": "}) {
    CHECK_MESSAGE(config.find(frag) != std::string::npos, frag);
  }
}

TEST_CASE("began train: --k0 is k_t at the first step, recorded in config.json; the default is the paper's 0") {
  for (double k0 : {0.0, 0.25}) {
    TempDir dir;
    TrainConfig c = tiny_config(dir.path, 2);
    c.k0 = k0;
    REQUIRE(run(c).status == TrainOutcome::Status::completed);
    const std::vector<std::string> k_t = column(dir.path, 7);  // epoch, step, 5 losses, k_t
    REQUIRE(k_t.size() == 2);
    CHECK(std::stod(k_t[0]) == doctest::Approx(k0).epsilon(1e-12));
    CHECK(std::stod(k_t[1]) != std::stod(k_t[0]));  // and the update moves it from there
    const std::string config = testing::read_bytes(dir.file("config.json"));
    CHECK(config.find(k0 == 0 ? "\"k0\": 0.0" : "\"k0\": 0.25") != std::string::npos);
    if (k0 == 0) continue;
    // The checkpoint fixes it: a resume takes it, and refuses another.
    TrainConfig resumed = resume_config(dir.path, 4);
    CHECK(began::resolve_config(resumed).k0 == 0.25);
    resumed.k0 = 0.5;
    resumed.given = {"steps", "k0"};
    testing::check_throws_with([&] { began::resolve_config(resumed); }, {"--k0 0.5 (the run has 0.25)"});
  }
  // Both ends of [0, 1] are accepted.
  TempDir top;
  TrainConfig one = tiny_config(top.path, 2);
  one.k0 = 1;
  CHECK(began::resolve_config(one).k0 == 1);
}

TEST_CASE("began train: a resume takes the checkpoint's doubles bit for bit") {
  // Values with more digits than a short decimal keeps: the checkpoint stores each double exactly (hex), so the
  // resumed run continues with the very same rate, gamma and threshold.
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 2);
  c.lr = 1e-3 / 3;
  c.lr_min = c.lr / 7;
  c.step.gamma = 2.0 / 3;
  c.lr_threshold = 0.1 / 3;
  REQUIRE(run(c).status == TrainOutcome::Status::completed);
  const TrainConfig resumed = began::resolve_config(resume_config(dir.path, 4));
  CHECK(resumed.lr == c.lr);
  CHECK(resumed.lr_min == c.lr_min);
  CHECK(resumed.step.gamma == c.step.gamma);
  CHECK(resumed.lr_threshold == c.lr_threshold);
}

TEST_CASE("began train: --pull-away trains with the term, is recorded in config.json and fixed on resume") {
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 2);
  c.step.pull_away = 0.25;
  REQUIRE(run(c).status == TrainOutcome::Status::completed);
  const std::vector<std::string> loss_g = column(dir.path, 6);  // epoch, step, L(x), L(G(z_D)), L(G(z_G)), L_D, L_G
  REQUIRE(loss_g.size() == 2);
  for (const std::string& v : loss_g) CHECK(std::isfinite(std::stod(v)));
  CHECK(testing::read_bytes(dir.file("config.json")).find("\"pull_away\": 0.25") != std::string::npos);

  TrainConfig resumed = resume_config(dir.path, 4);
  resumed.given = {"steps"};
  CHECK(began::resolve_config(resumed).step.pull_away == 0.25);  // taken from the checkpoint
  resumed.step.pull_away = 0;
  resumed.given = {"steps", "pull_away"};
  testing::check_throws_with([&] { began::resolve_config(resumed); }, {"--pull-away 0 (the run has 0.25)"});

  // A weight so large that the run diverges: the advice names the flag that did it.
  TempDir wild;
  TrainConfig w = tiny_config(wild.path, 4);
  w.step.pull_away = 1e300;
  const TrainOutcome out = run(w);
  REQUIRE(out.status == TrainOutcome::Status::diverged);
  CHECK(out.message.find("a new run with a lower --lr or a lower --pull-away (it was 1e+300) may help") !=
        std::string::npos);
}

TEST_CASE("began train: --precision is the library's precision during the run, recorded in config.json") {
  for (const std::string name : {"tf32", "bf16"}) {
    INFO("--precision " << name);
    TempDir dir;
    TrainConfig c = tiny_config(dir.path, 2);
    c.precision = name;
    std::vector<std::string> seen;
    began::TrainHooks hooks;
    hooks.after_step = [&](int64_t) { seen.push_back(precision_name(precision())); };
    REQUIRE(precision() == Precision::FP32);
    REQUIRE(run(c, hooks).status == TrainOutcome::Status::completed);
    CHECK(seen == std::vector<std::string>{name, name});
    CHECK(precision() == Precision::FP32);  // restored
    CHECK(testing::read_bytes(dir.file("config.json")).find("\"precision\": \"" + name + "\"") != std::string::npos);
  }
}

TEST_CASE("began train: on the CPU, --precision tf32 and bf16 give fp32's metrics bit for bit") {
  // The CPU computes in float32 under every precision setting: only CUDA's GEMMs read it.
  std::vector<std::vector<std::string>> metrics;  // every row of metrics.csv but its time column
  for (const std::string name : {"fp32", "tf32", "bf16"}) {
    TempDir dir;
    TrainConfig c = tiny_config(dir.path, 2);
    c.precision = name;
    REQUIRE(run(c).status == TrainOutcome::Status::completed);
    metrics.push_back(metrics_without_time(dir.path));
  }
  REQUIRE(metrics[0].size() == 3);  // the header and two steps
  CHECK(metrics[1] == metrics[0]);
  CHECK(metrics[2] == metrics[0]);
}

TEST_CASE("began train: bad settings are refused before any work, naming the flag") {
  TempDir dir;
  auto refused = [&](auto change, const std::string& fragment) {
    TrainConfig c = tiny_config(dir.path + "/run", 4);
    change(c);
    testing::check_throws_with([&] { began::resolve_config(c); }, {fragment});
  };
  refused([](TrainConfig& c) { c.data = "lfw"; }, "--data: 'lfw'");
  refused([](TrainConfig& c) { c.model.image_size = 48; }, "image_size");
  refused([](TrainConfig& c) { c.batch = 27; }, "--batch 27 is larger than the data set (26 images)");
  refused([](TrainConfig& c) { c.lr_factor = 2; }, "--lr-factor");
  refused(
      [](TrainConfig& c) {
        c.epochs = 3;
        c.given = {"steps", "epochs"};
      },
      "--epochs 3 does nothing: --steps 4 sets the run's length; give one of them");
  // A floor above the starting rate: the schedule could never lower it. Both values named; the default said so.
  refused(
      [](TrainConfig& c) {
        c.lr_min = 2e-3;
        c.given = {"lr_min"};
      },
      "--lr-min 0.002 is above --lr 0.001: the rate starts below its floor and would never decay");
  refused(
      [](TrainConfig& c) {
        c.lr = 1e-5;
        c.lr_min = TrainConfig().lr_min;
      },
      "--lr-min 2e-05 (the default) is above --lr 1e-05");
  refused([](TrainConfig& c) { c.k0 = 1.5; }, "--k0 must be in [0, 1]");
  refused([](TrainConfig& c) { c.k0 = -0.1; }, "--k0 must be in [0, 1]");
  refused([](TrainConfig& c) { c.step.pull_away = -1; }, "--pull-away must be finite and >= 0");
  refused(
      [](TrainConfig& c) {
        c.step.pull_away = 0.1;
        c.batch = 1;
      },
      "--pull-away compares pairs of G's images in a batch: it needs --batch >= 2, got 1");
  refused([](TrainConfig& c) { c.device = "tpu"; }, "--device: 'tpu'");
  refused([](TrainConfig& c) { c.precision = "fp16"; }, "--precision: 'fp16' is not a precision atelier has");
  refused([](TrainConfig& c) { c.cuda_graph = "yes"; }, "--cuda-graph: 'yes' is not on, off or auto");
  refused([](TrainConfig& c) { c.device = "cuda"; }, "--device cuda");
  refused([](TrainConfig& c) { c.out = "/proc/began-run"; }, "--out /proc/began-run");
  refused(
      [](TrainConfig& c) {
        c.data = "fashion-mnist";
        c.model.image_size = 64;
      },
      "--data fashion-mnist is 32x32");
  // The value is quoted exactly: 1.0000001 printed as "got 1" would read as a value inside (0, 1].
  refused([](TrainConfig& c) { c.step.gamma = 1.0000001; }, "--gamma must be in (0, 1], got 1.0000001");
  refused([](TrainConfig& c) { c.beta1 = 1.00000001; }, "--beta1 must be in [0, 1), got 1.00000001");
  // A flag of another data set is refused, not ignored.
  refused(
      [](TrainConfig& c) {
        c.data_dir = "/nonexistent";
        c.given = {"data_dir"};
      },
      "--data-dir applies to --data fashion-mnist or folder only (the data is synthetic)");
  refused(
      [](TrainConfig& c) {
        c.data = "fashion-mnist";
        c.given = {"synthetic_size"};
      },
      "--synthetic-size applies to --data synthetic only (the data is fashion-mnist)");
  // config.json and the checkpoints hold the paths as JSON text: a name that is not UTF-8 is refused up front (it
  // failed after the run folder was made, with nlohmann's "[json.exception.type_error.316] invalid UTF-8 byte").
  refused([&](TrainConfig& c) { c.out = dir.path + "/run\xff"; },
          "--out " + dir.path + "/run\xff: the name is not valid UTF-8");
  refused(
      [](TrainConfig& c) {
        c.data = "fashion-mnist";
        c.data_dir = "/data\xfe";
        c.given = {"data_dir"};
      },
      "--data-dir /data\xfe: the name is not valid UTF-8");
  // Numbers too large for the run: refused up front, not a wrapped step count or an allocation failure later.
  refused(
      [](TrainConfig& c) {
        c.steps = 0;
        c.epochs = int64_t{1} << 62;  // times 6 steps per epoch wraps around int64
      },
      "--epochs 4611686018427387904 times 6 steps per epoch is more steps than a run can count");
  refused([](TrainConfig& c) { c.model.channels = 65; }, "synthetic data: channels must be in [1, 64], got 65");
  refused([](TrainConfig& c) { c.synthetic_size = 99999999999; }, "--synthetic-size must be from 1 to 100000000");
  refused([](TrainConfig& c) { c.sample_count = 100000000; }, "--sample-count must be from 1 to 10000");
  refused([](TrainConfig& c) { c.threads = 2000000000; }, "--threads must be from 0 to 4096");  // as the variable
  // A model that could not be allocated (a digit too many in --n): refused before the run folder is made, not an
  // allocation failure after it.
  refused([](TrainConfig& c) { c.model.n = 40000; },
          "--n 40000 and --h 4 at --image-size 32 make D and G 6.19258e+11 parameters together, more than a run can "
          "hold (at most 2147483648");
  CHECK_FALSE(std::filesystem::exists(dir.file("run")));
  // A floor equal to the starting rate is a constant rate: accepted.
  TrainConfig constant = tiny_config(dir.path + "/constant", 4);
  constant.lr_min = constant.lr;
  CHECK(began::resolve_config(constant).lr_min == constant.lr);
}

TEST_CASE("began train: a step that cannot fit in free memory and swap is refused; one that needs swap is a note") {
  const TrainConfig c = tiny_config("unused", 4);
  const double need = began::step_memory(c.model, c.batch).total();
  std::string note;
  const std::string refused = began::step_memory_problem(c, {need / 2, need / 4}, &note);
  CHECK(refused.find("--image-size 32 --n 4 --batch 4: a training step needs about " + began::bytes_text(need) +
                     ", more than the " + began::bytes_text(need * 3 / 4) + " free here (memory and swap)") == 0);
  CHECK(note.empty());
  CHECK(began::step_memory_problem(c, {need / 2, need}, &note).empty());
  CHECK(note.find("the run will swap") != std::string::npos);
  note.clear();
  CHECK(began::step_memory_problem(c, {2 * need, 0}, &note).empty());
  CHECK(began::step_memory_problem(c, {-1, -1}, &note).empty());  // unknown: not refused
  CHECK(note.empty());
  TrainConfig on_gpu = c;
  on_gpu.device = "cuda";  // the GPU's memory is not estimated
  CHECK(began::step_memory_problem(on_gpu, {need / 2, 0}, &note).empty());
  CHECK(began::bytes_text(361.0 * 1024 * 1024) == "361 MiB");
  CHECK(began::bytes_text(1.5 * 1024 * 1024 * 1024) == "1.5 GiB");
  // This machine's figures read back (a Linux with /proc/meminfo).
  const began::FreeMemory free = began::free_memory();
  CHECK(free.memory_bytes > 0);
  CHECK(free.swap_bytes >= 0);
}

TEST_CASE("began train: free memory is /proc/meminfo's, capped by a cgroup's limit less what it uses but its cache") {
  TempDir dir;
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  testing::write_bytes(dir.file("meminfo"),
                       "MemTotal:       16777216 kB\nMemAvailable:    8388608 kB\n"
                       "SwapTotal:       2097152 kB\nSwapFree:        1048576 kB\n");
  const std::string meminfo = dir.file("meminfo"), cgroup = dir.file("cgroup");
  std::filesystem::create_directories(cgroup);
  began::FreeMemory free = began::free_memory(meminfo, cgroup);  // no cgroup files: meminfo alone
  CHECK(free.memory_bytes == 8 * kGiB);
  CHECK(free.swap_bytes == 1 * kGiB);
  // A 4 GiB limit with 3 GiB used, 2 GiB of it page cache: 3 GiB free; swap limited to 0.5 GiB, none used.
  testing::write_bytes(cgroup + "/memory.max", std::to_string(static_cast<int64_t>(4 * kGiB)) + "\n");
  testing::write_bytes(cgroup + "/memory.current", std::to_string(static_cast<int64_t>(3 * kGiB)) + "\n");
  testing::write_bytes(cgroup + "/memory.stat",
                       "anon 1073741824\nfile " + std::to_string(static_cast<int64_t>(2 * kGiB)) + "\nkernel 0\n");
  testing::write_bytes(cgroup + "/memory.swap.max", std::to_string(static_cast<int64_t>(kGiB / 2)) + "\n");
  testing::write_bytes(cgroup + "/memory.swap.current", "0\n");
  free = began::free_memory(meminfo, cgroup);
  CHECK(free.memory_bytes == 3 * kGiB);
  CHECK(free.swap_bytes == kGiB / 2);
  // "max": no limit of the group's own.
  testing::write_bytes(cgroup + "/memory.max", "max\n");
  testing::write_bytes(cgroup + "/memory.swap.max", "max\n");
  free = began::free_memory(meminfo, cgroup);
  CHECK(free.memory_bytes == 8 * kGiB);
  CHECK(free.swap_bytes == 1 * kGiB);
  // No /proc/meminfo: unknown, and a step is then not refused.
  CHECK(began::free_memory(dir.file("none"), cgroup).memory_bytes < 0);
}

TEST_CASE("began train: a checkpoint whose metadata does not read back is refused, naming the file and the key") {
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 4)).status == TrainOutcome::Status::completed);
  const std::string path = began::checkpoint_path(dir.path, 4);
  const nn::SafetensorsFile good = nn::load_safetensors(path);
  auto refused = [&](const std::string& key, const std::string& value, const std::string& fragment) {
    nn::SafetensorsFile bad = good;
    bad.metadata[key] = value;
    nn::save_safetensors(path, bad.tensors, bad.metadata);
    INFO(key << " = " << value);
    testing::check_throws_with([&] { began::resolve_config(resume_config(dir.path, 8)); }, {path, fragment});
  };
  refused("setting.h", "abc", "setting 'h': 'abc' is not a whole number");
  refused("setting.seed", "-1", "setting 'seed': '-1' is out of range");  // not wrapped to 2^64 - 1
  refused("setting.n", "99999999999999999999", "setting 'n': '99999999999999999999' is out of range");
  refused("setting.gamma", "0.5x", "setting 'gamma': '0.5x' is not a number");
  refused("step", "99999999999999999999", "'step' is '99999999999999999999'");  // not saturated to 2^63 - 1
  refused("threads", "4294967297", "'threads' is '4294967297'");                // not wrapped to 1
  refused("k_t", "nan", "'k_t' is 'nan', not a number in [0, 1]");
  refused("k_t", "0x1p+3", "'k_t' is '0x1p+3', not a number in [0, 1]");
  refused("time_s", "-1", "'time_s' is '-1'");
  // The file as it was resumes.
  nn::save_safetensors(path, good.tensors, good.metadata);
  CHECK(run(resume_config(dir.path, 8)).status == TrainOutcome::Status::completed);
}

TEST_CASE("began train: a checkpoint with a NaN parameter is refused at resume, naming the file and the tensor") {
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 4)).status == TrainOutcome::Status::completed);
  const std::string path = began::checkpoint_path(dir.path, 4);
  const nn::SafetensorsFile good = nn::load_safetensors(path);
  auto poisoned = [&](const std::string& prefix, double value) {
    nn::SafetensorsFile bad = good;
    for (auto& [name, t] : bad.tensors) {
      if (name.rfind(prefix, 0) != 0) continue;
      std::vector<float> values = t.to_vector<float>();
      values[1] = static_cast<float>(value);
      t = from_vector(values, t.shape());
      return std::pair{bad, name};
    }
    FAIL("no tensor named " << prefix << "*");
    return std::pair{bad, std::string()};
  };
  for (const auto& [prefix, value] : {std::pair{std::string("D."), std::nan("")}, {"G.", HUGE_VAL}}) {
    // Named variables, not a structured binding: INFO captures them (clang before 16 cannot capture a binding).
    const std::pair<nn::SafetensorsFile, std::string> poisoned_file = poisoned(prefix, value);
    const nn::SafetensorsFile& bad = poisoned_file.first;
    const std::string& name = poisoned_file.second;
    nn::save_safetensors(path, bad.tensors, bad.metadata);
    INFO(name);
    // Not a divergence at the first resumed step that calls this file "the last good checkpoint".
    testing::check_throws_with([&] { run(resume_config(dir.path, 8)); }, {path, name, "at element 1"});
    // The tools on the checkpoint refuse it too, rather than draw a blank grid.
    testing::check_throws_with([&] { began::load_checkpoint_networks(path, Device::cpu()); }, {path, name});
  }
  // Adam's second moments may overflow in a good run (the update is then 0): an infinite one resumes.
  nn::SafetensorsFile moments = good;
  bool found = false;
  for (auto& [name, t] : moments.tensors) {
    if (name.rfind("opt_d.", 0) != 0 || name.find("exp_avg_sq") == std::string::npos) continue;
    std::vector<float> values = t.to_vector<float>();
    values[0] = HUGE_VALF;
    t = from_vector(values, t.shape());
    found = true;
    break;
  }
  REQUIRE(found);
  nn::save_safetensors(path, moments.tensors, moments.metadata);
  CHECK(run(resume_config(dir.path, 8)).status == TrainOutcome::Status::completed);
}

TEST_CASE("began train: resuming with another thread count continues and says it is not bit-exact") {
  const int threads = num_threads();
  TempDir dir;
  REQUIRE(run(tiny_config(dir.path, 6)).status == TrainOutcome::Status::completed);
  TrainConfig c = resume_config(dir.path, 8);
  c.threads = threads + 1;
  c.given.insert("threads");
  std::vector<std::string> log;
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) { log.push_back(line); };
  TrainOutcome out = began::train(began::resolve_config(c), hooks);
  set_num_threads(threads);
  CHECK(out.status == TrainOutcome::Status::completed);
  CHECK(out.step == 8);
  bool noted = false;
  for (const std::string& line : log) noted |= line.find("not bit for bit") != std::string::npos;
  CHECK(noted);
  CHECK(nn::load_safetensors(began::checkpoint_path(dir.path, 8)).metadata.at("threads") ==
        std::to_string(threads + 1));
}

TEST_CASE("began train: the log's counts agree with their nouns (1 step, 1 thread; 2 steps, 2 threads)") {
  CHECK(began::count_text(0, "image") == "0 images");
  CHECK(began::count_text(1, "image") == "1 image");
  CHECK(began::count_text(1, "batch", "batches") == "1 batch");
  CHECK(began::count_text(2, "batch", "batches") == "2 batches");
  const int threads = num_threads();
  TempDir dir;
  std::vector<std::string> log;
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) { log.push_back(line); };
  auto logged = [&](const std::string& text) {
    std::string all;
    for (const std::string& line : log) all += line + "\n";
    INFO("the log:\n" << all);
    return all.find(text) != std::string::npos;
  };
  TrainConfig one = tiny_config(dir.path, 1);
  one.threads = 1;
  REQUIRE(began::train(began::resolve_config(one), hooks).status == TrainOutcome::Status::completed);
  CHECK(logged("began train: 1 step (6 per epoch), 1 thread, D "));
  CHECK(logged("began train: done, 1 step in "));
  TrainConfig two = resume_config(dir.path, 3);
  two.threads = 2;
  two.given.insert("threads");
  REQUIRE(began::train(began::resolve_config(two), hooks).status == TrainOutcome::Status::completed);
  set_num_threads(threads);
  CHECK(logged("the checkpoint was made with 1 thread and this run uses 2"));
  CHECK(logged("at step 1 of 3, 2 threads"));
  CHECK(logged("began train: done, 3 steps in "));
}

TEST_CASE("began train: --cuda-graph on (the step captured once, then replayed) gives off's rows and checkpoints" *
          doctest::test_suite("heavy")) {
  // On the CPU, auto is off and on replays the recorded calls. The 20 steps cross epoch ends, checkpoints and the
  // rate's drops (the replays read each new rate), and the resumed half warms up and captures again.
  StraightRun straight;
  TempDir dir;
  TrainConfig c = tiny_config(dir.path, 20);
  c.cuda_graph = "on";
  std::string log;  // a failed capture would say so here (and fall back to eager steps, which pass the checks)
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) { log += line + "\n"; };
  REQUIRE(run(c, hooks).status == TrainOutcome::Status::completed);
  CHECK(log.find("could not be captured") == std::string::npos);
  check_same_as_straight(straight, dir.path);
  CHECK(testing::read_bytes(dir.file("config.json")).find("\"cuda_graph\": \"on\"") != std::string::npos);
  CHECK(testing::read_bytes(straight.dir.file("config.json")).find("\"cuda_graph\": \"off\"") != std::string::npos);

  TempDir resumed;
  REQUIRE(run(tiny_config(resumed.path, 10)).status == TrainOutcome::Status::completed);
  TrainConfig more = resume_config(resumed.path, 20);
  more.cuda_graph = "on";
  REQUIRE(run(more, hooks).status == TrainOutcome::Status::completed);
  CHECK(log.find("could not be captured") == std::string::npos);
  check_same_as_straight(straight, resumed.path);
}

TEST_CASE("began train: metrics.csv's time_s and the progress line time each step when it was done") {
  // A pause of 30 ms after each step (the hook runs once the step is queued, and on the CPU has run): each row's
  // time_s must be at least that much after the one before, and the speed on every progress line but the first
  // at most one batch per 30 ms. Stamping a step when its row is written (one step late: the steps are pipelined
  // by one) gave the last two steps, and each checkpoint step and the one before, the same time, and the last
  // line a speed of hundreds of thousands of images per second.
  constexpr double kPause = 0.030;
  TempDir dir;
  TrainConfig config = tiny_config(dir.path, 6);
  config.progress_seconds = 0;  // a line for every step
  std::vector<std::string> lines;
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) { lines.push_back(line); };
  hooks.after_step = [&](int64_t) { std::this_thread::sleep_for(std::chrono::duration<double>(kPause)); };
  REQUIRE(run(config, hooks).status == TrainOutcome::Status::completed);

  const std::vector<std::string> time_s = column(dir.path, 10);
  REQUIRE(time_s.size() == 6);
  for (size_t i = 1; i < time_s.size(); ++i) {
    INFO("rows " << i << " and " << i + 1 << ": " << time_s[i - 1] << " s, " << time_s[i] << " s");
    CHECK(std::stod(time_s[i]) - std::stod(time_s[i - 1]) >= kPause - 0.002);  // time_s has 3 decimals
  }
  int progress_lines = 0;
  for (const std::string& line : lines) {
    const size_t at = line.find(" img/s");
    if (line.rfind("epoch ", 0) != 0 || at == std::string::npos) continue;
    if (++progress_lines == 1) continue;  // the first step has no pause before it
    const double images_per_s = std::stod(line.substr(line.rfind(' ', at - 1) + 1));
    INFO(line);
    CHECK(images_per_s <= config.batch / (kPause - 0.002));
  }
  CHECK(progress_lines == 6);
}

TEST_CASE("began train: the progress line counts a last, partial epoch among the epochs") {
  // 8 steps at 6 per epoch: two epochs, the second of 2 steps. A line for every step.
  TempDir dir;
  TrainConfig config = tiny_config(dir.path, 8);
  config.progress_seconds = 0;
  std::vector<std::string> lines;
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) {
    if (line.rfind("epoch ", 0) == 0) lines.push_back(line);
  };
  REQUIRE(run(config, hooks).status == TrainOutcome::Status::completed);
  REQUIRE(lines.size() == 8);
  CHECK(lines[0].rfind("epoch 1/2  step 1/8  ", 0) == 0);
  CHECK(lines[5].rfind("epoch 1/2  step 6/8  ", 0) == 0);
  CHECK(lines[6].rfind("epoch 2/2  step 7/8  ", 0) == 0);
  CHECK(lines[7].rfind("epoch 2/2  step 8/8  ", 0) == 0);
}

TEST_CASE("began train: the progress line's speed, ETA and means cover the steps since the previous line") {
  began::ProgressMeter meter(/*interval_s=*/5, /*images_per_step=*/16, /*start_s=*/10);
  CHECK_FALSE(meter.due());  // no step yet
  began::StepResult r;
  r.k_t = 0.25;
  for (int i = 1; i <= 4; ++i) {
    r.loss_real = i;        // mean 2.5
    r.loss_fake_g = 2 * i;  // L(G(z_G)), the G step's: mean 5
    r.loss_fake_d = 100;    // the D step's, not shown
    r.m_global = 1;
    meter.add(r, 10 + 0.5 * i);  // 4 steps in 2 s: 2 steps/s, 32 img/s
  }
  CHECK(meter.due());  // the first line comes at once
  CHECK(meter.line(1, 2, 4, 104, 1e-4) ==
        "epoch 1/2  step 4/104  32 img/s  ETA 50s  L(x) 2.5000  L(G(z)) 5.0000  k_t 0.2500  M 1.0000  lr 0.0001");
  meter.add(r, 14.9);
  CHECK_FALSE(meter.due());  // 2.9 s since the last line's last step (12 s)
  CHECK(meter.due(/*force=*/true));
  meter.add(r, 17);  // 5 s: due
  CHECK(meter.due());
  CHECK(meter.line(1, 2, 6, 104, 1e-4).find("  6 img/s  ETA 4m05s") != std::string::npos);  // 2 steps in 5 s
}
