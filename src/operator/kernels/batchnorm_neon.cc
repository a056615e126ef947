// NEON build of the BatchNorm passes (aarch64): each formula of batchnorm.h step for step
// (vfmaq_f32 only where the formula fuses), the ReLU as v < 0 ? 0 : v.
#include <arm_neon.h>

#include "batchnorm.h"

namespace bmxnet {
namespace kernels {
namespace simd {
namespace {

float32x4_t Affine(BatchNormFormula formula, float32x4_t x, const BatchNormChannel& k) {
  const float32x4_t centered = vsubq_f32(x, vdupq_n_f32(k.mean)), factor = vdupq_n_f32(k.factor),
                    beta = vdupq_n_f32(k.beta);
  switch (formula) {
    case BatchNormFormula::kOneDnnBlocked: return vfmaq_f32(beta, centered, factor);
    case BatchNormFormula::kNative: return vaddq_f32(vmulq_f32(vmulq_f32(centered, factor), vdupq_n_f32(k.gamma)), beta);
    case BatchNormFormula::kNativeFused: return vfmaq_f32(beta, vmulq_f32(centered, factor), vdupq_n_f32(k.gamma));
    default: return vaddq_f32(vmulq_f32(centered, factor), beta);
  }
}

float32x4_t Values(BatchNormFormula formula, bool relu, float32x4_t x, const BatchNormChannel& k) {
  const float32x4_t value = Affine(formula, x, k);
  // not vmaxq_f32: it would turn -0 into +0
  return relu ? vbslq_f32(vcltq_f32(value, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), value) : value;
}

// rows[r] holds 4 values of row r; afterwards rows[j] holds column j.
void Transpose4x4(float32x4_t rows[4]) {
  const float32x4_t a = vtrn1q_f32(rows[0], rows[1]), b = vtrn2q_f32(rows[0], rows[1]);
  const float32x4_t c = vtrn1q_f32(rows[2], rows[3]), d = vtrn2q_f32(rows[2], rows[3]);
  rows[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(c)));
  rows[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(b), vreinterpretq_f64_f32(d)));
  rows[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(c)));
  rows[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(b), vreinterpretq_f64_f32(d)));
}

}  // namespace

void BatchNormPlane(BatchNormFormula formula, bool relu, const float* x, int64_t n, const BatchNormChannel& k,
                    float* y) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, Values(formula, relu, vld1q_f32(x + i), k));
  for (; i < n; ++i) y[i] = BatchNormOutput(formula, relu, x[i], k);
}

// 8 pixels as two 4 x 4 blocks per 4 channels.
void BatchNormPixelsChannelsLast(BatchNormFormula formula, bool relu, const float* x, int64_t spatial,
                                 int64_t channels, int64_t first, int64_t c_begin, int64_t c_end,
                                 const BatchNormChannel* k, float* y) {
  int64_t c = c_begin;
  for (; c + 4 <= c_end; c += 4) {
    float32x4_t low[4], high[4];  // pixels first .. first + 3 and first + 4 .. first + 7
    for (int r = 0; r < 4; ++r) {
      low[r] = vld1q_f32(x + (first + r) * channels + c);
      high[r] = vld1q_f32(x + (first + 4 + r) * channels + c);
    }
    Transpose4x4(low);
    Transpose4x4(high);
    for (int j = 0; j < 4; ++j) {
      float* out = y + (c + j) * spatial + first;
      vst1q_f32(out, Values(formula, relu, low[j], k[c + j]));
      vst1q_f32(out + 4, Values(formula, relu, high[j], k[c + j]));
    }
  }
  for (; c < c_end; ++c)
    for (int64_t p = first; p < first + 8; ++p)
      y[c * spatial + p] = BatchNormOutput(formula, relu, x[p * channels + c], k[c]);
}

}  // namespace simd
}  // namespace kernels
}  // namespace bmxnet
