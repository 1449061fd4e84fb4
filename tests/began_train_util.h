// Helpers shared by the tests that run `began::train` (tests/test_began_train.cpp, tests/test_image_folder.cpp):
// a run without log output, metrics.csv's rows for comparing two runs, and a small synthetic run that counts its
// synchronous uploads.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "backends/backend.h"
#include "began/run_files.h"
#include "began/trainer.h"

namespace atelier::testing {

// began::train on the resolved config, its log lines dropped unless the hooks set a log.
inline began::TrainOutcome run_training(const began::TrainConfig& config, const began::TrainHooks& hooks = {}) {
  began::TrainHooks h = hooks;
  if (!h.log) h.log = [](const std::string&) {};
  return began::train(began::resolve_config(config), h);
}

// The lines of a text file.
inline std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// metrics.csv of a run folder, header included, each row without its last column (time_s): what an exact resume
// must reproduce.
inline std::vector<std::string> metrics_without_time(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const std::string& line : file_lines(began::metrics_path(run_dir))) {
    out.push_back(line.substr(0, line.rfind(',')));
  }
  return out;
}

// A small synthetic run of `steps` steps on `device` (32x32x1 images, n = h = 4, batch 4) that reads nothing from
// the device before its last step: no samples, checkpoints or progress lines on the way, the default lr schedule.
inline began::TrainConfig small_synthetic_config(const std::string& out, int64_t steps, const std::string& device,
                                                 const std::string& cuda_graph) {
  began::TrainConfig c;
  c.data = "synthetic";
  c.synthetic_size = 26;
  c.model = {.image_size = 32, .channels = 1, .n = 4, .h = 4};
  c.batch = 4;
  c.steps = steps;
  c.sample_every = 1000;
  c.sample_count = 4;
  c.checkpoint_every = 1000;
  c.progress_seconds = 1e9;
  c.device = device;
  c.cuda_graph = cuda_graph;
  c.out = out;
  return c;
}

// host_sync_uploads() (backends/backend.h) after each step of a completed run of `config`, step 1 first. With
// --cuda-graph on, the run must have replayed its steps (its log has no failed-capture note).
inline std::vector<uint64_t> sync_uploads_after_each_step(const began::TrainConfig& config) {
  std::vector<uint64_t> uploads;
  std::string log;
  began::TrainHooks hooks;
  hooks.log = [&](const std::string& line) { log += line + "\n"; };
  hooks.after_step = [&](int64_t) { uploads.push_back(host_sync_uploads()); };
  REQUIRE(run_training(config, hooks).status == began::TrainOutcome::Status::completed);
  INFO("log: " << log);
  CHECK(log.find("could not be captured") == std::string::npos);
  return uploads;
}

}  // namespace atelier::testing
