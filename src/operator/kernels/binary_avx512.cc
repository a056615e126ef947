// AVX-512 build of the binary inner loops (-mavx512f -mavx512bw -mavx512dq -mavx512vl
// -mavx512vpopcntdq); used only when the CPU reports VPOPCNTDQ.
#include <immintrin.h>

#include <algorithm>

#include "binary_kernels.h"

namespace bmxnet {
namespace kernels {
namespace avx512 {
namespace {

// `Filters` filters against the 16 pixels of a tile: 2 * Filters accumulators stay in
// registers, each filter word is broadcast once per k and meets both pixel vectors.
template <int Filters>
void MismatchRows(const uint64_t* panel, const uint64_t* weights, int64_t depth, int32_t* counts) {
  __m512i total[Filters][2];
  for (int f = 0; f < Filters; ++f) total[f][0] = total[f][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < depth; ++k) {
    const __m512i left = _mm512_loadu_si512(panel + k * kTilePixels);
    const __m512i right = _mm512_loadu_si512(panel + k * kTilePixels + 8);
    for (int f = 0; f < Filters; ++f) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(weights[f * depth + k]));
      total[f][0] = _mm512_add_epi64(total[f][0], _mm512_popcnt_epi64(_mm512_xor_si512(left, w)));
      total[f][1] = _mm512_add_epi64(total[f][1], _mm512_popcnt_epi64(_mm512_xor_si512(right, w)));
    }
  }
  for (int f = 0; f < Filters; ++f) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + f * kTilePixels),
                        _mm512_cvtepi64_epi32(total[f][0]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + f * kTilePixels + 8),
                        _mm512_cvtepi64_epi32(total[f][1]));
  }
}

void MismatchTile(const uint64_t* panel, const uint64_t* weights, int64_t depth, int64_t filters,
                  int32_t* counts) {
  int64_t f = 0;
  for (; f + 8 <= filters; f += 8) MismatchRows<8>(panel, weights + f * depth, depth, counts + f * kTilePixels);
  const uint64_t* w = weights + f * depth;
  int32_t* c = counts + f * kTilePixels;
  switch (filters - f) {
    case 7: MismatchRows<7>(panel, w, depth, c); break;
    case 6: MismatchRows<6>(panel, w, depth, c); break;
    case 5: MismatchRows<5>(panel, w, depth, c); break;
    case 4: MismatchRows<4>(panel, w, depth, c); break;
    case 3: MismatchRows<3>(panel, w, depth, c); break;
    case 2: MismatchRows<2>(panel, w, depth, c); break;
    case 1: MismatchRows<1>(panel, w, depth, c); break;
    default: break;
  }
}

int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  __m512i total = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 8 <= words; k += 8)
    total = _mm512_add_epi64(total, _mm512_popcnt_epi64(_mm512_xor_si512(
                                        _mm512_loadu_si512(a + k), _mm512_loadu_si512(b + k))));
  if (k < words) {
    const __mmask8 tail = static_cast<__mmask8>((1u << (words - k)) - 1);
    total = _mm512_add_epi64(total, _mm512_popcnt_epi64(_mm512_xor_si512(
                                        _mm512_maskz_loadu_epi64(tail, a + k),
                                        _mm512_maskz_loadu_epi64(tail, b + k))));
  }
  return _mm512_reduce_add_epi64(total);
}

// 16 pixels at a time: one compare per channel gives a 16-bit mask of negative pixels,
// whose two halves set bit c in the 8 + 8 pixel words through masked ORs.
void PackPlanes(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                uint64_t* out, int64_t out_stride) {
  const __m512 zero = _mm512_setzero_ps();
  alignas(64) uint64_t words[16];
  for (int64_t s0 = 0; s0 < pixels; s0 += 16) {
    const int64_t n = std::min<int64_t>(16, pixels - s0);
    const __mmask16 valid = static_cast<__mmask16>((1u << n) - 1);
    __m512i low = _mm512_setzero_si512(), high = _mm512_setzero_si512();
    for (int64_t c = 0; c < channels; ++c) {
      const __m512 v = _mm512_maskz_loadu_ps(valid, x + c * plane_stride + s0);
      const __mmask16 negative = _mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_NGE_UQ);
      const __m512i bit = _mm512_set1_epi64(static_cast<long long>(uint64_t(1) << c));
      low = _mm512_mask_or_epi64(low, static_cast<__mmask8>(negative), low, bit);
      high = _mm512_mask_or_epi64(high, static_cast<__mmask8>(negative >> 8), high, bit);
    }
    if (out_stride == 1 && n == 16) {
      _mm512_storeu_si512(out + s0, low);
      _mm512_storeu_si512(out + s0 + 8, high);
      continue;
    }
    _mm512_store_si512(words, low);
    _mm512_store_si512(words + 8, high);
    for (int64_t p = 0; p < n; ++p) out[(s0 + p) * out_stride] = words[p];
  }
}

}  // namespace

const BinaryKernels kBinaryKernels = {MismatchTile, XorPopcount, PackPlanes};

}  // namespace avx512
}  // namespace kernels
}  // namespace bmxnet
