// Compiled with -mavx2; called only after ActiveIsa() reported AVX2 support: blocks of
// inner windows (PoolBlock in pooling.h), 8 outputs of a row per vector, and channels-last
// pixels, 8 channels per vector.
#include <immintrin.h>

#include "pooling.h"

namespace bmxnet {
namespace kernels {
namespace simd {
namespace {

// Input columns c, c + stride, ..., c + 7 * stride of a row (`outputs` of them exist),
// from row[0] = column c.
template <int kStride>
inline __m256 Taps(const float* row, int outputs, __m256i existing) {
  if (kStride == 1) return outputs == 8 ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, existing);
  // Stride 2: the even floats of 16, read as two halves of 8, masked past the last
  // output's tap (which may be the last float of the tensor).
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 low = outputs == 8 ? _mm256_loadu_ps(row)
                                  : _mm256_maskload_ps(row, _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * outputs - 1), lane));
  const __m256 high = _mm256_maskload_ps(row + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * outputs - 9), lane));
  // (l0 l2 h0 h2 | l4 l6 h4 h6) -> (l0 l2 l4 l6 h0 h2 h4 h6)
  const __m256 even = _mm256_shuffle_ps(low, high, 0x88);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xd8));
}

// kRows output rows at once: their chains of dependent adds (or maxes) interleave.
template <bool kMax, int kStride, int kRows>
void Block(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
           float* out) {
  const __m256i existing = _mm256_cmpgt_epi32(_mm256_set1_epi32(outputs), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 values[kRows];
  for (int r = 0; r < kRows; ++r) values[r] = kMax ? _mm256_set1_ps(kPoolLowest) : _mm256_setzero_ps();
  const float* corner = plane + rows.first * g.in_width + ow * kStride - g.pad_w;
  for (int64_t i = 0; i < rows.taps; ++i)
    for (int64_t j = 0; j < g.kernel_w; ++j)
      for (int r = 0; r < kRows; ++r) {
        const __m256 v = Taps<kStride>(corner + (r * g.stride_h + i) * g.in_width + j, outputs, existing);
        // max(v, values) is v > values ? v : values, as PoolValue compares
        values[r] = kMax ? _mm256_max_ps(v, values[r]) : _mm256_add_ps(values[r], v);
      }
  const __m256 count = _mm256_set1_ps(static_cast<float>(rows.count) * static_cast<float>(g.kernel_w));
  for (int r = 0; r < kRows; ++r) {
    const __m256 value = kMax ? values[r] : _mm256_div_ps(values[r], count);
    if (outputs == 8) _mm256_storeu_ps(out + r * g.out_width, value);
    else _mm256_maskstore_ps(out + r * g.out_width, existing, value);
  }
}

template <bool kMax, int kStride>
void BlockOf(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
             float* out) {
  if (rows.rows == kPoolBlockRows) Block<kMax, kStride, kPoolBlockRows>(g, rows, plane, ow, outputs, out);
  else Block<kMax, kStride, 1>(g, rows, plane, ow, outputs, out);
}

// kVectors vectors of 8 channels of one channels-last output pixel (image and out at the
// first of them), kept in registers over the window's taps.
template <bool kMax, bool kDivideEachTap, int kVectors>
inline void ChannelVectors(const PoolGeometry& g, const float* image, const PoolWindow& rows,
                           const PoolWindow& columns, __m256 count, float* out) {
  __m256 values[kVectors];
  for (int v = 0; v < kVectors; ++v) values[v] = kMax ? _mm256_set1_ps(kPoolLowest) : _mm256_setzero_ps();
  for (int64_t h = rows.first; h < rows.end; ++h)
    for (int64_t w = columns.first; w < columns.end; ++w) {
      const float* tap = image + (h * g.in_width + w) * g.channels;
      for (int v = 0; v < kVectors; ++v) {
        const __m256 x = _mm256_loadu_ps(tap + 8 * v);
        values[v] = kMax ? _mm256_max_ps(x, values[v])
                         : _mm256_add_ps(values[v], kDivideEachTap ? _mm256_div_ps(x, count) : x);
      }
    }
  for (int v = 0; v < kVectors; ++v)
    _mm256_storeu_ps(out + 8 * v, kMax || kDivideEachTap ? values[v] : _mm256_div_ps(values[v], count));
}

template <bool kMax, bool kDivideEachTap>
void PixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                   float* out) {
  const __m256 count = _mm256_set1_ps(static_cast<float>(rows.count * columns.count));
  int64_t c = 0;
  for (; c + 32 <= g.channels; c += 32)
    ChannelVectors<kMax, kDivideEachTap, 4>(g, image + c, rows, columns, count, out + c);
  for (; c + 8 <= g.channels; c += 8)
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
