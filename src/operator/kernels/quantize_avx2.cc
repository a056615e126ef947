// Compiled with -mavx2 -mfma; called only after ActiveIsa() reported AVX2 support.
#include <immintrin.h>

#include <cmath>

#include "quantize.h"

namespace bmxnet {
namespace kernels {
namespace simd {

void SignActivation(const float* x, float* y, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 plus = _mm256_set1_ps(1.0f);
  const __m256 minus = _mm256_set1_ps(-1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // _CMP_GE_OQ: NaN compares false and maps to -1, as the scalar x >= 0 test does
    const __m256 non_negative = _mm256_cmp_ps(_mm256_loadu_ps(x + i), zero, _CMP_GE_OQ);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(minus, plus, non_negative));
  }
  for (; i < n; ++i) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}

void SteGradient(float clip, const float* x, const float* dy, float* dx, int64_t n) {
  const __m256 limit = _mm256_set1_ps(clip);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 magnitude = _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask);
    const __m256 inside = _mm256_cmp_ps(magnitude, limit, _CMP_LE_OQ);
    _mm256_storeu_ps(dx + i, _mm256_and_ps(_mm256_loadu_ps(dy + i), inside));
  }
  for (; i < n; ++i) dx[i] = std::fabs(x[i]) <= clip ? dy[i] : 0.0f;
}

}  // namespace simd
}  // namespace kernels
}  // namespace bmxnet
