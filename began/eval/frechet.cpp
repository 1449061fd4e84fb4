// The Frechet distance between feature sets (began/eval/frechet.h), with Eigen's symmetric eigen-solver.
#include "began/eval/frechet.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/eigen.h"  // first: Eigen single-threaded, g++ 12's AVX-512 false positives silenced
#include "backends/error.h"

// After backends/cpu/eigen.h, so that its settings hold here too.
#include <Eigen/Eigenvalues>

namespace atelier::began {

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::Map<const Matrix> as_matrix(const FeatureStats& s) {
  ATELIER_CHECK(static_cast<int64_t>(s.mean.size()) == s.dim && static_cast<int64_t>(s.cov.size()) == s.dim * s.dim,
                "frechet_distance: feature stats of dimension " << s.dim << " hold a mean of " << s.mean.size()
                                                                << " and a covariance of " << s.cov.size()
                                                                << " values");
  return Eigen::Map<const Matrix>(s.cov.data(), s.dim, s.dim);
}

// The eigenvalues of a symmetric matrix, negative rounding noise clipped to 0, with the eigenvectors.
Eigen::SelfAdjointEigenSolver<Matrix> symmetric_eigen(const Matrix& m) {
  Eigen::SelfAdjointEigenSolver<Matrix> solver(m);
  ATELIER_CHECK(solver.info() == Eigen::Success, "frechet_distance: the eigen-solver did not converge");
  return solver;
}

}  // namespace

FeatureStats feature_stats(const Tensor& features) {
  ATELIER_CHECK(features.dim() == 2 && features.size(0) >= 2,
                "feature_stats: expected features (n, d) with n >= 2, got " << features.shape());
  const int64_t n = features.size(0), d = features.size(1);
  const std::vector<double> v = features.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
  Eigen::Map<const Matrix> x(v.data(), n, d);
  FeatureStats s;
  s.dim = d;
  s.count = n;
  const Eigen::RowVectorXd mean = x.colwise().mean();
  const Matrix centred = x.rowwise() - mean;
  const Matrix cov = (centred.transpose() * centred) / static_cast<double>(n - 1);
  s.mean.assign(mean.data(), mean.data() + d);
  s.cov.assign(cov.data(), cov.data() + d * d);
  for (double value : s.cov) ATELIER_CHECK(std::isfinite(value), "feature_stats: the features are not all finite");
  return s;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  ATELIER_CHECK(a.dim == b.dim, "frechet_distance: the feature sets have dimensions " << a.dim << " and " << b.dim);
  const Matrix s1 = as_matrix(a), s2 = as_matrix(b);
  double mean_term = 0;
  for (int64_t i = 0; i < a.dim; ++i) mean_term += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);

  // S_1^1/2 = V diag(sqrt(max(lambda, 0))) V^T.
  const auto e1 = symmetric_eigen(s1);
  const Eigen::VectorXd root1 = e1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const Matrix sqrt_s1 = e1.eigenvectors() * root1.asDiagonal() * e1.eigenvectors().transpose();
  // M = S_1^1/2 S_2 S_1^1/2 is symmetric positive semi-definite; tr(M^1/2) = sum sqrt(eigenvalues of M).
  Matrix m = sqrt_s1 * s2 * sqrt_s1;
  m = (m + m.transpose()) / 2;  // exactly symmetric despite rounding
  const double trace_root = symmetric_eigen(m).eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double d2 = mean_term + s1.trace() + s2.trace() - 2 * trace_root;
  return std::max(d2, 0.0);
}

}  // namespace atelier::began
