// FD-FMNIST: BEGAN's sample-quality number for Fashion-MNIST runs. The Frechet distance (began/eval/frechet.h)
// between the committed classifier's features (began/eval/fmnist_classifier.h, the 128 values of its penultimate
// layer) of generated images and of the Fashion-MNIST test images. Like Inception FID it is a squared distance
// between Gaussians fitted to features, but the features come from a small classifier of 32x32 clothes, so its
// values are not comparable to FID's.
#pragma once

#include <array>
#include <cstdint>

#include "began/eval/fmnist_classifier.h"
#include "began/eval/frechet.h"
#include "began/model.h"

namespace atelier::began {

// images (N, 1, 32, 32) in [-1, 1] (values outside are clamped, as in a PNG) -> features (N, 128) float32 on the
// CPU, computed without a graph in batches of `batch` on the classifier's device.
Tensor classifier_features(FmnistClassifier& classifier, const Tensor& images, int64_t batch = 500);

// The features of `count` images G(z), z the rows of sample_z(count, h, seed, 0, fixed_samples), generated in
// batches of `batch` on G's device (which must be the classifier's).
Tensor generated_features(FmnistClassifier& classifier, Generator& G, int64_t count, uint64_t seed,
                          int64_t batch = 500);

// How many of the images behind `features` (N, 128) the classifier puts in each of the 10 classes: a generator
// that dropped classes (mode collapse) shows it here, and its FD-FMNIST is high for that reason.
std::array<int64_t, FmnistClassifier::kClasses> class_counts(FmnistClassifier& classifier, const Tensor& features);

}  // namespace atelier::began
