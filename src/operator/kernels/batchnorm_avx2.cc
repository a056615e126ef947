// Compiled with -mavx2 -mfma -ffp-contract=off (only the fused formulas fuse); called
// only after ActiveIsa() reported AVX2 support.
#include <immintrin.h>

#include "batchnorm.h"

namespace bmxnet {
namespace kernels {
namespace simd {
namespace {

__m256 Affine(BatchNormFormula formula, __m256 x, const BatchNormChannel& k) {
  const __m256 centered = _mm256_sub_ps(x, _mm256_set1_ps(k.mean)), factor = _mm256_set1_ps(k.factor),
               beta = _mm256_set1_ps(k.beta);
  switch (formula) {
    case BatchNormFormula::kOneDnnBlocked: return _mm256_fmadd_ps(centered, factor, beta);
    case BatchNormFormula::kNative:
      return _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(centered, factor), _mm256_set1_ps(k.gamma)), beta);
    case BatchNormFormula::kNativeFused:
      return _mm256_fmadd_ps(_mm256_mul_ps(centered, factor), _mm256_set1_ps(k.gamma), beta);
    default: return _mm256_add_ps(_mm256_mul_ps(centered, factor), beta);
  }
}

__m256 Values(BatchNormFormula formula, bool relu, __m256 x, const BatchNormChannel& k) {
  const __m256 value = Affine(formula, x, k);
  return relu ? _mm256_max_ps(_mm256_setzero_ps(), value) : value;  // NaN is max_ps's second operand: kept
}

// rows[r] holds 8 values of row r; afterwards rows[j] holds column j.
void Transpose8x8(__m256 rows[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    rows[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    rows[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}

}  // namespace

void BatchNormPlane(BatchNormFormula formula, bool relu, const float* x, int64_t n, const BatchNormChannel& k,
                    float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Values(formula, relu, _mm256_loadu_ps(x + i), k));
  for (; i < n; ++i) y[i] = BatchNormOutput(formula, relu, x[i], k);
}

void BatchNormPixelsChannelsLast(BatchNormFormula formula, bool relu, const float* x, int64_t spatial,
                                 int64_t channels, int64_t first, int64_t c_begin, int64_t c_end,
                                 const BatchNormChannel* k, float* y) {
  int64_t c = c_begin;
  for (; c + 8 <= c_end; c += 8) {
    __m256 rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = _mm256_loadu_ps(x + (first + r) * channels + c);
    Transpose8x8(rows);
    for (int j = 0; j < 8; ++j)
      _mm256_storeu_ps(y + (c + j) * spatial + first, Values(formula, relu, rows[j], k[c + j]));
  }
  for (; c < c_end; ++c)
    for (int64_t p = first; p < first + 8; ++p)
      y[c * spatial + p] = BatchNormOutput(formula, relu, x[p * channels + c], k[c]);
}

}  // namespace simd
}  // namespace kernels
}  // namespace bmxnet
