// BEGAN's encoder, decoder (= generator) and discriminator: the layer table of began/model.h built for any image
// size 8 * 2^k. Constructors register the 3x3 convolutions in order under `convs`; forward() applies ELU after
// each of them (fused into the convolution: conv2d_elu) and the upsampling between stages (folded into the next
// convolution: upsample_conv2d_elu), so the module tree holds only parameters and its names match a PyTorch port
// whose forward does the same.
#include "began/model.h"

#include "autograd/functions.h"
#include "backends/error.h"

namespace atelier::began {
namespace {

// The largest image side we accept: 8 * 2^9. Far beyond anything trained here; it keeps every size product
// (8*8*4n*h ...) small enough not to overflow and turns a typo such as 6400 into a clear error.
constexpr int64_t kMaxImageSize = 4096;

// The bottleneck is always 8x8.
constexpr int64_t kBottleneck = 8;

std::shared_ptr<nn::Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return std::make_shared<nn::Conv2d>(in, out, 3, stride, 1);
}

// Checks that x is a batch of images (N, C, S, S) of this model's size; `who` names the caller.
void check_images(const char* who, const ModelConfig& c, const Tensor& x) {
  ATELIER_CHECK(
      x.defined() && x.dim() == 4 && x.size(1) == c.channels && x.size(2) == c.image_size && x.size(3) == c.image_size,
      who << ": expected images (N, " << c.channels << ", " << c.image_size << ", " << c.image_size << "), got "
          << (x.defined() ? x.shape() : Shape{}) << (x.defined() ? "" : " (undefined)"));
}

// Conv i of `convs`.
nn::Conv2d& conv_at(const nn::Sequential& convs, size_t i) {
  auto* conv = dynamic_cast<nn::Conv2d*>(convs[i].get());
  ATELIER_CHECK(conv != nullptr, "BEGAN model: convs." << i << " is a " << convs[i]->type_name() << ", not a Conv2d");
  return *conv;
}

// ELU(conv i of `convs` (x)), as one fused op (conv2d_elu): the ELU runs in the convolution's output pass.
Tensor conv_elu(const nn::Sequential& convs, size_t i, const Tensor& x) { return conv_at(convs, i).forward_elu(x); }

// ELU(conv i of `convs` (x upsampled by 2)), as one op (upsample_conv2d_elu): the convolution reads x itself.
Tensor upsample_conv_elu(const nn::Sequential& convs, size_t i, const Tensor& x) {
  return conv_at(convs, i).forward_upsample_elu(x);
}

}  // namespace

void check_model_config(const ModelConfig& config) {
  const int64_t s = config.image_size;
  bool power_of_two_multiple = s >= 32 && s <= kMaxImageSize && s % 8 == 0 && ((s / 8) & (s / 8 - 1)) == 0;
  ATELIER_CHECK(power_of_two_multiple, "BEGAN model: image_size must be 8 * 2^k with k >= 2 (32, 64, 128 ... "
                                           << kMaxImageSize << "), got " << s);
  ATELIER_CHECK(config.channels >= 1, "BEGAN model: channels must be >= 1, got " << config.channels);
  ATELIER_CHECK(config.n >= 1, "BEGAN model: n (filters) must be >= 1, got " << config.n);
  ATELIER_CHECK(config.h >= 1, "BEGAN model: h (bottleneck and z size) must be >= 1, got " << config.h);
}

double parameter_count(const ModelConfig& config) {
  const double k = static_cast<double>(num_upsamplings(config));
  const double c = static_cast<double>(config.channels), n = static_cast<double>(config.n);
  const double h = static_cast<double>(config.h), bottleneck = kBottleneck * kBottleneck;
  auto conv = [](double in, double out) { return 9 * in * out + out; };  // 3x3 weights and the bias
  auto linear = [](double in, double out) { return in * out + out; };
  // Encoder::Encoder's layers, then Decoder::Decoder's.
  double encoder = conv(c, n) + conv(n, n) + conv((k + 1) * n, (k + 1) * n) + linear(bottleneck * (k + 1) * n, h);
  for (double i = 1; i <= k; ++i) encoder += conv(i * n, (i + 1) * n) + conv((i + 1) * n, (i + 1) * n);
  const double decoder =
      linear(h, bottleneck * n) + 2 * conv(n, n) + k * (conv(config.skip ? 2 * n : n, n) + conv(n, n)) + conv(n, c);
  return encoder + 2 * decoder;  // D is an encoder and a decoder, G a decoder of its own
}

StepMemory step_memory(const ModelConfig& config, int64_t batch) {
  const double k = static_cast<double>(num_upsamplings(config));
  const double c = static_cast<double>(config.channels), n = static_cast<double>(config.n);
  const double h = static_cast<double>(config.h), s = static_cast<double>(config.image_size);
  const double bottleneck = kBottleneck * kBottleneck;
  // The outputs of one image's layers: the encoder's two convolutions at full size, two per stride-2 stage (i + 1)
  // n channels wide, the last one and the code; the decoder's linear and two convolutions at 8x8, an upsample and
  // two convolutions per stage, the output image.
  double encoder = 2 * n * s * s + (k + 1) * n * bottleneck + h;
  double side = s;
  for (double i = 1; i <= k; ++i) {
    side /= 2;
    encoder += 2 * (i + 1) * n * side * side;
  }
  double decoder = 3 * n * bottleneck + c * s * s;
  for (side = 2 * kBottleneck; side <= s; side *= 2) decoder += 3 * n * side * side;
  constexpr double kFloatBytes = 4, kParameterCopies = 4, kActivationFactor = 1.5;
  return {kParameterCopies * kFloatBytes * parameter_count(config),
          kActivationFactor * kFloatBytes * static_cast<double>(batch) * (encoder + 2 * decoder)};
}

int64_t num_upsamplings(const ModelConfig& config) {
  check_model_config(config);
  int64_t k = 0;
  for (int64_t s = config.image_size; s > kBottleneck; s /= 2) ++k;
  return k;
}

// Stage 0 at full size: conv C->n; conv n->n. Stage i = 1..k (k = log2(S/8)): conv i*n -> (i+1)*n stride 2;
// conv (i+1)*n -> (i+1)*n. The last stage (8x8) gets one more (k+1)*n -> (k+1)*n conv. Then flatten and a linear
// layer 8*8*(k+1)*n -> h.
Encoder::Encoder(const ModelConfig& config) : config_(config) {
  const int64_t k = num_upsamplings(config);
  const int64_t n = config.n;
  convs = register_module("convs", std::make_shared<nn::Sequential>());
  convs->push_back(conv3x3(config.channels, n));
  convs->push_back(conv3x3(n, n));
  for (int64_t i = 1; i <= k; ++i) {
    convs->push_back(conv3x3(i * n, (i + 1) * n, 2));
    convs->push_back(conv3x3((i + 1) * n, (i + 1) * n));
  }
  convs->push_back(conv3x3((k + 1) * n, (k + 1) * n));
  fc = register_module("fc", std::make_shared<nn::Linear>(kBottleneck * kBottleneck * (k + 1) * n, config.h));
}

Tensor Encoder::forward(const Tensor& x) {
  check_images("BEGAN Encoder", config_, x);
  Tensor y = x;
  for (size_t i = 0; i < convs->size(); ++i) y = conv_elu(*convs, i, y);
  return fc->forward(y.flatten(1));  // (N, 8*8*(k+1)n) -> (N, h)
}

// linear h -> 8*8*n, reshape (N, n, 8, 8) = h0; conv n->n; conv n->n; then k stages of [upsample x2 (with skip:
// concatenate h0 upsampled to this size, 2n channels); conv (2)n -> n; conv n->n]; conv n->C. (forward() folds
// each upsampling into the convolution after it.)
Decoder::Decoder(const ModelConfig& config) : config_(config) {
  const int64_t k = num_upsamplings(config);
  const int64_t n = config.n;
  fc = register_module("fc", std::make_shared<nn::Linear>(config.h, kBottleneck * kBottleneck * n));
  convs = register_module("convs", std::make_shared<nn::Sequential>());
  convs->push_back(conv3x3(n, n));
  convs->push_back(conv3x3(n, n));
  for (int64_t i = 0; i < k; ++i) {
    convs->push_back(conv3x3(config.skip ? 2 * n : n, n));
    convs->push_back(conv3x3(n, n));
  }
  out = register_module("out", conv3x3(n, config.channels));
}

Tensor Decoder::forward(const Tensor& z) {
  ATELIER_CHECK(z.defined() && z.dim() == 2 && z.size(1) == config_.h,
                "BEGAN Decoder: expected z (N, " << config_.h << "), got " << (z.defined() ? z.shape() : Shape{})
                                                 << (z.defined() ? "" : " (undefined)"));
  const int64_t n = config_.n;
  const Tensor h0 = fc->forward(z).reshape({z.size(0), n, kBottleneck, kBottleneck});
  Tensor y = conv_elu(*convs, 0, h0);
  y = conv_elu(*convs, 1, y);
  const int64_t k = (static_cast<int64_t>(convs->size()) - 2) / 2;
  for (int64_t i = 0; i < k; ++i) {
    // The upsampling by 2 is folded into the stage's first convolution (upsample_conv2d_elu). With skip, h0 joins
    // y at y's size, (N, 2n, S_i / 2, S_i / 2), and is upsampled with it: cat(up_2(y), up_{2^(i+1)}(h0)) =
    // up_2(cat(y, up_{2^i}(h0))), the same values (PyTorch's port upsamples, then concatenates).
    if (config_.skip) y = cat({y, i == 0 ? h0 : upsample_nearest2d(h0, int64_t{1} << i)}, 1);
    y = upsample_conv_elu(*convs, static_cast<size_t>(2 + 2 * i), y);  // (N, n, S_i, S_i)
    y = conv_elu(*convs, static_cast<size_t>(3 + 2 * i), y);
  }
  y = out->forward(y);
  return config_.tanh ? tanh(y) : y;
}

Discriminator::Discriminator(const ModelConfig& config) {
  enc = register_module("enc", std::make_shared<Encoder>(config));
  dec = register_module("dec", std::make_shared<Decoder>(config));
}

Tensor Discriminator::forward(const Tensor& x) { return dec->forward(enc->forward(x)); }

}  // namespace atelier::began
