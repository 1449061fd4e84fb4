// The eager and the captured step runner (began/step_runner.h).
#include "began/step_runner.h"

#include <utility>
#include <vector>

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier::began {

const char* step_mode_name(StepMode mode) { return mode == StepMode::graph ? "graph" : "eager"; }

namespace {

class EagerRunner final : public StepRunner {
 public:
  EagerRunner(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& k,
              const StepOptions& options)
      : G_(G), D_(D), opt_g_(opt_g), opt_d_(opt_d), k_(k), options_(options) {}

  Tensor run(const Tensor& x, const Tensor& z_d, const Tensor& z_g) override {
    const Device device = k_.device();
    return began_step_device(G_, D_, opt_g_, opt_d_, x.to(device), z_d.to(device), z_g.to(device), k_, options_);
  }
  StepMode mode() const override { return StepMode::eager; }

 private:
  Generator& G_;
  Discriminator& D_;
  nn::Optimizer &opt_g_, &opt_d_;
  Tensor k_;
  StepOptions options_;
};

class GraphRunner final : public StepRunner {
 public:
  GraphRunner(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& k,
              const StepOptions& options, int64_t warmup)
      : eager_(G, D, opt_g, opt_d, k, options),
        G_(G),
        D_(D),
        opt_g_(opt_g),
        opt_d_(opt_d),
        k_(k),
        options_(options),
        warmup_(warmup) {
    ATELIER_CHECK(warmup >= 1,
                  "step runner: at least one eager warm-up step is needed before a capture (the "
                  "optimisers' state must exist), got "
                      << warmup);
  }
  Tensor run(const Tensor& x, const Tensor& z_d, const Tensor& z_g) override {
    if (!fallback_.empty()) return eager_.run(x, z_d, z_g);
    const std::vector<Shape> shapes = {x.shape(), z_d.shape(), z_g.shape()};
    if (shapes != shapes_) {
      graph_.reset();  // captured for other shapes
      shapes_ = shapes;
      eager_steps_ = 0;
    }
    if (graph_ == nullptr) {
      if (eager_steps_ < warmup_) {
        ++eager_steps_;
        return eager_.run(x, z_d, z_g);
      }
      try {
        capture(x, z_d, z_g);
      } catch (const Error& e) {
        // Nothing of the step ran (a capture runs nothing): it runs eagerly now, and so does every later step.
        fallback_ = e.what();
        return eager_.run(x, z_d, z_g);
      }
    }
    copy_input(x_, x);
    copy_input(z_d_, z_d);
    copy_input(z_g_, z_g);
    opt_d_.prepare_replay();
    opt_g_.prepare_replay();
    graph_->replay();
    ++replays_;
    return scalars_;
  }
  StepMode mode() const override { return StepMode::graph; }
  int64_t captures() const override { return captures_; }
  int64_t replays() const override { return replays_; }
  const std::string& fallback_reason() const override { return fallback_; }

 private:
  // Copies a step's input into the graph's input tensor (outside the graph: the copy is eager work).
  static void copy_input(const Tensor& dst, const Tensor& src) {
    NoGradGuard no_grad;
    Tensor(dst).copy_(src.device() == dst.device() ? src : src.to(dst.device()));
  }

  // Records one step on the graph's own inputs. Nothing runs: the replay that follows does the step.
  void capture(const Tensor& x, const Tensor& z_d, const Tensor& z_g) {
    const Device device = k_.device();
    x_ = empty(x.shape(), x.dtype(), device);
    z_d_ = empty(z_d.shape(), z_d.dtype(), device);
    z_g_ = empty(z_g.shape(), z_g.dtype(), device);
    Backend& backend = backend_for(device);
    backend.begin_capture();
    try {
      scalars_ = began_step_device(G_, D_, opt_g_, opt_d_, x_, z_d_, z_g_, k_, options_);
    } catch (...) {
      scalars_ = Tensor();
      try {
        backend.end_capture();  // ends the capture; the graph is dropped
      } catch (const Error&) {
        // the step's own error is the one to report
      }
      throw;
    }
    graph_ = backend.end_capture();
    ++captures_;
  }

  EagerRunner eager_;  // the warm-up steps
  Generator& G_;
  Discriminator& D_;
  nn::Optimizer &opt_g_, &opt_d_;
  Tensor k_;
  StepOptions options_;
  int64_t warmup_;
  std::vector<Shape> shapes_;             // of x, z_d, z_g at the current shape's steps
  int64_t eager_steps_ = 0;               // eager steps at the current shape
  Tensor x_, z_d_, z_g_;                  // the graph's inputs
  Tensor scalars_;                        // the graph's output
  std::unique_ptr<CapturedGraph> graph_;  // declared after what it reads and writes, so destroyed before them
  int64_t captures_ = 0, replays_ = 0;
  std::string fallback_;  // why the capture failed; the steps then run eagerly
};

}  // namespace

std::unique_ptr<StepRunner> make_step_runner(StepMode mode, Generator& G, Discriminator& D, nn::Optimizer& opt_g,
                                             nn::Optimizer& opt_d, const Tensor& k, const StepOptions& options,
                                             int64_t warmup) {
  if (mode == StepMode::eager) return std::make_unique<EagerRunner>(G, D, opt_g, opt_d, k, options);
  return std::make_unique<GraphRunner>(G, D, opt_g, opt_d, k, options, warmup);
}

}  // namespace atelier::began
