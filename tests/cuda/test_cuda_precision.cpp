// The reduced-precision GEMM modes on CUDA (backends/precision.h): TF32 and BF16 round the float32 inputs of every
// GEMM and convolution product inside cuBLAS and sum in float32, storage and weights staying float32. Checked here:
// the GEMM and conv parity rows within each mode's tolerance, a 256^3 product's error, and each mode's error on one
// BEGAN step against the CPU's FP32 step (losses, gradients, the Adam update), stated and bounded. Under
// scripts/cuda-emulate.sh the emulated cuBLAS rounds the inputs as the mode says (tests/cuda_emulation/), so these
// figures exist before a GPU runs them; docs/gpu.md records them, marked emulated.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/conv_algo.h"
#include "backends/error.h"
#include "backends/precision.h"
#include "began/model.h"
#include "began/step.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tests/parity/parity.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

using testing::PrecisionScope;
using testing::relative_l2;

TEST_CASE("precision: under tf32 and bf16 the GEMM and conv parity rows stay within the mode's tolerance") {
  for (Precision p : {Precision::TF32, Precision::BF16}) {
    PrecisionScope scope(p);
    const double limit = gemm_parity_tolerance(p);
    for (const parity::PrimitiveRow& row : parity::primitive_rows()) {
      if (row.dtype != DType::Float32 || row.tolerance != parity::Tolerance::Norm) continue;
      INFO("row " << row.name << " (relative norm " << limit << " under " << std::string(precision_name(p)) << ")");
      std::string result;
      try {
        result = parity::primitive_row_parity(row, Device::cpu(), Device::cuda());
      } catch (const Error& e) {
        result = std::string("threw: ") + e.what();
      }
      CHECK(result == "");
    }
  }
}

TEST_CASE("precision: a 256^3 matmul's error against the CPU under fp32, tf32 and bf16") {
  // Large enough for cuBLAS's tensor-core kernels. Inputs in [-1, 1): a product of K = 256 terms, relative error
  // about 2^-11 (TF32) or 2^-8 (bfloat16) per input, averaged over the sum.
  const Tensor a = uniform({256, 256}, -1, 1, RandomKey{77, 0, 0}), b = uniform({256, 256}, -1, 1, RandomKey{77, 1, 0});
  const std::vector<double> cpu = matmul(a, b).to_vector<double>();
  const Tensor a_cuda = a.to(Device::cuda()), b_cuda = b.to(Device::cuda());
  struct Mode {
    Precision precision;
    double bound;
  };
  for (Mode mode : {Mode{Precision::FP32, 1e-5}, Mode{Precision::TF32, 2e-3}, Mode{Precision::BF16, 1e-2}}) {
    PrecisionScope scope(mode.precision);
    const double error = relative_l2(matmul(a_cuda, b_cuda).to_vector<double>(), cpu);
    MESSAGE("256^3 matmul, " << std::string(precision_name(mode.precision)) << ": relative error " << error
                             << " against the CPU");
    CHECK(error <= mode.bound);
    if (mode.precision != Precision::FP32) CHECK(error > 1e-6);  // the mode did round: not the FP32 kernel
  }
}

// One BEGAN step's numbers: the losses, every parameter's gradient (D's from the D step, G's from the G step)
// and every parameter's change (the Adam update), D's tensors then G's.
struct StepNumbers {
  began::StepResult result;
  std::vector<std::vector<double>> grads;
  std::vector<double> update;
};

// The accuracy rig: 32x32 RGB, n = 16, h = 16, batch 4, seed 3's weights, k = 0.3 (so G(z_D)'s loss reaches L_D):
// small enough for the emulation's host GEMM, with reductions of K = 16*9 to 64*9 terms per conv output.
StepNumbers began_step_numbers(Device device) {
  manual_seed(3);
  began::ModelConfig c;
  c.image_size = 32;
  c.channels = 3;
  c.n = 16;
  c.h = 16;
  began::Generator G{c};
  began::Discriminator D{c};
  G.to(device);
  D.to(device);
  nn::Adam opt_g{G.parameters(), 1e-4, {0.5, 0.999}};
  nn::Adam opt_d{D.parameters(), 1e-4, {0.5, 0.999}};
  const Tensor x = uniform({4, 3, 32, 32}, -1, 1, RandomKey{9, 0, 0}).to(device);
  const Tensor z_d = began::sample_z(4, c.h, 5, 0, began::LatentStream::discriminator, device);
  const Tensor z_g = began::sample_z(4, c.h, 5, 0, began::LatentStream::generator, device);
  std::vector<Tensor> params = D.parameters();
  for (const Tensor& p : G.parameters()) params.push_back(p);
  std::vector<double> before;
  for (const Tensor& p : params) {
    const std::vector<double> v = p.to_vector<double>();
    before.insert(before.end(), v.begin(), v.end());
  }
  double k = 0.3;
  StepNumbers out;
  out.result = began::began_step(G, D, opt_g, opt_d, x, z_d, z_g, k);
  for (const Tensor& p : params) {
    REQUIRE(p.grad().defined());
    out.grads.push_back(p.grad().to_vector<double>());
    const std::vector<double> v = p.to_vector<double>();
    for (double value : v) out.update.push_back(value - before[out.update.size()]);
  }
  return out;
}

// The errors of one CUDA BEGAN step under the library's current settings against the CPU's fp32 step: the largest
// relative error of the losses, the worst parameter tensor's gradient (relative L2) and the Adam update's.
struct StepErrors {
  double loss, grad, update;
};
StepErrors step_errors(const StepNumbers& cpu) {
  const StepNumbers cuda = began_step_numbers(Device::cuda());
  StepErrors e{0, 0, relative_l2(cuda.update, cpu.update)};
  for (auto loss : {&began::StepResult::loss_real, &began::StepResult::loss_fake_d, &began::StepResult::loss_fake_g,
                    &began::StepResult::m_global}) {
    e.loss = std::max(e.loss, std::fabs(cuda.result.*loss - cpu.result.*loss) / std::fabs(cpu.result.*loss));
  }
  for (size_t i = 0; i < cpu.grads.size(); ++i) e.grad = std::max(e.grad, relative_l2(cuda.grads[i], cpu.grads[i]));
  return e;
}

TEST_CASE("precision: one BEGAN step under fp32, tf32 and bf16 against the CPU's fp32 step, within stated bounds") {
  const StepNumbers cpu = began_step_numbers(Device::cpu());
  // Bounds: about five times the emulated figures of docs/gpu.md ("Precision modes": losses 0 / 2.9e-5 / 5.5e-4,
  // gradients 1.0e-6 / 1.5e-3 / 8.6e-3, update 5.7e-6 / 9.3e-3 / 4.4e-2 for fp32 / tf32 / bf16), for a GPU whose
  // cuBLAS may keep more bits than the emulation's rounding (never fewer) but sums in another order.
  struct Mode {
    Precision precision;
    double loss_bound, grad_bound, update_bound;
  };
  for (Mode mode : {Mode{Precision::FP32, 1e-5, 1e-4, 1e-3}, Mode{Precision::TF32, 2e-4, 1e-2, 5e-2},
                    Mode{Precision::BF16, 3e-3, 5e-2, 0.2}}) {
    PrecisionScope scope(mode.precision);
    const StepErrors e = step_errors(cpu);
    MESSAGE("BEGAN step, " << std::string(precision_name(mode.precision)) << ": losses " << e.loss
                           << ", gradients (worst tensor) " << e.grad << ", Adam update " << e.update
                           << " relative to the CPU's fp32 step");
    CHECK(e.loss <= mode.loss_bound);
    CHECK(e.grad <= mode.grad_bound);
    CHECK(e.update <= mode.update_bound);
  }
}

TEST_CASE("precision: the same step with Winograd's convolutions on CUDA, stated beside im2col's") {
  // The CPU's step by im2col (the program's setting), the GPU's with its 3x3 stride-1 layers by Winograd: auto at
  // fp32 (what the GPU runs by default: F(4x4) on the layers of 16 channels in) and at tf32 (F(2x2) there,
  // backends/cuda/conv.cu's conv_choice), and F(4x4) forced, to state what auto avoids under tf32 and bf16
  // (docs/gpu.md, "Winograd on the GPU").
  const StepNumbers cpu = began_step_numbers(Device::cpu());
  struct Mode {
    Precision precision;
    ConvAlgo algo;
    double loss_bound, grad_bound, update_bound;
  };
  // Bounds: about five times the emulated figures (docs/gpu.md, "Winograd on the GPU").
  for (Mode mode : {Mode{Precision::FP32, ConvAlgo::Auto, 1e-6, 2e-5, 5e-5},
                    Mode{Precision::TF32, ConvAlgo::Auto, 4e-4, 1e-2, 5e-2},
                    Mode{Precision::TF32, ConvAlgo::Wino4, 2e-3, 6e-2, 0.15},
                    Mode{Precision::BF16, ConvAlgo::Wino4, 8e-3, 0.4, 0.75}}) {
    PrecisionScope scope(mode.precision);
    const testing::ConvAlgoScope algo(mode.algo);
    const StepErrors e = step_errors(cpu);
    MESSAGE("BEGAN step, " << std::string(precision_name(mode.precision)) << ", "
                           << std::string(conv_algo_name(mode.algo)) << ": losses " << e.loss
                           << ", gradients (worst tensor) " << e.grad << ", Adam update " << e.update
                           << " relative to the CPU's fp32 step by im2col");
    CHECK(e.loss <= mode.loss_bound);
    CHECK(e.grad <= mode.grad_bound);
    CHECK(e.update <= mode.update_bound);
  }
}

}  // namespace
}  // namespace atelier
