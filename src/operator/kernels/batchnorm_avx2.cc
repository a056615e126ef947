// Compiled with -mavx2 -mfma -ffp-contract=off (only the blocked formula fuses); called
// only after ActiveIsa() reported AVX2 support.
#include <immintrin.h>

#include "batchnorm.h"

namespace bmxnet {
namespace kernels {
namespace avx2 {

void BatchNormPlane(BatchNormFormula formula, const float* x, int64_t n, float mean, float factor, float gamma,
                    float beta, float* y) {
  const __m256 m = _mm256_set1_ps(mean), f = _mm256_set1_ps(factor), g = _mm256_set1_ps(gamma),
               b = _mm256_set1_ps(beta);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 centered = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
    __m256 value;
    switch (formula) {
      case BatchNormFormula::kOneDnnBlocked: value = _mm256_fmadd_ps(centered, f, b); break;
      case BatchNormFormula::kNative: value = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(centered, f), g), b); break;
      default: value = _mm256_add_ps(_mm256_mul_ps(centered, f), b); break;
    }
    _mm256_storeu_ps(y + i, value);
  }
  for (; i < n; ++i) y[i] = BatchNormValue(formula, x[i], mean, factor, gamma, beta);
}

}  // namespace avx2
}  // namespace kernels
}  // namespace bmxnet
