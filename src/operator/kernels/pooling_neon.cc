// NEON build of the pooling blocks (aarch64; PoolBlock in pooling.h): 8 outputs of a row as
// two vectors of 4, and channels-last pixels, 4 channels per vector; the same comparisons
// and adds as PoolValue.
#include <arm_neon.h>

#include "pooling.h"

namespace bmxnet {
namespace kernels {
namespace simd {
namespace {

// Input columns c, c + stride, ..., c + 7 * stride of a row from p = column c, of which
// `outputs` exist. Whole vector loads only where all they read lies before `end` (the end
// of the plane): stride 2 reads 16 floats for the 15 it uses.
template <int kStride>
inline void Taps(const float* p, int outputs, const float* end, float32x4_t* low, float32x4_t* high) {
  if (outputs == 8 && p + 8 * kStride <= end) {
    if (kStride == 1) {
      *low = vld1q_f32(p);
      *high = vld1q_f32(p + 4);
    } else {
      *low = vld2q_f32(p).val[0];
      *high = vld2q_f32(p + 8).val[0];
    }
    return;
  }
  float taps[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < outputs; ++i) taps[i] = p[i * kStride];
  *low = vld1q_f32(taps);
  *high = vld1q_f32(taps + 4);
}

// v > value ? v : value, as PoolValue compares (vmaxq_f32 differs for NaN and signed zeros)
inline float32x4_t Larger(float32x4_t v, float32x4_t value) { return vbslq_f32(vcgtq_f32(v, value), v, value); }

// kRows output rows at once: their chains of dependent adds (or maxes) interleave.
template <bool kMax, int kStride, int kRows>
void Block(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
           float* out) {
  const float* end = plane + g.in_height * g.in_width;
  float32x4_t low[kRows], high[kRows];
  for (int r = 0; r < kRows; ++r) low[r] = high[r] = vdupq_n_f32(kMax ? kPoolLowest : 0.0f);
  const float* corner = plane + rows.first * g.in_width + ow * kStride - g.pad_w;
  for (int64_t i = 0; i < rows.taps; ++i)
    for (int64_t j = 0; j < g.kernel_w; ++j)
      for (int r = 0; r < kRows; ++r) {
        float32x4_t a, b;
        Taps<kStride>(corner + (r * g.stride_h + i) * g.in_width + j, outputs, end, &a, &b);
        low[r] = kMax ? Larger(a, low[r]) : vaddq_f32(low[r], a);
        high[r] = kMax ? Larger(b, high[r]) : vaddq_f32(high[r], b);
      }
  const float32x4_t count = vdupq_n_f32(static_cast<float>(rows.count) * static_cast<float>(g.kernel_w));
  for (int r = 0; r < kRows; ++r) {
    float values[8];
    vst1q_f32(values, kMax ? low[r] : vdivq_f32(low[r], count));
    vst1q_f32(values + 4, kMax ? high[r] : vdivq_f32(high[r], count));
    for (int i = 0; i < outputs; ++i) out[r * g.out_width + i] = values[i];
  }
}

template <bool kMax, int kStride>
void BlockOf(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
             float* out) {
  if (rows.rows == kPoolBlockRows) Block<kMax, kStride, kPoolBlockRows>(g, rows, plane, ow, outputs, out);
  else Block<kMax, kStride, 1>(g, rows, plane, ow, outputs, out);
}

// kVectors vectors of 4 channels of one channels-last output pixel (image and out at the
// first of them), kept in registers over the window's taps.
template <bool kMax, bool kDivideEachTap, int kVectors>
inline void ChannelVectors(const PoolGeometry& g, const float* image, const PoolWindow& rows,
                           const PoolWindow& columns, float32x4_t count, float* out) {
  float32x4_t values[kVectors];
  for (int v = 0; v < kVectors; ++v) values[v] = vdupq_n_f32(kMax ? kPoolLowest : 0.0f);
  for (int64_t h = rows.first; h < rows.end; ++h)
    for (int64_t w = columns.first; w < columns.end; ++w) {
      const float* tap = image + (h * g.in_width + w) * g.channels;
      for (int v = 0; v < kVectors; ++v) {
        const float32x4_t x = vld1q_f32(tap + 4 * v);
        values[v] = kMax ? Larger(x, values[v]) : vaddq_f32(values[v], kDivideEachTap ? vdivq_f32(x, count) : x);
      }
    }
  for (int v = 0; v < kVectors; ++v)
    vst1q_f32(out + 4 * v, kMax || kDivideEachTap ? values[v] : vdivq_f32(values[v], count));
}

template <bool kMax, bool kDivideEachTap>
void PixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                   float* out) {
  const float32x4_t count = vdupq_n_f32(static_cast<float>(rows.count * columns.count));
  int64_t c = 0;
  for (; c + 32 <= g.channels; c += 32)
    ChannelVectors<kMax, kDivideEachTap, 8>(g, image + c, rows, columns, count, out + c);
  for (; c + 4 <= g.channels; c += 4)
    ChannelVectors<kMax, kDivideEachTap, 1>(g, image + c, rows, columns, count, out + c);
  if (c < g.channels) kernels::PoolPixelChannels(g, image, rows, columns, c, g.channels, out);
}

}  // namespace

void PoolPixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                       float* out) {
  if (g.max) PixelChannels<true, false>(g, image, rows, columns, out);
  else if (g.divide_each_tap) PixelChannels<false, true>(g, image, rows, columns, out);
  else PixelChannels<false, false>(g, image, rows, columns, out);
}

void PoolBlock(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
               float* out) {
  if (g.stride_w == 1) (g.max ? BlockOf<true, 1> : BlockOf<false, 1>)(g, rows, plane, ow, outputs, out);
  else (g.max ? BlockOf<true, 2> : BlockOf<false, 2>)(g, rows, plane, ow, outputs, out);
}

}  // namespace simd
}  // namespace kernels
}  // namespace bmxnet
