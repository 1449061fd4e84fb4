// Helpers shared by the tests that run `began::train` (tests/test_began_train.cpp, tests/test_image_folder.cpp):
// a run without log output, and metrics.csv's rows for comparing two runs.
#pragma once

#include <fstream>
#include <string>
#include <vector>

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

}  // namespace atelier::testing
