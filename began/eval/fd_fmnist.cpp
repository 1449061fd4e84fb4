// FD-FMNIST's feature extraction (began/eval/fd_fmnist.h).
#include "began/eval/fd_fmnist.h"

#include <algorithm>
#include <vector>

#include "autograd/functions.h"
#include "backends/error.h"
#include "began/step.h"
#include "tensor/grad_mode.h"

namespace atelier::began {

Tensor classifier_features(FmnistClassifier& classifier, const Tensor& images, int64_t batch) {
  ATELIER_CHECK(batch >= 1, "classifier_features: batch must be >= 1, got " << batch);
  ATELIER_CHECK(images.dim() == 4 && images.size(0) >= 1,
                "classifier_features: expected images (N, 1, 32, 32), got " << images.shape());
  NoGradGuard no_grad;
  classifier.eval();
  const Device device = classifier.parameters().front().device();
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const int64_t end = std::min(images.size(0), start + batch);
    Tensor x = clamp(images.slice(0, start, end).to(device), -1.0, 1.0);
    parts.push_back(classifier.features(x).to(Device::cpu()));
  }
  return cat(parts, 0);
}

Tensor generated_features(FmnistClassifier& classifier, Generator& G, int64_t count, uint64_t seed, int64_t batch) {
  ATELIER_CHECK(count >= 1 && batch >= 1,
                "generated_features: count and batch must be >= 1, got " << count << " and " << batch);
  NoGradGuard no_grad;
  const Device device = G.parameters().front().device();
  const Tensor z = sample_z(count, G.config().h, seed, 0, LatentStream::fixed_samples, device);
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t end = std::min(count, start + batch);
    parts.push_back(classifier_features(classifier, G.forward(z.slice(0, start, end)), batch));
  }
  return cat(parts, 0);
}

std::array<int64_t, FmnistClassifier::kClasses> class_counts(FmnistClassifier& classifier, const Tensor& features) {
  NoGradGuard no_grad;
  const Device device = classifier.parameters().front().device();
  const Tensor labels = classifier.logits_from_features(features.to(device)).argmax(1).to(Device::cpu());
  std::array<int64_t, FmnistClassifier::kClasses> counts{};
  for (int64_t label : labels.contiguous().to_vector<int64_t>()) counts[static_cast<size_t>(label)] += 1;
  return counts;
}

}  // namespace atelier::began
