// The settings of a training run (began/train_config.h): their checks, the --smoke preset, and the resume merge.
#include "began/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <vector>

#include "backends/backend.h"
#include "backends/error.h"
#include "backends/thread_pool.h"
#include "began/data/synthetic.h"
#include "began/image_io.h"
#include "began/number_text.h"
#include "began/run_files.h"
#include "began/run_settings.h"
#include "began/train_checkpoint.h"
#include "nn/optim.h"
#include "tensor/creation.h"

namespace atelier::began {

namespace {

constexpr int64_t kLongestDefaultWindow = 2000;  // --lr-window 0: one epoch, at most this many steps
// Bounds on what a run holds in memory at once: the synthetic set's shuffled order (8 bytes an image) and one grid
// of samples with its fixed z. Far above any useful value; they turn a typo into one line instead of an allocation
// failure after the run folder was made.
constexpr int64_t kMaxSyntheticSize = 100000000;
constexpr int64_t kMaxSampleCount = 10000;
// And on the model: 2^31 parameters are 8 GB of weights, 32 GB with their gradients and Adam's two moments, over a
// hundred times the paper's largest D and G (15 million). A --n or --h with a digit too many is refused up front
// instead of failing to allocate after the run folder was made.
constexpr double kMaxParameters = 2147483648.0;

// ---- Checking the settings (resolve_config) ----

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  ATELIER_CHECK(name == "cuda", "--device: '" << name << "' is not a device (cpu or cuda)");
  return Device::cuda(0);
}

// Doubles are quoted in their shortest exact form (shortest_text): --gamma 1.0000001 is not "got 1".
void check_ranges(const TrainConfig& c) {
  ATELIER_CHECK(c.data == "fashion-mnist" || c.data == "synthetic" || c.data == "folder",
                "--data: '" << c.data << "' is not a data set (fashion-mnist, synthetic or folder)");
  ATELIER_CHECK(c.crop >= 0, "--crop must be >= 0 (0: the largest centred square), got " << c.crop);
  for (const auto& [key, path] : {std::pair{"out", &c.out}, {"data_dir", &c.data_dir}, {"cache", &c.cache}}) {
    ATELIER_CHECK(is_utf8(*path), flag_name(key) << " " << *path
                                                 << ": the name is not valid UTF-8, and config.json and the "
                                                    "checkpoints record it as JSON text; rename it");
  }
  // A flag of another data set is refused rather than ignored (--synthetic-size 100 does not make the run synthetic).
  const std::vector<std::pair<std::string, std::vector<std::string>>> data_flags = {
      {"crop", {"folder"}},
      {"flip", {"folder"}},
      {"cache", {"folder"}},
      {"synthetic_size", {"synthetic"}},
      {"data_dir", {"fashion-mnist", "folder"}}};
  for (const auto& [key, sets] : data_flags) {
    ATELIER_CHECK(!c.given.count(key) || std::find(sets.begin(), sets.end(), c.data) != sets.end(),
                  flag_name(key) << " applies to --data " << sets[0] << (sets.size() > 1 ? " or " + sets[1] : "")
                                 << " only (the data is " << c.data << ")");
  }
  check_model_config(c.model);
  const double parameters = parameter_count(c.model);
  ATELIER_CHECK(parameters <= kMaxParameters,
                "--n " << c.model.n << " and --h " << c.model.h << " at --image-size " << c.model.image_size
                       << " make D and G " << parameters << " parameters together, more than a run can hold (at most "
                       << static_cast<int64_t>(kMaxParameters) << "; the paper's largest D and G have 15 million)");
  ATELIER_CHECK(c.synthetic_size >= 1 && c.synthetic_size <= kMaxSyntheticSize,
                "--synthetic-size must be from 1 to " << kMaxSyntheticSize << ", got " << c.synthetic_size);
  ATELIER_CHECK(c.batch >= 1, "--batch must be >= 1, got " << c.batch);
  ATELIER_CHECK(c.step.gamma > 0 && c.step.gamma <= 1,
                "--gamma must be in (0, 1], got " << shortest_text(c.step.gamma));
  ATELIER_CHECK(c.step.lambda_k >= 0 && std::isfinite(c.step.lambda_k),
                "--lambda-k must be finite and >= 0, got " << shortest_text(c.step.lambda_k));
  ATELIER_CHECK(c.step.pull_away >= 0 && std::isfinite(c.step.pull_away),
                "--pull-away must be finite and >= 0 (0: off), got " << shortest_text(c.step.pull_away));
  ATELIER_CHECK(c.step.pull_away == 0 || c.batch >= 2,
                "--pull-away compares pairs of G's images in a batch: it needs --batch >= 2, got " << c.batch);
  ATELIER_CHECK(c.k0 >= 0 && c.k0 <= 1, "--k0 must be in [0, 1] (k_t is clipped to it), got " << shortest_text(c.k0));
  ATELIER_CHECK(c.lr > 0 && std::isfinite(c.lr), "--lr must be finite and > 0, got " << shortest_text(c.lr));
  ATELIER_CHECK(c.beta1 >= 0 && c.beta1 < 1, "--beta1 must be in [0, 1), got " << shortest_text(c.beta1));
  ATELIER_CHECK(c.beta2 >= 0 && c.beta2 < 1, "--beta2 must be in [0, 1), got " << shortest_text(c.beta2));
  ATELIER_CHECK(c.lr_window >= 0, "--lr-window must be >= 0 (0: one epoch), got " << c.lr_window);
  ATELIER_CHECK(c.lr_threshold >= 0 && c.lr_threshold < 1,
                "--lr-threshold must be in [0, 1), got " << shortest_text(c.lr_threshold));
  ATELIER_CHECK(c.lr_factor > 0 && c.lr_factor < 1,
                "--lr-factor must be in (0, 1), got " << shortest_text(c.lr_factor));
  ATELIER_CHECK(c.lr_min >= 0 && std::isfinite(c.lr_min),
                "--lr-min must be finite and >= 0, got " << shortest_text(c.lr_min));
  // A floor above the starting rate: the schedule would never lower the rate (nor raise it), so --lr-factor and
  // --lr-threshold would do nothing. Equal is a constant rate, said plainly. A resume takes both from its checkpoint
  // and can change neither, so only a fresh run is refused (a run started before this check still resumes).
  ATELIER_CHECK(!c.resume.empty() || c.lr_min <= c.lr,
                "--lr-min " << shortest_text(c.lr_min) << (c.given.count("lr_min") ? "" : " (the default)")
                            << " is above --lr " << shortest_text(c.lr)
                            << ": the rate starts below its floor and would never decay; give an --lr-min "
                               "of at most --lr (equal: a constant rate)");
  ATELIER_CHECK(c.epochs >= 1, "--epochs must be >= 1, got " << c.epochs);
  ATELIER_CHECK(c.steps >= 0, "--steps must be >= 0 (0: --epochs decides), got " << c.steps);
  ATELIER_CHECK(!c.given.count("epochs") || c.steps == 0,
                "--epochs " << c.epochs << " does nothing: --steps " << c.steps
                            << (c.given.count("steps") ? "" : " (the run's, from its checkpoint)")
                            << " sets the run's length; give one of them (--steps 0 lets --epochs decide)");
  ATELIER_CHECK(
      c.threads >= 0 && c.threads <= kMaxThreads,
      "--threads must be from 0 to " << kMaxThreads << " (0: ATELIER_NUM_THREADS or all cores), got " << c.threads);
  ATELIER_CHECK(c.cuda_graph == "auto" || c.cuda_graph == "on" || c.cuda_graph == "off",
                "--cuda-graph: '" << c.cuda_graph << "' is not on, off or auto");
  ATELIER_CHECK(c.checkpoint_every >= 1, "--checkpoint-every must be >= 1, got " << c.checkpoint_every);
  ATELIER_CHECK(c.sample_every >= 1, "--sample-every must be >= 1, got " << c.sample_every);
  ATELIER_CHECK(c.sample_count >= 1 && c.sample_count <= kMaxSampleCount,
                "--sample-count must be from 1 to " << kMaxSampleCount << ", got " << c.sample_count);
  ATELIER_CHECK(c.progress_seconds >= 0, "--progress-seconds must be >= 0, got " << shortest_text(c.progress_seconds));
  ATELIER_CHECK(c.precision == "fp32" || c.precision == "tf32" || c.precision == "bf16",
                "--precision: '" << c.precision << "' is not a precision atelier has (fp32, tf32 or bf16)");
}

int64_t dataset_size(const TrainConfig& c) {
  if (c.data == "synthetic") return c.synthetic_size;
  ATELIER_CHECK(c.folder != nullptr || c.fashion_mnist.defined(),
                "--data " << c.data << ": the images are not loaded (call resolve_config first)");
  return c.data == "folder" ? c.folder->count() : c.fashion_mnist.size(0);
}

void print_line(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The data of a fashion-mnist or folder run, read before anything is written into the run folder, so that a data
// set that cannot be read (an empty or damaged file, a folder without usable images) is refused with the folder
// left as it was. Folder runs decode (or read from the cache) their images; the summary line comes once the run
// folder holds image_folder.txt (write_folder_names).
void load_data(TrainConfig& c) {
  if (c.data == "fashion-mnist") {
    c.fashion_mnist = load_fashion_mnist(c.data_dir, true).images;
  } else if (c.data == "folder") {
    c.folder = std::make_shared<ImageFolderData>(load_image_folder({.dir = c.data_dir,
                                                                    .image_size = c.model.image_size,
                                                                    .channels = c.model.channels,
                                                                    .crop = c.crop,
                                                                    .cache_dir = c.cache,
                                                                    .log = print_line}));
  }
}

// --data folder: the names of the skipped and rejected files into <out>/image_folder.txt, and the summary line.
void write_folder_names(const TrainConfig& c) {
  const std::string names = c.out + "/image_folder.txt";
  write_text_atomically(names, c.folder->report());
  print_line("--data-dir " + c.data_dir + ": " + c.folder->summary() + " (names in " + names + ")");
}

// The data set holds a batch, and --epochs of it is a step count an int64_t holds (when --steps does not decide).
void check_epoch_steps(const TrainConfig& c) {
  const int64_t size = dataset_size(c);
  ATELIER_CHECK(size >= c.batch, "--batch " << c.batch << " is larger than the data set (" << count_text(size, "image")
                                            << (c.data == "folder" ? " in " + c.data_dir : std::string())
                                            << "): an epoch would have no step");
  const int64_t per_epoch = size / c.batch;
  ATELIER_CHECK(c.steps > 0 || c.epochs <= std::numeric_limits<int64_t>::max() / per_epoch,
                "--epochs " << c.epochs << " times " << per_epoch
                            << " steps per epoch is more steps than a run can count (2^63 - 1); use fewer");
}

void check_data(const TrainConfig& c) {
  // A resume reads the folder its checkpoint records unless --data-dir says where it is now: say so when it is gone.
  std::error_code ec;
  ATELIER_CHECK(c.resume.empty() || c.given.count("data_dir") || c.data == "synthetic" ||
                    std::filesystem::is_directory(c.data_dir, ec),
                "--resume " << c.resume << ": the run's " << (c.data == "folder" ? "image" : "Fashion-MNIST")
                            << " folder " << c.data_dir
                            << " (recorded in its checkpoint) is not a folder here; pass --data-dir where it is now");
  if (c.data == "folder") {
    ATELIER_CHECK(c.given.count("data_dir") || c.resume.size(),
                  "--data folder needs --data-dir, the folder of JPEG/PNG images");
    ATELIER_CHECK(
        c.model.channels == 1 || c.model.channels == 3,
        "--data folder makes 1-channel (luma) or 3-channel (RGB) images, not --channels " << c.model.channels);
    check_data_dir(c.data_dir);
    // The folder is walked recursively on every start: a run folder inside it would add its own sample grids to
    // the training images at the next --resume.
    auto absolute = [&](const std::string& dir) {  // without "..", links or a trailing "/" (an empty last part)
      std::filesystem::path p = std::filesystem::weakly_canonical(dir, ec);
      return p.has_filename() ? p : p.parent_path();
    };
    const std::filesystem::path data = absolute(c.data_dir), out = absolute(c.out);
    ATELIER_CHECK(data.empty() || out.empty() ||  // a path that cannot be resolved: not known to be inside
                      std::mismatch(data.begin(), data.end(), out.begin(), out.end()).first != data.end(),
                  "--out " << c.out << " is inside --data-dir " << c.data_dir
                           << ": its sample grids would join the training images; put the run folder elsewhere");
    // The cache folder is made when the decoded images are written: a file in its place, or a parent that cannot
    // hold it, would fail only then. An existing cache folder may be read-only (it may hold the cache already).
    if (!c.cache.empty()) check_folder_path("--cache", c.cache, /*write=*/false);
    return;
  }
  if (c.data == "fashion-mnist") {
    ATELIER_CHECK(c.model.image_size == 32 && c.model.channels == 1,
                  "--data fashion-mnist is 32x32 with 1 channel; --image-size "
                      << c.model.image_size << " --channels " << c.model.channels << " needs --data synthetic");
    // A missing folder is told below with the package to install; a file, or one that cannot be looked at, here.
    const std::string problem = folder_problem(c.data_dir);
    ATELIER_CHECK(problem.empty() || problem == "no such folder", "--data-dir " << c.data_dir << ": " << problem);
    const std::string images = c.data_dir + "/train-images-idx3-ubyte";
    std::error_code ec;
    ATELIER_CHECK(
        std::filesystem::exists(images + ".gz", ec) || std::filesystem::exists(images, ec),
        "--data-dir " << c.data_dir << ": no " << images
                      << ".gz (install Debian's dataset-fashion-mnist, or point --data-dir at the IDX files)");
  }
  if (c.data == "synthetic") {  // the constructor checks the image size and channels the set can paint
    const SyntheticShapes shapes(
        {.size = c.synthetic_size, .image_size = c.model.image_size, .channels = c.model.channels});
    (void)shapes;
  }
}

}  // namespace

// --device cuda works as soon as the CUDA backend supports every primitive a BEGAN step runs. Rather than keep a
// list of those primitives, one step of a one-filter model runs on the device: each primitive's launch asks the
// backend's supports() first, so the first one missing is named. Nothing of it is kept.
void check_device(const std::string& name) {
  const Device device = parse_device(name);
  if (device.is_cpu()) return;
  Backend* cuda = cuda_backend_or_null();
  ATELIER_CHECK(cuda != nullptr, "--device cuda: this build has no CUDA backend (configure with -DATELIER_CUDA=ON)");
  ATELIER_CHECK(cuda->available(), "--device cuda: no CUDA device is available");
  try {
    const ModelConfig tiny{.image_size = 32, .channels = 1, .n = 1, .h = 1};
    Generator G(tiny);
    Discriminator D(tiny);
    G.to(device);
    D.to(device);
    nn::Adam opt_g(G.parameters()), opt_d(D.parameters());
    double k = 0;
    began_step(G, D, opt_g, opt_d, zeros({1, 1, 32, 32}, DType::Float32, device),
               sample_z(1, 1, 0, 1, LatentStream::discriminator, device),
               sample_z(1, 1, 0, 1, LatentStream::generator, device), k);
  } catch (const Error& e) {
    ATELIER_FAIL("--device cuda: a BEGAN step cannot run on the CUDA backend yet (" << e.what()
                                                                                    << "); train with --device cpu");
  }
}

Device train_device(const TrainConfig& config) { return parse_device(config.device); }

bool uses_cuda_graph(const TrainConfig& config) {
  return config.cuda_graph == "on" || (config.cuda_graph == "auto" && !train_device(config).is_cpu());
}

namespace {

// The "key value" lines of a file as numbers times `unit` (/proc/meminfo's "MemAvailable:   11843372 kB" with
// unit 1024 -> {"MemAvailable", 12127612928}; a cgroup's memory.stat "file 2147483648" with unit 1). A key's
// trailing ':' is dropped; the rest of each line (a unit) is ignored. Empty when the file cannot be read.
std::map<std::string, double> number_lines(const std::string& path, double unit) {
  std::map<std::string, double> fields;
  std::ifstream in(path);
  std::string key;
  double value = 0;
  while (in >> key >> value) {
    if (!key.empty() && key.back() == ':') key.pop_back();
    fields[key] = value * unit;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return fields;
}

double field_or(const std::map<std::string, double>& fields, const std::string& key, double missing) {
  const auto found = fields.find(key);
  return found == fields.end() ? missing : found->second;
}

// A cgroup v2 file's one number ("max": no limit; absent: unknown; both negative).
double cgroup_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return -1;
  return std::strtod(word.c_str(), nullptr);
}

}  // namespace

FreeMemory free_memory(const std::string& meminfo_path, const std::string& cgroup_dir) {
  const std::map<std::string, double> meminfo = number_lines(meminfo_path, 1024);
  FreeMemory free{field_or(meminfo, "MemAvailable", -1), field_or(meminfo, "SwapFree", -1)};
  auto cap = [](double& value, double limit, double used) {
    if (limit >= 0 && used >= 0) value = value < 0 ? limit - used : std::min(value, limit - used);
  };
  // The group's page cache counts in memory.current but is given back before its OOM killer acts, as
  // MemAvailable counts it available: it is not counted as used.
  const double file_cache = field_or(number_lines(cgroup_dir + "/memory.stat", 1), "file", 0);
  const double current = cgroup_number(cgroup_dir + "/memory.current");
  cap(free.memory_bytes, cgroup_number(cgroup_dir + "/memory.max"), current < 0 ? -1 : current - file_cache);
  cap(free.swap_bytes, cgroup_number(cgroup_dir + "/memory.swap.max"),
      cgroup_number(cgroup_dir + "/memory.swap.current"));
  return free;
}

std::string bytes_text(double bytes) {
  char text[48];
  if (bytes < 1024.0 * 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.0f MiB", bytes / (1024.0 * 1024));
  } else {
    std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  }
  return text;
}

std::string step_memory_problem(const TrainConfig& c, const FreeMemory& free, std::string* note) {
  if (!train_device(c).is_cpu() || free.memory_bytes < 0) return "";  // the GPU's memory is not estimated
  const double need = step_memory(c.model, c.batch).total();
  const double swap = std::max(0.0, free.swap_bytes);
  std::ostringstream os;
  os << "--image-size " << c.model.image_size << " --n " << c.model.n << " --batch " << c.batch
     << ": a training step needs about " << bytes_text(need) << ", more than the ";
  const std::string needs = os.str();  // the start of both messages
  if (need > free.memory_bytes + swap) {
    return needs + bytes_text(free.memory_bytes + swap) + " free here (memory and swap); lower --batch, --n or " +
           "--image-size";
  }
  if (need > free.memory_bytes && note != nullptr) {
    *note = "note: " + needs + bytes_text(free.memory_bytes) + " of free memory: the run will swap, and be slow";
  }
  return "";
}

int64_t steps_per_epoch(const TrainConfig& c) { return dataset_size(c) / c.batch; }  // drop_last
int64_t total_steps(const TrainConfig& c) { return c.steps > 0 ? c.steps : c.epochs * steps_per_epoch(c); }

TrainConfig smoke_config(TrainConfig c) {
  auto preset = [&](const char* key, auto& field, auto value) {
    if (!c.given.count(key)) field = value;
  };
  preset("data", c.data, std::string("synthetic"));
  preset("synthetic_size", c.synthetic_size, int64_t{100});  // 12 steps per epoch, 4 images dropped
  preset("image_size", c.model.image_size, int64_t{32});
  preset("channels", c.model.channels, int64_t{1});
  preset("n", c.model.n, int64_t{8});
  preset("h", c.model.h, int64_t{16});
  preset("batch", c.batch, int64_t{8});
  if (!c.given.count("epochs")) preset("steps", c.steps, int64_t{36});  // --smoke --epochs N: N epochs
  preset("lr_window", c.lr_window, int64_t{8});
  preset("checkpoint_every", c.checkpoint_every, int64_t{10});
  preset("sample_every", c.sample_every, int64_t{10});
  preset("sample_count", c.sample_count, int64_t{16});
  preset("progress_seconds", c.progress_seconds, 0.5);
  return c;
}

namespace {

// After "no checkpoint in DIR/checkpoints" when DIR holds a run (its metrics.csv).
constexpr const char* kStoppedEarly =
    ": the run stopped before its first one, so there is nothing to resume; start it afresh with another --out";

// --resume: the run folder's newest checkpoint, and the settings it fixes.
TrainConfig with_checkpoint_settings(const TrainConfig& config, int64_t& checkpoint_step) {
  TrainConfig c = config;
  std::error_code ec;  // the same folder spelled another way ("runs/x/", "./runs/x") is the same folder
  ATELIER_CHECK(!c.given.count("out") || c.out == c.resume || std::filesystem::equivalent(c.out, c.resume, ec),
                "--out " << c.out << " and --resume " << c.resume << ": a resumed run stays in its folder");
  c.out = c.resume;
  // Not "no checkpoint in X/checkpoints" for a typo or a checkpoint's own path: say what X is.
  const std::string problem = folder_problem(c.resume);
  ATELIER_CHECK(problem.empty(), "--resume " << c.resume << ": " << problem
                                             << (problem == "not a folder"
                                                     ? "; --resume takes the run folder (the run's --out), not a file"
                                                     : ""));
  std::vector<std::string> checkpoints = list_checkpoints(c.resume);
  ATELIER_CHECK(!checkpoints.empty(), "--resume " << c.resume << ": no checkpoint in " << checkpoints_dir(c.resume)
                                                  << (holds_run(c.resume) ? kStoppedEarly : ""));
  c.resume_checkpoint = checkpoints.back();
  std::map<std::string, std::string> metadata;
  try {
    metadata = read_train_metadata(c.resume_checkpoint);  // reads the whole file: a cut-off tensor fails here too
  } catch (const Error& e) {
    // Saves are atomic, so a damaged newest file came from elsewhere (a copy cut short, a failing disk).
    if (checkpoints.size() < 2) throw;
    ATELIER_FAIL(e.what() << "; the one before it is " << checkpoints[checkpoints.size() - 2]
                          << ": move the damaged file aside to resume from there");
  }
  c = merge_checkpoint_settings(c, metadata, c.resume_checkpoint);
  const TrainPosition position = train_position(metadata, c.resume_checkpoint);
  const auto images = metadata.find("data_images");
  if (images != metadata.end()) c.resume_data_images = images->second;
  if (!c.given.count("threads")) c.threads = position.threads;  // the same count: bit-exact
  checkpoint_step = position.step;
  return c;
}

}  // namespace

TrainConfig resolve_config(const TrainConfig& config) {
  // An empty --resume (an unset variable in a script) is not "no --resume": that would start a fresh run at --out.
  ATELIER_CHECK(!config.given.count("resume") || !config.resume.empty(),
                "--resume: the folder name is empty (it takes the folder of the run to continue)");
  int64_t checkpoint_step = 0;
  TrainConfig c = config.resume.empty() ? config : with_checkpoint_settings(config, checkpoint_step);
  check_ranges(c);
  check_device(c.device);
  std::string swap_note;  // before the data is read: a step that cannot fit is refused at once
  const std::string too_big = step_memory_problem(c, free_memory(), &swap_note);
  ATELIER_CHECK(too_big.empty(), too_big);
  if (!swap_note.empty()) print_line(swap_note);
  check_data(c);  // what can be checked without reading the data: the batch is checked once it is loaded
  if (c.resume.empty()) {
    // A run writes config.json, metrics.csv, report.html, samples/ and checkpoints/ into --out: not among the
    // system's folders (root may write there, and `--out /` from a slip would).
    std::error_code root_ec;
    ATELIER_CHECK(std::filesystem::weakly_canonical(c.out, root_ec) != std::filesystem::path("/"),
                  "--out " << c.out << " is the root folder: give the run a folder of its own (say --out runs/began)");
    check_not_held(c.out);  // a run that another process is writing now: name it (neither message below fits)
    // A run stopped before its first checkpoint has nothing to resume: say so, not "continue it with --resume".
    ATELIER_CHECK(!holds_run(c.out) || !list_checkpoints(c.out).empty(),
                  "--out " << c.out << " holds a run stopped before its first checkpoint (nothing to resume): pick "
                           << "another --out, or remove " << c.out);
    ATELIER_CHECK(!holds_run(c.out), "--out " << c.out << " already holds a run: continue it with --resume " << c.out
                                              << ", or pick another --out");
    // Nor a folder with files of the names a run writes: they are someone else's (files of other names are fine).
    for (const char* name : {"config.json", "report.html", "losses.svg", "samples/step_0000000.png"}) {
      std::error_code ec;
      ATELIER_CHECK(!std::filesystem::exists(c.out + "/" + name, ec),
                    "--out " << c.out << " holds " << name
                             << " but no run of began train: a run would overwrite it; pick another --out");
    }
  }
  check_folder_path("--out", c.out, /*write=*/true);  // a typo in --out is refused before the data is read
  // A resumed run's folder exists: it is held before the data is read, so that a second process on it is refused
  // at once rather than after decoding an image folder.
  if (!c.resume.empty()) c.run_lock = lock_run_dir(c.out);
  load_data(c);
  check_epoch_steps(c);
  // The epochs, the shuffled order and the flips are the run's only with the same images.
  ATELIER_CHECK(c.folder == nullptr || c.resume_data_images.empty() || c.resume_data_images == c.folder->fingerprint(),
                "--resume: the image folder " << c.data_dir << " now gives " << c.folder->fingerprint()
                                              << ", the run trained on " << c.resume_data_images
                                              << " (files added, removed or renamed): the resume would not continue "
                                                 "the same run; restore the folder, or start a new run");
  ATELIER_CHECK(checkpoint_step <= total_steps(c), "--resume " << c.resume << ": the run is at step " << checkpoint_step
                                                               << ", beyond the " << count_text(total_steps(c), "step")
                                                               << " asked for (raise --steps or --epochs)");
  // Every check above leaves the run folder as it was; only now is it made (a fresh run) and written.
  prepare_run_dir(c.out);
  if (c.run_lock == nullptr) c.run_lock = lock_run_dir(c.out);
  if (c.folder != nullptr) write_folder_names(c);
  if (c.lr_window == 0) c.lr_window = std::min(steps_per_epoch(c), kLongestDefaultWindow);
  return c;
}

}  // namespace atelier::began
