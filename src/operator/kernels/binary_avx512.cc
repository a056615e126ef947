// AVX-512 build of the binary inner loops (-mavx512f -mavx512bw -mavx512dq -mavx512vl
// -mavx512vpopcntdq); used only when the CPU reports VPOPCNTDQ.
#include <immintrin.h>

#include <algorithm>

#include "binary_kernels.h"
#include "tile_output.h"

namespace bmxnet {
namespace kernels {
namespace avx512 {
namespace {

// `Filters` filters against the 16 pixels of a tile: 2 * Filters accumulators stay in
// registers, each filter word is broadcast once per k and meets both pixel vectors; the
// counts become output values without leaving the registers.
template <int Filters, bool kMasked>
void ConvRows(const TilePanel& panel, const uint64_t* weights, int64_t depth, const TileOutput& output) {
  __m512i total[Filters][2];
  for (int f = 0; f < Filters; ++f) total[f][0] = total[f][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < depth; ++k) {
    const __m512i left = _mm512_loadu_si512(panel.rows[k]);
    const __m512i right = _mm512_loadu_si512(panel.rows[k] + 8);
    __m512i left_valid = left, right_valid = right;
    if (kMasked) {
      left_valid = _mm512_loadu_si512(panel.valid[k]);
      right_valid = _mm512_loadu_si512(panel.valid[k] + 8);
    }
    for (int f = 0; f < Filters; ++f) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(weights[f * depth + k]));
      __m512i l, r;
      if (kMasked) {  // (bits xor w) and valid in one instruction
        l = _mm512_ternarylogic_epi64(left, w, left_valid, 0x28);
        r = _mm512_ternarylogic_epi64(right, w, right_valid, 0x28);
      } else {
        l = _mm512_xor_si512(left, w);
        r = _mm512_xor_si512(right, w);
      }
      total[f][0] = _mm512_add_epi64(total[f][0], _mm512_popcnt_epi64(l));
      total[f][1] = _mm512_add_epi64(total[f][1], _mm512_popcnt_epi64(r));
    }
  }
  const __m512i counted = _mm512_loadu_si512(panel.counted);
  const __mmask16 existing = static_cast<__mmask16>((1u << panel.pixels) - 1);
  for (int f = 0; f < Filters; ++f) {
    const __m512i mismatches = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(total[f][0])),
                                                  _mm512_cvtepi64_epi32(total[f][1]), 1);
    __m512 value = _mm512_cvtepi32_ps(_mm512_sub_epi32(counted, _mm512_slli_epi32(mismatches, 1)));
    if (output.scale != nullptr) value = _mm512_mul_ps(value, _mm512_set1_ps(output.scale[f]));
    if (output.bias != nullptr) value = _mm512_add_ps(value, _mm512_set1_ps(output.bias[f]));
    if (output.residual != nullptr)
      value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(existing, output.residual + f * output.stride));
    _mm512_mask_storeu_ps(output.out + f * output.stride, existing, value);
  }
}

template <bool kMasked>
void ConvTileRows(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
                  const TileOutput& output) {
  int64_t f = 0;
  for (; f + 8 <= filters; f += 8) ConvRows<8, kMasked>(panel, weights + f * depth, depth, Shifted(output, f));
  const uint64_t* w = weights + f * depth;
  const TileOutput rest = Shifted(output, f);
  switch (filters - f) {
    case 7: ConvRows<7, kMasked>(panel, w, depth, rest); break;
    case 6: ConvRows<6, kMasked>(panel, w, depth, rest); break;
    case 5: ConvRows<5, kMasked>(panel, w, depth, rest); break;
    case 4: ConvRows<4, kMasked>(panel, w, depth, rest); break;
    case 3: ConvRows<3, kMasked>(panel, w, depth, rest); break;
    case 2: ConvRows<2, kMasked>(panel, w, depth, rest); break;
    case 1: ConvRows<1, kMasked>(panel, w, depth, rest); break;
    default: break;
  }
}

void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  (panel.valid ? ConvTileRows<true> : ConvTileRows<false>)(panel, weights, depth, filters, output);
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
                const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride) {
  alignas(64) uint64_t words[16];
  for (int64_t s0 = 0; s0 < pixels; s0 += 16) {
    const int64_t n = std::min<int64_t>(16, pixels - s0);
    const __mmask16 valid = static_cast<__mmask16>((1u << n) - 1);
    __m512i low = _mm512_setzero_si512(), high = _mm512_setzero_si512();
    for (int64_t c = 0; c < channels; ++c) {
      __m512 v = _mm512_maskz_loadu_ps(valid, x + c * plane_stride + s0);
      __m512 threshold = _mm512_setzero_ps();
      if (thresholds.direction != nullptr) {
        v = _mm512_mul_ps(v, _mm512_set1_ps(thresholds.direction[c]));
        threshold = _mm512_set1_ps(thresholds.threshold[c]);
      }
      const __mmask16 negative = _mm512_mask_cmp_ps_mask(valid, v, threshold, _CMP_NGE_UQ);
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

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes};

}  // namespace avx512
}  // namespace kernels
}  // namespace bmxnet
