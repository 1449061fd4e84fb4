// BEGAN's networks (Berthelot, Schumm, Metz 2017, arXiv 1703.10717): the discriminator D is an auto-encoder
// (Encoder then Decoder) and the generator G is a Decoder with its own weights. 3x3 convolutions with padding 1,
// ELU after every convolution except the decoder's last, no batch norm. At 64x64 (n filters, h = z size):
//
//   encoder  conv C->n; conv n->n                                   n  x 64 x 64
//            conv n->2n stride 2; conv 2n->2n                       2n x 32 x 32
//            conv 2n->3n stride 2; conv 3n->3n                      3n x 16 x 16
//            conv 3n->4n stride 2; conv 4n->4n; conv 4n->4n         4n x  8 x  8
//            flatten; linear 8*8*4n -> h (no activation)            h
//   decoder  linear h -> 8*8*n (no activation), reshape; conv n->n; conv n->n      n x 8 x 8
//            3 x [nearest upsample x2; conv n->n; conv n->n]                       n x 64 x 64
//            conv n->C (no activation; tanh when ModelConfig::tanh)                C x 64 x 64
//
// Other sizes 8 * 2^k (k >= 2) add or remove one encoder block [stride-2 conv; conv] and one decoder stage
// [upsample; conv; conv] per factor of 2; the bottleneck stays 8x8 and the encoder's last stage always has its
// extra conv. With ModelConfig::skip (the paper's improved version), the decoder's 8x8 input h0 is upsampled to
// each stage's size and concatenated after the stage's upsampling, so that stage's first conv is 2n -> n.
//
// Parameter names follow PyTorch module paths, so a PyTorch port can load a state dict unchanged:
//   D: enc.convs.<i>.weight/bias, enc.fc.weight/bias, dec.fc.weight/bias, dec.convs.<i>.weight/bias,
//      dec.out.weight/bias;   G: fc.weight/bias, convs.<i>.weight/bias, out.weight/bias.
// (`convs` holds only the 3x3 convolutions, in order; activations and upsampling are applied in forward().)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nn/layers.h"
#include "nn/module.h"

namespace atelier::began {

struct ModelConfig {
  int64_t image_size = 32;  // 8 * 2^k, k >= 2
  int64_t channels = 1;     // C, >= 1
  int64_t n = 32;           // filters of the first stage, >= 1
  int64_t h = 64;           // bottleneck and z size, >= 1
  bool skip = false;        // the paper's skip connections in the decoders
  bool tanh = false;        // tanh on the decoders' output
};

// Throws atelier::Error naming the field and value when a setting is out of range (image_size not 8 * 2^k with
// k >= 2, channels / n / h below 1).
void check_model_config(const ModelConfig& config);

// The number of [upsample; conv; conv] stages of a decoder (= stride-2 blocks of an encoder): log2(image_size / 8).
int64_t num_upsamplings(const ModelConfig& config);

// The parameters of D and G together (Discriminator(config).num_parameters() + Generator(config).num_parameters()),
// from the layer sizes above without building anything: a settings check can refuse a model that would not fit
// before any memory is asked for. A double, so that any config gives a number rather than an int64 overflow (--n
// 10^10 squared); exact below 2^53.
double parameter_count(const ModelConfig& config);

// What one training step (D step, G step) holds in memory at its peak, estimated from the layer sizes without
// building anything, so that a run that cannot fit (--image-size 4096) is refused before it starts rather than
// killed by the system's OOM killer mid-way. Fitted to the CPU allocator's peak (bench_train's peak_MiB) over 13
// settings from 32x32 n 16 to 256x256 n 32 and batches 2-64 (docs/began.md, "Memory"): the parameters are held
// about 4.1-5.1 times (weights, gradients, Adam's two moments), the activations 1.38-1.66 times the outputs of
// D's and G's layers for the batch. With 4 and 1.5 the estimate was 0.92-1.03 times the peak (64x64 n 64 batch
// 16: 349 MiB against 361): a refusal based on it refuses only steps that would not fit.
struct StepMemory {
  double networks_bytes = 0;     // parameters, gradients and Adam's state of D and G
  double activations_bytes = 0;  // what the forward passes keep for the backward ones, for the whole batch
  double total() const { return networks_bytes + activations_bytes; }
};
StepMemory step_memory(const ModelConfig& config, int64_t batch);

// x (N, C, S, S) -> (N, h).
class Encoder : public nn::Module {
 public:
  explicit Encoder(const ModelConfig& config);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Encoder"; }
  const ModelConfig& config() const { return config_; }

  std::shared_ptr<nn::Sequential> convs;  // Conv2d only
  std::shared_ptr<nn::Linear> fc;

 private:
  ModelConfig config_;
};

// z (N, h) -> (N, C, S, S). Also BEGAN's generator.
class Decoder : public nn::Module {
 public:
  explicit Decoder(const ModelConfig& config);
  Tensor forward(const Tensor& z) override;
  std::string type_name() const override { return "Decoder"; }
  const ModelConfig& config() const { return config_; }

  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::Sequential> convs;  // the n->n (2n->n with skip) Conv2d layers, in order
  std::shared_ptr<nn::Conv2d> out;

 private:
  ModelConfig config_;
};

using Generator = Decoder;

// The auto-encoder: x (N, C, S, S) -> reconstruction (N, C, S, S).
class Discriminator : public nn::Module {
 public:
  explicit Discriminator(const ModelConfig& config);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Discriminator"; }
  const ModelConfig& config() const { return enc->config(); }

  std::shared_ptr<Encoder> enc;
  std::shared_ptr<Decoder> dec;
};

}  // namespace atelier::began
