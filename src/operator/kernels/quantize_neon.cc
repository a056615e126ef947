// NEON build of the vectorised 1-bit quantizers (aarch64); the same values as the portable
// loops, NaN and signed zeros included.
#include <arm_neon.h>

#include <cmath>

#include "quantize.h"

namespace bmxnet {
namespace kernels {
namespace simd {

void SignActivation(const float* x, float* y, int64_t n) {
  const float32x4_t zero = vdupq_n_f32(0.0f), plus = vdupq_n_f32(1.0f), minus = vdupq_n_f32(-1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)  // NaN >= 0 is false: -1, as the scalar test gives
    vst1q_f32(y + i, vbslq_f32(vcgeq_f32(vld1q_f32(x + i), zero), plus, minus));
  for (; i < n; ++i) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}

void SteGradient(float clip, const float* x, const float* dy, float* dx, int64_t n) {
  const float32x4_t limit = vdupq_n_f32(clip);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32x4_t inside = vcleq_f32(vabsq_f32(vld1q_f32(x + i)), limit);
    vst1q_f32(dx + i, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(vld1q_f32(dy + i)), inside)));
  }
  for (; i < n; ++i) dx[i] = std::fabs(x[i]) <= clip ? dy[i] : 0.0f;
}

}  // namespace simd
}  // namespace kernels
}  // namespace bmxnet
