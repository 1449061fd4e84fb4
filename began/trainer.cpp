// The BEGAN training loop (began/trainer.h): building the data and the model, the steps, and what happens around
// them (metrics, samples, checkpoints, signals, divergence).
#include "began/trainer.h"

#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>

#include "autograd/functions.h"
#include "backends/error.h"
#include "backends/precision.h"
#include "backends/thread_pool.h"
#include "began/data/synthetic.h"
#include "began/number_text.h"
#include "began/report.h"
#include "began/run_files.h"
#include "began/run_settings.h"
#include "began/step_runner.h"
#include "began/train_checkpoint.h"
#include "began/train_progress.h"
#include "nn/data/dataloader.h"
#include "nn/data/dataset.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/readback.h"
#include "tensor/upload.h"

namespace atelier::began {

namespace {

// ---- Signals ----

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void record_stop_signal(int sig) { g_stop_signal = sig; }

// Catches SIGINT and SIGTERM while a run is under way (the loop checks at each step boundary) and restores the
// previous handlers afterwards.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = record_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int received() const { return g_stop_signal; }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

bool finite(const StepResult& r) {
  for (double v : {r.loss_real, r.loss_fake_d, r.loss_fake_g, r.loss_d, r.loss_g, r.k_t, r.m_global}) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

bool parameters_finite(const nn::Module& m) {
  NoGradGuard no_grad;
  for (const Tensor& p : m.parameters()) {
    if (!std::isfinite(sum(abs(p)).item<double>())) return false;
  }
  return true;
}

// ---- The run ----

class Trainer {
 public:
  Trainer(const TrainConfig& config, const TrainHooks& hooks);
  TrainOutcome run();

 private:
  void build_data();
  void build_model();
  void start_fresh();
  void resume();

  // A step queued on the device whose scalars are still on their way to the host (readbacks_[step % 2]).
  struct LaunchedStep {
    int64_t step = 0;   // its number
    int64_t epoch = 0;  // the epoch it belongs to, 0-based
    double lr = 0;      // the rate it used
    bool epoch_done = false;
    double queued_s = 0;  // elapsed_s() when it was queued (on the CPU: when it had run)
  };
  // Queues one step on batch x (no host read: the scalars stay on the device, their copy to the host queued).
  LaunchedStep launch_step(const Tensor& x);
  // Batch x (on the CPU, from the loader) on the training device: as it is on the CPU, else through upload_ (the
  // host does not wait for the device to take it).
  Tensor on_device(const Tensor& x);
  // Whether the host must handle step s's results before the next step is queued: the schedule may change the
  // rate, or samples, a checkpoint or the run's end need the parameters as step s left them.
  bool host_needed_after(const LaunchedStep& s) const;
  // Reads step s's scalars, then metrics.csv, the schedule, the progress line, samples and checkpoints. Returns
  // an outcome when the run must stop there.
  std::optional<TrainOutcome> after_step(const LaunchedStep& s);
  // after_step of the step still in flight, if any.
  std::optional<TrainOutcome> drain();
  TrainOutcome diverged(const StepResult& r, int64_t step);
  TrainOutcome finish();

  void save_samples(const std::string& path);
  void save_checkpoint();
  double elapsed_s() const;
  void log(const std::string& line) const;

  TrainConfig config_;
  TrainHooks hooks_;
  Device device_;
  std::unique_ptr<nn::DataLoader> loader_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;

  std::shared_ptr<Generator> G_;
  std::shared_ptr<Discriminator> D_;
  std::unique_ptr<nn::Adam> opt_g_, opt_d_;
  std::unique_ptr<nn::WindowPlateauLR> schedule_;
  Tensor fixed_z_;  // (sample_count, h)
  Tensor k_;        // k_t for the next step: 0-d float64 on the device (pos_.k is its value at checkpoints)
  std::unique_ptr<StepRunner> runner_;                        // eager, or captured and replayed (--cuda-graph)
  bool fallback_logged_ = false;                              // the runner's failed capture, said once
  std::array<std::unique_ptr<TensorReadback>, 2> readbacks_;  // step s's scalars come back through [s % 2]
  std::unique_ptr<TensorUpload> upload_;                      // the batches' way up (made for the batch shape)
  std::optional<LaunchedStep> in_flight_;                     // the step queued but not yet read

  TrainPosition pos_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<ProgressMeter> progress_;
  int64_t last_checkpoint_step_ = -1;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  double time_offset_s_ = 0;  // training time of the run before this process (resumed runs)
};

Trainer::Trainer(const TrainConfig& config, const TrainHooks& hooks)
    : config_(config), hooks_(hooks), device_(train_device(config)) {
  if (config_.threads > 0) set_num_threads(config_.threads);
  steps_per_epoch_ = steps_per_epoch(config_);
  total_steps_ = total_steps(config_);
  build_data();
  build_model();
  if (config_.resume_checkpoint.empty()) {
    start_fresh();
  } else {
    resume();
  }
  k_ = scalar_tensor(pos_.k, DType::Float64, device_);
  runner_ = make_step_runner(uses_cuda_graph(config_) ? StepMode::graph : StepMode::eager, *G_, *D_, *opt_g_, *opt_d_,
                             k_, config_.step);
  for (auto& r : readbacks_) r = std::make_unique<TensorReadback>(device_, kStepScalars);
  progress_ = std::make_unique<ProgressMeter>(config_.progress_seconds, config_.batch, elapsed_s());
}

void Trainer::build_data() {
  std::shared_ptr<const nn::Dataset> data;
  if (config_.data == "synthetic") {
    data = std::make_shared<SyntheticShapes>(SyntheticOptions{.size = config_.synthetic_size,
                                                              .image_size = config_.model.image_size,
                                                              .channels = config_.model.channels,
                                                              .seed = config_.seed});
  } else if (config_.data == "folder") {
    ATELIER_CHECK(config_.folder != nullptr,
                  "train: --data folder's images are not loaded (resolve_config loads them)");
    data = std::make_shared<ImageFolderDataset>(config_.folder, config_.flip, config_.seed);
  } else {
    ATELIER_CHECK(config_.fashion_mnist.defined(),
                  "train: --data fashion-mnist's images are not loaded (resolve_config loads them)");
    data = std::make_shared<nn::TensorDataset>(config_.fashion_mnist);
  }
  loader_ = std::make_unique<nn::DataLoader>(
      data,
      nn::DataLoaderOptions{.batch_size = config_.batch, .shuffle = true, .drop_last = true, .seed = config_.seed});
}

void Trainer::build_model() {
  manual_seed(config_.seed);  // parameter initialisation draws from the default generator
  try {
    D_ = std::make_shared<Discriminator>(config_.model);
    G_ = std::make_shared<Generator>(config_.model);
    D_->to(device_);
    G_->to(device_);
  } catch (const Error& e) {  // e.g. out of memory: say which settings asked for it
    ATELIER_FAIL("building D and G (" << model_settings_text(config_) << "): " << e.what());
  }
  const std::array<double, 2> betas = {config_.beta1, config_.beta2};
  opt_d_ = std::make_unique<nn::Adam>(D_->parameters(), config_.lr, betas);
  opt_g_ = std::make_unique<nn::Adam>(G_->parameters(), config_.lr, betas);
  schedule_ = std::make_unique<nn::WindowPlateauLR>(std::vector<nn::Optimizer*>{opt_d_.get(), opt_g_.get()},
                                                    nn::WindowPlateauOptions{.window = config_.lr_window,
                                                                             .threshold = config_.lr_threshold,
                                                                             .factor = config_.lr_factor,
                                                                             .min_lr = config_.lr_min});
  fixed_z_ = sample_z(config_.sample_count, config_.model.h, config_.seed, 0, LatentStream::fixed_samples, device_);
}

void Trainer::start_fresh() {
  pos_.threads = num_threads();
  pos_.k = config_.k0;
  write_text_atomically(config_.out + "/config.json", config_json(config_, pos_.threads));
  metrics_ = std::make_unique<MetricsLog>(metrics_path(config_.out), true);
  log("began train: " + count_text(total_steps_, "step") + " (" + std::to_string(steps_per_epoch_) + " per epoch), " +
      count_text(num_threads(), "thread") + ", D " + std::to_string(D_->num_parameters()) + " and G " +
      std::to_string(G_->num_parameters()) + " parameters, run folder " + config_.out);
  // The schedule compares a window's mean with the best before it, so the rate can first change at the end of the
  // second window. Not refused: a later --resume with more --steps or --epochs may reach it.
  if (total_steps_ < 2 * config_.lr_window) {
    std::ostringstream note;
    note << "note: the learning rate stays at " << config_.lr << " for this run's " << count_text(total_steps_, "step")
         << ": with --lr-window " << config_.lr_window << " it can first change at step " << 2 * config_.lr_window
         << ", after two windows";
    log(note.str());
  }
}

void Trainer::resume() {
  const std::string& path = config_.resume_checkpoint;
  pos_ = train_position(read_train_metadata(path), path);
  load_train_state(path, {*G_, *D_, *opt_g_, *opt_d_, *schedule_, fixed_z_});
  if (pos_.threads != num_threads()) {
    log("note: the checkpoint was made with " + count_text(pos_.threads, "thread") + " and this run uses " +
        std::to_string(num_threads()) + ": it continues, but not bit for bit as an uninterrupted run would");
  }
  pos_.threads = num_threads();
  time_offset_s_ = pos_.time_s;
  last_checkpoint_step_ = pos_.step;
  MetricsLog::truncate(metrics_path(config_.out), pos_.step);
  metrics_ = std::make_unique<MetricsLog>(metrics_path(config_.out), false);
  write_text_atomically(config_.out + "/config.json", config_json(config_, pos_.threads));
  log("began train: resuming " + path + " at step " + std::to_string(pos_.step) + " of " +
      std::to_string(total_steps_) + ", " + count_text(num_threads(), "thread"));
}

// The steps are pipelined by one: step s is queued on the device before step s - 1's scalars are read, so on a GPU
// the host writes metrics.csv while the device works and never waits for it inside a step. Where the host must act
// on a step's results before the next one (host_needed_after), that step is read at once. Either way every step's
// row, schedule update, samples and checkpoint come in step order with exactly the values of an unpipelined run.
TrainOutcome Trainer::run() {
  StopSignals signals;
  if (pos_.step == 0) save_samples(step_sample_path(config_.out, 0));
  while (pos_.step < total_steps_) {
    nn::Epoch epoch = loader_->epoch(pos_.epoch, pos_.batch_in_epoch);
    bool epoch_done = false;
    while (pos_.step < total_steps_ && !epoch_done) {
      std::optional<nn::Batch> batch = epoch.next();
      ATELIER_CHECK(batch.has_value(), "the data loader ended epoch " << pos_.epoch << " early");
      const LaunchedStep launched = launch_step(batch->data);
      epoch_done = launched.epoch_done;
      if (std::optional<TrainOutcome> stop = drain()) return *stop;  // the previous step, read while this one runs
      if (host_needed_after(launched)) {
        if (std::optional<TrainOutcome> stop = after_step(launched)) return *stop;
      } else {
        in_flight_ = launched;
      }
      if (hooks_.after_step) hooks_.after_step(pos_.step);
      if (signals.received()) {
        if (std::optional<TrainOutcome> stop = drain()) return *stop;
        if (last_checkpoint_step_ != pos_.step) save_checkpoint();
        return {TrainOutcome::Status::interrupted, signals.received(), pos_.step, ""};
      }
    }
  }
  if (std::optional<TrainOutcome> stop = drain()) return *stop;
  return finish();
}

// One BEGAN step on batch x: z_D and z_G keyed by (seed, step), D update, G update, k_t update, all queued on the
// device; the copy of its scalars to the host is queued behind them.
Trainer::LaunchedStep Trainer::launch_step(const Tensor& x) {
  const int64_t step = pos_.step + 1;
  const int64_t b = x.size(0), h = config_.model.h;
  Tensor z_d = sample_z(b, h, config_.seed, step, LatentStream::discriminator, device_);
  Tensor z_g = sample_z(b, h, config_.seed, step, LatentStream::generator, device_);
  LaunchedStep launched{step, pos_.epoch, schedule_->lr(), pos_.batch_in_epoch + 1 == steps_per_epoch_};
  // A replayed step overwrites the scalars of the step before: their copy is queued first (start() here).
  try {
    readbacks_[step % 2]->start(runner_->run(on_device(x), z_d, z_g));
  } catch (const OutOfMemoryError& e) {  // say which settings asked for the memory, and what would need less
    ATELIER_OUT_OF_MEMORY("step " << step << " with --batch " << b << " (" << model_settings_text(config_) << ") on "
                                  << device_ << ": " << e.what()
                                  << "; a run with a smaller --batch, --n or --image-size needs less memory");
  }
  launched.queued_s = elapsed_s();
  if (!fallback_logged_ && !runner_->fallback_reason().empty()) {
    log("note: --cuda-graph: the step could not be captured (" + runner_->fallback_reason() +
        "); the run goes on with eager steps, which give the same numbers");
    fallback_logged_ = true;
  }
  pos_.step = step;
  pos_.batch_in_epoch += 1;
  return launched;
}

Tensor Trainer::on_device(const Tensor& x) {
  if (x.device() == device_) return x;
  if (upload_ == nullptr || upload_->shape() != x.shape() || upload_->dtype() != x.dtype()) {
    upload_.reset();  // waits for its copies in flight, then frees its staging buffers
    upload_ = std::make_unique<TensorUpload>(device_, x.shape(), x.dtype());
  }
  return upload_->upload(x.is_contiguous() ? x : x.contiguous());
}

bool Trainer::host_needed_after(const LaunchedStep& s) const {
  return s.step == total_steps_ || s.epoch_done || s.step % config_.sample_every == 0 ||
         s.step % config_.checkpoint_every == 0 || schedule_->next_step_ends_window();
}

std::optional<TrainOutcome> Trainer::drain() {
  if (!in_flight_) return std::nullopt;
  const LaunchedStep s = *in_flight_;
  in_flight_.reset();
  return after_step(s);
}

std::optional<TrainOutcome> Trainer::after_step(const LaunchedStep& s) {
  const StepResult r = step_result(readbacks_[s.step % 2]->wait());
  // When the step was done: on the CPU it ran inside launch_step; on a device its scalars have just arrived, so
  // it finished about now (the host, one step ahead, waited for it). Stamping the CPU's steps here would give
  // each step the time of the next one, and the last two the same time (the last is read right after the one
  // before).
  const double done_s = device_.is_cpu() ? s.queued_s : elapsed_s();
  metrics_->append(s.epoch + 1, s.step, r, s.lr, done_s);
  if (!finite(r)) return diverged(r, s.step);
  schedule_->step(r.m_global);

  progress_->add(r, done_s);
  if (progress_->due(s.step == total_steps_)) {
    log(progress_->line(s.epoch + 1, (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_, s.step, total_steps_,
                        s.lr));
  }
  const bool samples = s.step % config_.sample_every == 0;
  const bool checkpoint = s.epoch_done || s.step % config_.checkpoint_every == 0;
  if (!samples && !checkpoint) return std::nullopt;
  // Samples and checkpoints show the parameters as step s left them: no later step was queued (run()).
  ATELIER_ASSERT(s.step == pos_.step, "step " << s.step << " needs the host but step " << pos_.step << " is queued");
  if (s.epoch_done) {
    pos_.epoch += 1;
    pos_.batch_in_epoch = 0;
  }
  if (samples) save_samples(step_sample_path(config_.out, s.step));
  if (s.epoch_done) save_samples(epoch_sample_path(config_.out, pos_.epoch));
  if (checkpoint) {
    if (!parameters_finite(*G_) || !parameters_finite(*D_)) return diverged(r, s.step);
    save_checkpoint();
  }
  return std::nullopt;
}

TrainOutcome Trainer::diverged(const StepResult& r, int64_t step) {
  std::ostringstream os;
  os << "step " << step << ": the losses are not finite (L(x) " << r.loss_real << ", L(G(z_D)) " << r.loss_fake_d
     << ", L(G(z_G)) " << r.loss_fake_g << ", L_D " << r.loss_d << ", k_t " << r.k_t << ", M_global " << r.m_global
     << "), or the parameters are not; training stopped. ";
  if (last_checkpoint_step_ >= 0) {
    os << "The last good checkpoint is " << checkpoint_path(config_.out, last_checkpoint_step_) << " (step "
       << last_checkpoint_step_ << ")";
  } else {
    os << "No checkpoint was written yet";
  }
  // The steps are deterministic: resuming would stop here again, and a resume cannot change --lr.
  os << "; a new run with a lower --lr";
  if (config_.step.pull_away > 0) os << " or a lower --pull-away (it was " << config_.step.pull_away << ")";
  os << " may help (--resume keeps the run's settings and would stop here again)";
  return {TrainOutcome::Status::diverged, 0, step, os.str()};
}

TrainOutcome Trainer::finish() {
  save_samples(final_sample_path(config_.out));
  if (last_checkpoint_step_ != pos_.step) {
    ATELIER_CHECK(parameters_finite(*G_) && parameters_finite(*D_),
                  "step " << pos_.step << ": the parameters are not finite; no final checkpoint written");
    save_checkpoint();
  }
  log("began train: done, " + count_text(pos_.step, "step") + " in " + format_duration(elapsed_s()) +
      "; report: " + config_.out + "/report.html");
  return {TrainOutcome::Status::completed, 0, pos_.step, ""};
}

// A grid of G(fixed z), then the report is rewritten so that it shows the new grid and the curves so far.
void Trainer::save_samples(const std::string& path) {
  try {
    NoGradGuard no_grad;
    save_image_grid(path, G_->forward(fixed_z_));
  } catch (const OutOfMemoryError& e) {  // G runs on the whole grid at once: name the flag that sized it
    ATELIER_OUT_OF_MEMORY("the sample grid " << path << " of --sample-count " << config_.sample_count << " ("
                                             << model_settings_text(config_) << ") on " << device_ << ": " << e.what()
                                             << "; a smaller --sample-count needs less memory");
  }
  write_report(config_.out);
}

void Trainer::save_checkpoint() {
  pos_.time_s = elapsed_s();
  pos_.k = k_.item();  // a checkpoint waits for the device anyway
  save_train_checkpoint(checkpoint_path(config_.out, pos_.step), config_, pos_,
                        {*G_, *D_, *opt_g_, *opt_d_, *schedule_, fixed_z_});
  last_checkpoint_step_ = pos_.step;
  remove_old_checkpoints(config_.out, 2);
}

double Trainer::elapsed_s() const {
  return time_offset_s_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void Trainer::log(const std::string& line) const {
  if (hooks_.log) {
    hooks_.log(line);
  } else {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

TrainOutcome train(const TrainConfig& config, const TrainHooks& hooks) {
  ATELIER_CHECK(config.lr_window >= 1,
                "train: pass the config through resolve_config first (lr_window is " << config.lr_window << ")");
  // --precision is the library's setting while the run lasts; the caller's comes back afterwards.
  struct PrecisionScope {
    Precision saved = precision();
    explicit PrecisionScope(Precision p) { set_precision(p); }
    ~PrecisionScope() { set_precision(saved); }
  } scope(parse_precision(config.precision));
  Trainer trainer(config, hooks);
  return trainer.run();
}

}  // namespace atelier::began
