// The run folder's files (began/run_files.h): paths, the checkpoint list, atomic text writes and metrics.csv.
#include "began/run_files.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "backends/error.h"
#include "began/image_io.h"
#include "began/number_text.h"

namespace atelier::began {

namespace fs = std::filesystem;

namespace {

std::string numbered(const std::string& prefix, int64_t number, int digits, const std::string& suffix) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%0*lld%s", prefix.c_str(), digits, static_cast<long long>(number), suffix.c_str());
  return buf;
}

// The step of "step_NNNNNNN.safetensors", or -1 for any other name.
int64_t checkpoint_step(const std::string& name) {
  const std::string prefix = "step_", suffix = ".safetensors";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return -1;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  int64_t step = -1;  // more digits than an int64_t holds: no step of a run (std::stoll threw a bare "stoll")
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  return ec == std::errc() ? step : -1;
}

}  // namespace

std::string shortest_text(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

std::string metrics_path(const std::string& run_dir) { return run_dir + "/metrics.csv"; }
std::string samples_dir(const std::string& run_dir) { return run_dir + "/samples"; }
std::string checkpoints_dir(const std::string& run_dir) { return run_dir + "/checkpoints"; }

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  return checkpoints_dir(run_dir) + "/" + numbered("step_", step, 7, ".safetensors");
}
std::string step_sample_path(const std::string& run_dir, int64_t step) {
  return samples_dir(run_dir) + "/" + numbered("step_", step, 7, ".png");
}
std::string epoch_sample_path(const std::string& run_dir, int64_t epoch) {
  return samples_dir(run_dir) + "/" + numbered("epoch_", epoch, 4, ".png");
}
std::string final_sample_path(const std::string& run_dir) { return samples_dir(run_dir) + "/final.png"; }

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir(run_dir), ec)) {
    const int64_t step = checkpoint_step(entry.path().filename().string());
    if (step >= 0) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(path);
  return paths;
}

void remove_old_checkpoints(const std::string& run_dir, size_t keep) {
  std::vector<std::string> all = list_checkpoints(run_dir);
  for (size_t i = 0; i + keep < all.size(); ++i) fs::remove(all[i]);
}

std::string path_length_problem(const std::string& path) {
  if (path.size() >= PATH_MAX) {
    return "the path is " + std::to_string(path.size()) + " bytes long, more than the " + std::to_string(PATH_MAX - 1) +
           " a path can have";
  }
  size_t start = 0;
  for (int part = 1; start < path.size(); ++part) {
    const size_t slash = std::min(path.find('/', start), path.size());
    if (slash - start > NAME_MAX) {
      return "part " + std::to_string(part) + " of the path is " + std::to_string(slash - start) +
             " bytes long, more than the " + std::to_string(NAME_MAX) + " a file name can have";
    }
    start = slash + 1;
  }
  return "";
}

std::string cut_path(const std::string& path) {
  constexpr size_t kMax = 48;
  return path.size() <= kMax ? path : path.substr(0, kMax) + "...";
}

void check_folder_path(const std::string& flag, const std::string& dir, bool write) {
  ATELIER_CHECK(!dir.empty(), flag << ": the folder name is empty");
  const std::string too_long = path_length_problem(dir);
  ATELIER_CHECK(too_long.empty(), flag << " " << cut_path(dir) << ": " << too_long);
  std::error_code ec;
  fs::path existing = dir;  // the nearest part of the path that exists: the folder itself or a parent
  while (!fs::exists(existing, ec)) {
    if (!existing.has_parent_path()) {  // a relative name's first part: its parent is the working folder
      existing = ".";
      break;
    }
    existing = existing.parent_path();
  }
  const bool itself = existing == fs::path(dir);
  ATELIER_CHECK(fs::is_directory(existing, ec),
                flag << " " << dir << ": " << (itself ? "" : existing.string() + " is ") << "not a folder");
  ATELIER_CHECK((!write && itself) || ::access(existing.c_str(), W_OK | X_OK) == 0,
                flag << " " << dir << ": cannot write into " << existing.string());
}

void prepare_run_dir(const std::string& run_dir) {
  ATELIER_CHECK(!run_dir.empty(), "--out: the run folder name is empty");
  for (const std::string& dir : {run_dir, samples_dir(run_dir), checkpoints_dir(run_dir)}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    ATELIER_CHECK(!ec, "--out " << run_dir << ": cannot create the folder " << dir << ": " << ec.message());
  }
  const std::string probe = run_dir + "/.write-probe." + std::to_string(::getpid());
  std::FILE* f = std::fopen(probe.c_str(), "w");
  ATELIER_CHECK_ERRNO(f != nullptr, "--out " << run_dir << ": the folder is not writable");
  std::fclose(f);
  std::remove(probe.c_str());
}

bool holds_run(const std::string& run_dir) {
  std::error_code ec;  // a folder that cannot be looked at holds no run that can be continued (nor thrown at us)
  return fs::exists(metrics_path(run_dir), ec) || !list_checkpoints(run_dir).empty();
}

RunFolderLock::~RunFolderLock() { ::close(fd_); }  // closing the file drops the flock

namespace {

// The holds this process has, by the folder's canonical path (two spellings of one folder are one hold). An entry
// whose last holder has gone is dropped at the next look, so the map holds only live holds however many folders a
// process trains in.
struct Holds {
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<const RunFolderLock>> by_folder;
  void drop_ended() {  // with `mutex` held
    std::erase_if(by_folder, [](const auto& entry) { return entry.second.expired(); });
  }
};
Holds& holds() {
  static Holds h;
  return h;
}

// The refusal of a run folder whose lock file, open on `fd`, another process holds: closes fd, names that process.
[[noreturn]] void refuse_held(const std::string& run_dir, int fd) {
  char text[32] = {};  // the holder's pid, as it wrote it
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  ::close(fd);
  std::string pid = n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string();
  pid.erase(std::find_if(pid.begin(), pid.end(), [](char c) { return c < '0' || c > '9'; }), pid.end());
  ATELIER_FAIL("--out " << run_dir << ": another began train" << (pid.empty() ? "" : " (process " + pid + ")")
                        << " is writing this run folder; wait for it to end, or stop it");
}

// This process's live hold of run_dir (its canonical path `key`), if any; h.mutex held.
std::shared_ptr<const RunFolderLock> held_here(Holds& h, const std::string& key) {
  h.drop_ended();
  const auto found = h.by_folder.find(key);
  return found == h.by_folder.end() ? nullptr : found->second.lock();
}

}  // namespace

size_t held_run_dirs() {
  Holds& h = holds();
  std::lock_guard<std::mutex> guard(h.mutex);
  h.drop_ended();
  return h.by_folder.size();
}

void check_not_held(const std::string& run_dir) {
  std::error_code ec;
  const std::string key = fs::weakly_canonical(run_dir, ec).string();
  Holds& h = holds();
  std::lock_guard<std::mutex> guard(h.mutex);
  if (ec || held_here(h, key) != nullptr) return;  // unresolvable (lock_run_dir says why), or held by this process
  const int fd = ::open((run_dir + "/.lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // no lock file: no holder to name (lock_run_dir has the last word)
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) refuse_held(run_dir, fd);
  ::close(fd);
}

std::shared_ptr<const RunFolderLock> lock_run_dir(const std::string& run_dir) {
  std::error_code ec;
  const std::string key = fs::weakly_canonical(run_dir, ec).string();
  ATELIER_CHECK(!ec, "--out " << run_dir << ": cannot resolve the folder: " << ec.message());
  Holds& h = holds();
  std::lock_guard<std::mutex> guard(h.mutex);
  if (std::shared_ptr<const RunFolderLock> mine = held_here(h, key)) return mine;

  const std::string path = run_dir + "/.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ATELIER_CHECK_ERRNO(fd >= 0, "--out " << run_dir << ": cannot open its lock file " << path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) refuse_held(run_dir, fd);
    ::close(fd);
    ATELIER_FAIL("--out " << run_dir << ": cannot lock " << path << ": " << std::strerror(err));
  }
  // The pid is only for the message of a refused second run: the flock alone keeps it out, so a failed write does
  // not stop this run. It is said, though: a few bytes that cannot be written into the run folder (a full disk, an
  // I/O error) are news the run's own files will soon give less kindly.
  const std::string me = std::to_string(::getpid()) + "\n";
  const ssize_t written = ::ftruncate(fd, 0) == 0 ? ::pwrite(fd, me.data(), me.size(), 0) : -1;
  if (written != static_cast<ssize_t>(me.size())) {
    std::fprintf(stderr,
                 "began train: warning: cannot write this process's pid into %s (%s); the folder is held all the "
                 "same, but a second began train on it will not be told which process holds it\n",
                 path.c_str(), written >= 0 ? "a short write" : std::strerror(errno));
  }
  auto lock = std::make_shared<const RunFolderLock>(fd);
  h.by_folder[key] = lock;
  return lock;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text, "began train: ");  // one atomic writer for every file a run leaves
}

// ---- MetricsLog ----

MetricsLog::MetricsLog(const std::string& path, bool fresh) : path_(path) {
  file_ = std::fopen(path.c_str(), fresh ? "w" : "a");
  ATELIER_CHECK_ERRNO(file_ != nullptr, "cannot open " << path << (fresh ? " for writing" : " for appending"));
  if (fresh) {
    std::fprintf(file_, "%s\n", kMetricsHeader);
    std::fflush(file_);
  }
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::append(int64_t epoch, int64_t step, const StepResult& r, double lr, double time_s) {
  std::ostringstream row;
  row << epoch << ',' << step;
  for (double v : {r.loss_real, r.loss_fake_d, r.loss_fake_g, r.loss_d, r.loss_g, r.k_t, r.m_global, lr}) {
    row << ',' << shortest_text(v);
  }
  char time[32];
  std::snprintf(time, sizeof time, ",%.3f\n", time_s);
  row << time;
  const std::string text = row.str();
  const bool ok = std::fwrite(text.data(), 1, text.size(), file_) == text.size() && std::fflush(file_) == 0;
  ATELIER_CHECK_ERRNO(ok, "writing " << path_ << " failed");
}

void MetricsLog::truncate(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  ATELIER_CHECK_ERRNO(in.good(), "--resume: cannot read " << path);
  std::string line, kept;
  ATELIER_CHECK(std::getline(in, line) && line == kMetricsHeader,
                "--resume: " << path << " does not start with the header " << kMetricsHeader);
  kept = line + "\n";
  int64_t rows = 0;
  while (rows < last_step && std::getline(in, line)) {
    // Row i holds step i: "epoch,step,...".
    const size_t comma = line.find(',');
    const std::string step =
        comma == std::string::npos ? "" : line.substr(comma + 1, line.find(',', comma + 1) - comma - 1);
    ATELIER_CHECK(step == std::to_string(rows + 1), "--resume: " << path << ": row " << rows + 1 << " is for step '"
                                                                 << step << "', expected " << rows + 1);
    kept += line + "\n";
    ++rows;
  }
  ATELIER_CHECK(rows == last_step, "--resume: " << path << " has " << count_text(rows, "row")
                                                << ", fewer than the checkpoint's " << count_text(last_step, "step"));
  write_text_atomically(path, kept);
}

}  // namespace atelier::began
