// The Frechet distance between two Gaussians fitted to feature sets (Dowson and Landau 1982; as a sample-quality
// measure, Heusel et al. 2017's FID):
//
//   d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2)
//
// in float64. The square roots come from Eigen's SelfAdjointEigenSolver on symmetric matrices (eigenvalues below
// zero, rounding noise of a positive semi-definite matrix, count as zero), so no general matrix square root and
// no complex parts are needed: tr((S_1 S_2)^1/2) = tr((S_1^1/2 S_2 S_1^1/2)^1/2).
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace atelier::began {

// The mean (d) and covariance (d x d, row-major, divided by n - 1) of n feature vectors.
struct FeatureStats {
  int64_t dim = 0;
  int64_t count = 0;
  std::vector<double> mean;
  std::vector<double> cov;
};

// features (n, d), n >= 2, any float dtype and device -> their mean and covariance, accumulated in float64.
FeatureStats feature_stats(const Tensor& features);

// The squared Frechet distance d^2 above (>= 0; rounding below zero is returned as 0). Throws atelier::Error when
// the dimensions differ or a covariance is not d x d.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

}  // namespace atelier::began
