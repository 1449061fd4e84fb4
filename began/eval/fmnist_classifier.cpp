#include "began/eval/fmnist_classifier.h"

#include <chrono>
#include <cmath>

#include "autograd/functions.h"
#include "backends/error.h"
#include "began/number_text.h"
#include "nn/checkpoint.h"
#include "nn/data/dataloader.h"
#include "nn/data/dataset.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier::began {

FmnistClassifier::FmnistClassifier() {
  body_ = register_module("body", std::make_shared<nn::Sequential>());
  body_->push_back(std::make_shared<nn::Conv2d>(1, 32, 3, 1, 1));
  body_->push_back(std::make_shared<nn::ELU>());
  body_->push_back(std::make_shared<nn::Conv2d>(32, 32, 3, 2, 1));
  body_->push_back(std::make_shared<nn::ELU>());
  body_->push_back(std::make_shared<nn::Conv2d>(32, 64, 3, 2, 1));
  body_->push_back(std::make_shared<nn::ELU>());
  body_->push_back(std::make_shared<nn::Conv2d>(64, 64, 3, 2, 1));
  body_->push_back(std::make_shared<nn::ELU>());
  body_->push_back(std::make_shared<nn::Flatten>());
  body_->push_back(std::make_shared<nn::Linear>(64 * 4 * 4, kFeatures));
  body_->push_back(std::make_shared<nn::ELU>());
  head_ = register_module("head", std::make_shared<nn::Linear>(kFeatures, kClasses));
}

Tensor FmnistClassifier::features(const Tensor& x) {
  ATELIER_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == 32 && x.size(3) == 32,
                "FmnistClassifier: expected images (N, 1, 32, 32), got " << x.shape());
  return body_->forward(x);
}

Tensor FmnistClassifier::logits_from_features(const Tensor& features) {
  ATELIER_CHECK(features.dim() == 2 && features.size(1) == kFeatures,
                "FmnistClassifier: expected features (N, " << kFeatures << "), got " << features.shape());
  return head_->forward(features);
}

Tensor FmnistClassifier::forward(const Tensor& x) { return logits_from_features(features(x)); }

double train_classifier(FmnistClassifier& model, const Tensor& images, const Tensor& labels,
                        const ClassifierTrainOptions& options,
                        const std::function<void(const ClassifierProgress&)>& on_progress) {
  ATELIER_CHECK(options.epochs >= 1 && options.batch_size >= 1,
                "train_classifier: epochs and batch_size must be positive (got " << options.epochs << ", "
                                                                                 << options.batch_size << ")");
  auto dataset = std::make_shared<nn::TensorDataset>(images, labels);
  nn::DataLoaderOptions loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.shuffle = true;
  loader_options.drop_last = true;
  loader_options.seed = options.seed;
  nn::DataLoader loader(dataset, loader_options);
  const int64_t per_epoch = loader.num_batches();
  ATELIER_CHECK(per_epoch > 0, "train_classifier: no batch of " << options.batch_size << " in "
                                                                << count_text(images.size(0), "image"));

  model.train();
  nn::Adam optimizer(model.parameters(), options.lr);
  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0;
  double epoch_loss = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    double window_loss = 0, epoch_sum = 0;
    int64_t window = 0;
    for (nn::Batch& batch : loader.epoch(epoch)) {
      Tensor loss = cross_entropy(model.forward(batch.data), batch.target);
      model.zero_grad();
      loss.backward();
      optimizer.step();
      double value = loss.item();
      // Adam normalises the gradient, so a huge --lr moves every weight by about lr a step: the logits overflow
      // and the loss turns inf or NaN. Stop there, before any weights are written, rather than save them.
      ATELIER_CHECK(std::isfinite(value),
                    "classify-train: epoch "
                        << epoch + 1 << ", batch " << batch.index + 1 << ": the loss is not finite (" << value
                        << "); nothing was written; try a lower --lr (it was " << options.lr << ")");
      window_loss += value;
      epoch_sum += value;
      ++window;
      ++done;
      bool last = batch.index + 1 == per_epoch;
      if (on_progress && (window == options.log_every || last)) {
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double rate = static_cast<double>(done) / std::max(seconds, 1e-9);
        double remaining = static_cast<double>(options.epochs * per_epoch - done) / rate;
        on_progress({epoch, batch.index + 1, per_epoch, window_loss / static_cast<double>(window), rate, remaining});
        window_loss = 0;
        window = 0;
      }
    }
    epoch_loss = epoch_sum / static_cast<double>(per_epoch);
    optimizer.set_lr(optimizer.lr() * 0.5);
  }
  model.eval();
  return epoch_loss;
}

double classifier_accuracy(FmnistClassifier& model, const Tensor& images, const Tensor& labels, int64_t batch_size) {
  ATELIER_CHECK(images.size(0) == labels.size(0) && images.size(0) > 0,
                "classifier_accuracy: " << images.shape() << " images for " << labels.shape() << " labels");
  NoGradGuard no_grad;
  int64_t n = images.size(0), correct = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    std::vector<int64_t> predicted = model.forward(images.slice(0, begin, end)).argmax(1).to_vector<int64_t>();
    std::vector<int64_t> truth = labels.slice(0, begin, end).to_vector<int64_t>();
    for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

std::shared_ptr<FmnistClassifier> load_classifier(const std::string& path) {
  auto model = std::make_shared<FmnistClassifier>();
  nn::SafetensorsFile file = nn::load_safetensors(path);
  // A file that says it holds something else (a `began train` checkpoint has a format, save_classifier's weights
  // say model FmnistClassifier) is refused by what it says, not by its long list of names the classifier lacks.
  const auto model_key = file.metadata.find("model");
  ATELIER_CHECK(
      !file.metadata.count("format") && (model_key == file.metadata.end() || model_key->second == "FmnistClassifier"),
      "load_classifier: " << path << " holds another model, not the Fashion-MNIST classifier's weights (its metadata: "
                          << nn::metadata_summary(file.metadata) << ")");
  try {
    model->load_state_dict(file.tensors);
  } catch (const Error& e) {
    throw Error("load_classifier: " + path + ": " + e.what());
  }
  model->eval();
  return model;
}

void save_classifier(const FmnistClassifier& model, const std::string& path,
                     const std::map<std::string, std::string>& metadata) {
  nn::save_safetensors(path, model.state_dict(), metadata);
}

}  // namespace atelier::began
