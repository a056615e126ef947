#include "batchnorm.h"

#include <algorithm>

#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

void PortablePlane(BatchNormFormula formula, const float* x, int64_t n, float mean, float factor, float gamma,
                   float beta, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = BatchNormValue(formula, x[i], mean, factor, gamma, beta);
}

}  // namespace

void BatchNormForward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                      const float* beta, const float* mean, const float* variance, float eps, float* y,
                      int threads, Isa isa) {
  const auto plane = isa >= Isa::kAvx2 ? avx2::BatchNormPlane : PortablePlane;
  const int64_t planes = g.batch * g.channels;
  // a memory-bound pass: a second thread pays off from about 64 K values
  const int team = planes * g.spatial < (int64_t(1) << 16) ? 1 : threads;
  ParallelFor(planes, team, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % g.channels;
      const float scale = gamma ? gamma[c] : 1.0f;
      plane(formula, x + p * g.spatial, g.spatial, mean[c], BatchNormFactor(formula, scale, variance[c], eps),
            scale, beta[c], y + p * g.spatial);
    }
  });
}

void BatchNormBackward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                       const float* mean, const float* variance, float eps, const float* dy, float* dx,
                       float* dgamma, float* dbeta, float* dmean, float* dvariance, int threads) {
  const int64_t n = g.batch * g.channels * g.spatial;
  ParallelFor(n, n < (int64_t(1) << 16) ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dx[i] = BatchNormDataGradElement(g, formula, gamma, variance, eps, dy, i);
  });
  ParallelFor(g.channels, n < (int64_t(1) << 16) ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const BatchNormParamGrads grads = BatchNormParamGradChannel(g, x, gamma, mean, variance, eps, dy, c);
      dgamma[c] = grads.gamma;
      dbeta[c] = grads.beta;
      dmean[c] = grads.mean;
      dvariance[c] = grads.variance;
    }
  });
}

}  // namespace kernels
}  // namespace bmxnet
