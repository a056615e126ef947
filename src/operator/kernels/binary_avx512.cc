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

// The mismatches of one filter word against both pixel vectors of word k (kHalf: the
// left one only).
template <bool kMasked, bool kHalf>
inline void CountWord(const __m512i& left, const __m512i& right, __mmask8 left_valid, __mmask8 right_valid,
                      uint64_t weight, __m512i* left_count, __m512i* right_count) {
  const __m512i w = _mm512_set1_epi64(static_cast<long long>(weight));
  if (kMasked) {  // padded words become zero, whose popcount is 0
    *left_count = _mm512_popcnt_epi64(_mm512_maskz_xor_epi64(left_valid, left, w));
    if (!kHalf) *right_count = _mm512_popcnt_epi64(_mm512_maskz_xor_epi64(right_valid, right, w));
  } else {
    *left_count = _mm512_popcnt_epi64(_mm512_xor_si512(left, w));
    if (!kHalf) *right_count = _mm512_popcnt_epi64(_mm512_xor_si512(right, w));
  }
}

// `Filters` filters against the 16 pixels of a tile: 2 * Filters accumulators stay in
// registers, each filter word is broadcast once per k and meets both pixel vectors; the
// counts become output values without leaving the registers. Word 0 starts the
// accumulators (a 64-channel 3x3 layer has only 9 words: zeroing them cost 4%). A tile
// of at most 8 pixels (kHalf) leaves the right vector out: a 7x7 map is 3 tiles and 1
// pixel.
template <int Filters, bool kMasked, bool kHalf>
void ConvRows(const TilePanel& panel, const uint64_t* weights, int64_t depth, const TileOutput& output) {
  __m512i total[Filters][2];
  if (kHalf)
    for (int f = 0; f < Filters; ++f) total[f][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < depth; ++k) {
    const __m512i left = _mm512_loadu_si512(panel.rows[k]);
    const __m512i right = kHalf ? left : _mm512_loadu_si512(panel.rows[k] + 8);
    const __mmask8 left_valid = kMasked ? static_cast<__mmask8>(panel.valid[k]) : 0xff;
    const __mmask8 right_valid = kMasked ? static_cast<__mmask8>(panel.valid[k] >> 8) : 0xff;
    if (k == 0) {
#pragma GCC unroll 16
      for (int f = 0; f < Filters; ++f)
        CountWord<kMasked, kHalf>(left, right, left_valid, right_valid, weights[f * depth], &total[f][0],
                                  &total[f][1]);
      continue;
    }
#pragma GCC unroll 16
    for (int f = 0; f < Filters; ++f) {
      __m512i l, r;
      CountWord<kMasked, kHalf>(left, right, left_valid, right_valid, weights[f * depth + k], &l, &r);
      total[f][0] = _mm512_add_epi64(total[f][0], l);
      if (!kHalf) total[f][1] = _mm512_add_epi64(total[f][1], r);
    }
  }
  // counted - 2 * mismatches: the counts fit the even halves of the 64-bit lanes of both
  // vectors, which make 16 int32 lanes; one fused multiply-add in float is exact (all
  // values are integers below 2^24), then the float finish, each filter in registers.
  const __m512i even_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 counted = _mm512_cvtepi32_ps(_mm512_loadu_si512(panel.counted));
  const __m512 minus_two = _mm512_set1_ps(-2.0f);
  __m512 values[Filters];
#pragma GCC unroll 16
  for (int f = 0; f < Filters; ++f) {
    const __m512i mismatches = _mm512_permutex2var_epi32(total[f][0], even_halves, total[f][1]);
    values[f] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mismatches), minus_two, counted);
  }
  const __mmask16 existing = static_cast<__mmask16>((1u << panel.pixels) - 1);
#pragma GCC unroll 16
  for (int f = 0; f < Filters; ++f) {
    __m512 value = values[f];
    if (output.scale != nullptr) value = _mm512_mul_ps(value, _mm512_set1_ps(output.scale[f]));
    if (output.bias != nullptr) value = _mm512_add_ps(value, _mm512_set1_ps(output.bias[f]));
    if (output.residual != nullptr)
      value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(existing, output.residual + f * output.stride));
    _mm512_mask_storeu_ps(output.out + f * output.stride, existing, value);
  }
}

template <bool kMasked, bool kHalf>
void ConvTileRows(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
                  const TileOutput& output) {
  int64_t f = 0;
  for (; f + 8 <= filters; f += 8)
    ConvRows<8, kMasked, kHalf>(panel, weights + f * depth, depth, Shifted(output, f));
  const uint64_t* w = weights + f * depth;
  const TileOutput rest = Shifted(output, f);
  switch (filters - f) {
    case 7: ConvRows<7, kMasked, kHalf>(panel, w, depth, rest); break;
    case 6: ConvRows<6, kMasked, kHalf>(panel, w, depth, rest); break;
    case 5: ConvRows<5, kMasked, kHalf>(panel, w, depth, rest); break;
    case 4: ConvRows<4, kMasked, kHalf>(panel, w, depth, rest); break;
    case 3: ConvRows<3, kMasked, kHalf>(panel, w, depth, rest); break;
    case 2: ConvRows<2, kMasked, kHalf>(panel, w, depth, rest); break;
    case 1: ConvRows<1, kMasked, kHalf>(panel, w, depth, rest); break;
    default: break;
  }
}

void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  const bool half = panel.pixels <= 8;
  const auto rows = panel.valid ? (half ? ConvTileRows<true, true> : ConvTileRows<true, false>)
                                : (half ? ConvTileRows<false, true> : ConvTileRows<false, false>);
  rows(panel, weights, depth, filters, output);
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

// The mask of the 16 pixels at x whose channel-c value packs as -1.
template <bool kThresholds>
__mmask16 NegativeLanes(const float* x, __mmask16 valid, const ChannelThresholds& thresholds, int64_t c) {
  _mm_prefetch(reinterpret_cast<const char*>(x + 32), _MM_HINT_T0);
  __m512 v = valid == 0xffff ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(valid, x);
  __m512 threshold = _mm512_setzero_ps();
  if (kThresholds) {
    v = _mm512_mul_ps(v, _mm512_set1_ps(thresholds.direction[c]));
    threshold = _mm512_set1_ps(thresholds.threshold[c]);
  }
  return _mm512_mask_cmp_ps_mask(valid, v, threshold, _CMP_NGE_UQ);
}

// Bits of channels first, first + 1, ... (at most 32) of 16 pixels: lane p of the result
// holds bit c - first of channel c. One compare and one masked OR per channel, even and
// odd channels into separate accumulators so that the ORs do not wait for each other.
template <bool kThresholds>
__m512i PackLanes(const float* x, int64_t first, int64_t last, int64_t plane_stride, __mmask16 valid,
                  const ChannelThresholds& thresholds) {
  __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
  __m512i bit = _mm512_set1_epi32(1);
  int64_t c = first;
  for (; c + 1 < last; c += 2, bit = _mm512_slli_epi32(bit, 2)) {
    even = _mm512_mask_or_epi32(even, NegativeLanes<kThresholds>(x + c * plane_stride, valid, thresholds, c),
                                even, bit);
    odd = _mm512_mask_or_epi32(odd, NegativeLanes<kThresholds>(x + (c + 1) * plane_stride, valid, thresholds, c + 1),
                               odd, _mm512_add_epi32(bit, bit));
  }
  if (c < last)
    even = _mm512_mask_or_epi32(even, NegativeLanes<kThresholds>(x + c * plane_stride, valid, thresholds, c), even, bit);
  return _mm512_or_si512(even, odd);
}

// 16 pixels at a time: the bits of channels 0-31 and 32-63 in 32-bit lanes, interleaved
// into the pixels' 64-bit words at the end.
void PackPlanes(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride) {
  const __m512i first_eight = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i last_eight = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  alignas(64) uint64_t words[16];
  for (int64_t s0 = 0; s0 < pixels; s0 += 16) {
    const int64_t n = std::min<int64_t>(16, pixels - s0);
    const __mmask16 valid = static_cast<__mmask16>((1u << n) - 1);
    const auto pack = thresholds.direction != nullptr ? PackLanes<true> : PackLanes<false>;
    const __m512i low = pack(x + s0, 0, std::min<int64_t>(32, channels), plane_stride, valid, thresholds);
    const __m512i high = pack(x + s0, 32, channels, plane_stride, valid, thresholds);
    const __m512i left = _mm512_permutex2var_epi32(low, first_eight, high);
    const __m512i right = _mm512_permutex2var_epi32(low, last_eight, high);
    if (out_stride == 1 && n == 16) {
      _mm512_storeu_si512(out + s0, left);
      _mm512_storeu_si512(out + s0 + 8, right);
      continue;
    }
    _mm512_store_si512(words, left);
    _mm512_store_si512(words + 8, right);
    for (int64_t p = 0; p < n; ++p) out[(s0 + p) * out_stride] = words[p];
  }
}

}  // namespace

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes, 1, nullptr};

}  // namespace avx512
}  // namespace kernels
}  // namespace bmxnet
