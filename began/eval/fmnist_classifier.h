// The Fashion-MNIST classifier: a small CNN trained with atelier on the same 32x32 [-1, 1] images BEGAN sees.
// Its features (the 128 values fed into the final linear layer, after their ELU) are the feature space of
// BEGAN's sample-quality measure (the FD-FMNIST distance, began/eval/fd_fmnist.h), so a GAN's samples are judged by a
// network that has learnt what clothes look like.
//
//   (N, 1, 32, 32) conv 1->32 3x3 pad 1, ELU           (N, 32, 32, 32)
//                  conv 32->32 3x3 stride 2 pad 1, ELU (N, 32, 16, 16)
//                  conv 32->64 3x3 stride 2 pad 1, ELU (N, 64, 8, 8)
//                  conv 64->64 3x3 stride 2 pad 1, ELU (N, 64, 4, 4)
//                  flatten, linear 1024->128, ELU      (N, 128)   <- features()
//                  linear 128->10                      (N, 10)    <- forward(): logits
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "nn/layers.h"
#include "nn/module.h"

namespace atelier::began {

class FmnistClassifier : public nn::Module {
 public:
  static constexpr int64_t kFeatures = 128;
  static constexpr int64_t kClasses = 10;

  FmnistClassifier();
  // x (N, 1, 32, 32) in [-1, 1] -> logits (N, 10).
  Tensor forward(const Tensor& x) override;
  // x (N, 1, 32, 32) -> features (N, 128), the input of the last linear layer.
  Tensor features(const Tensor& x);
  // features (N, 128) -> logits (N, 10): the last layer alone, so features computed once also give the classes.
  Tensor logits_from_features(const Tensor& features);
  std::string type_name() const override { return "FmnistClassifier"; }

 private:
  std::shared_ptr<nn::Sequential> body_;  // convs, flatten, linear 1024->128, ELU
  std::shared_ptr<nn::Linear> head_;      // 128 -> 10
};

// The ten classes, in label order.
constexpr const char* kFashionMnistClasses[FmnistClassifier::kClasses] = {
    "T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"};

struct ClassifierTrainOptions {
  int64_t epochs = 3;
  int64_t batch_size = 64;
  double lr = 2e-3;        // Adam; halved after each epoch
  uint64_t seed = 1;       // parameter init and shuffling
  int64_t log_every = 50;  // batches between progress reports
};

// What a progress report carries (one per log_every batches and one at the end of each epoch).
struct ClassifierProgress {
  int64_t epoch, batch, batches_per_epoch;
  double loss;                // mean over the batches since the last report
  double batches_per_second;  // since the start of training
  double eta_seconds;         // for the whole run
};

// Trains `model` on images (N, 1, 32, 32) / labels (N) with Adam and cross-entropy. Deterministic for a fixed
// seed and thread count. Returns the mean loss of the last epoch.
double train_classifier(FmnistClassifier& model, const Tensor& images, const Tensor& labels,
                        const ClassifierTrainOptions& options,
                        const std::function<void(const ClassifierProgress&)>& on_progress = {});

// The fraction of images whose argmax logit equals the label (evaluated in batches, without a graph).
double classifier_accuracy(FmnistClassifier& model, const Tensor& images, const Tensor& labels,
                           int64_t batch_size = 500);

// The committed weights, relative to the repository root.
constexpr const char* kClassifierWeights = "began/eval/fmnist_classifier.safetensors";

// Builds a classifier and loads weights written by save_classifier (throws naming the file on any mismatch).
std::shared_ptr<FmnistClassifier> load_classifier(const std::string& path);
void save_classifier(const FmnistClassifier& model, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace atelier::began
