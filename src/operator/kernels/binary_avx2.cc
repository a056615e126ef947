// AVX2 build of the binary inner loops (-mavx2 -mfma -mpopcnt); used only when the CPU
// reports AVX2. Popcounts use the nibble-table shuffle (Mula et al.): byte counts add up
// for up to 31 steps before vpsadbw widens them.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "binary_kernels.h"
#include "tile_output.h"

namespace bmxnet {
namespace kernels {
namespace avx2 {
namespace {

struct NibblePopcount {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low_nibbles = _mm256_set1_epi8(0x0f);

  // Per-byte popcounts (each <= 8) of v.
  __m256i Bytes(__m256i v) const { return Bytes(v, low_nibbles); }
  // The same where `nibbles` is 0x0f, 0 where it is 0 (the table maps nibble 0 to 0).
  __m256i Bytes(__m256i v, __m256i nibbles) const {
    return _mm256_add_epi8(
        _mm256_shuffle_epi8(table, _mm256_and_si256(v, nibbles)),
        _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibbles)));
  }
};

constexpr int64_t kByteSteps = 31;  // 31 * 8 < 256

// Nibble masks of 4 pixels: entry m has 0x0f in every byte of lane i when bit i of m is set.
struct NibbleMasks {
  alignas(32) uint64_t lanes[16][4];
  NibbleMasks() {
    for (int m = 0; m < 16; ++m)
      for (int i = 0; i < 4; ++i) lanes[m][i] = (m >> i & 1) ? 0x0f0f0f0f0f0f0f0full : 0;
  }
  __m256i operator()(unsigned m) const { return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes[m & 15])); }
};
const NibbleMasks kNibbleMasks;

// The output values of filter f for pixels first .. first + 7 of a tile, from their
// mismatches in two vectors of 64-bit lanes, finished as the portable StoreTile does:
// counted - 2 * mismatches, times scale, plus bias, plus residual, one float step each.
inline void FinishHalf(__m256i left, __m256i right, const TilePanel& panel, int first, int64_t f,
                       const TileOutput& output) {
  const int pixels = std::min(8, panel.pixels - first);
  // The low halves of the 64-bit lanes, in pixel order: (0 1 4 5 | 2 3 6 7), then swap.
  const __m256i mismatches = _mm256_permute4x64_epi64(
      _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(left), _mm256_castsi256_ps(right), 0x88)), 0xd8);
  const __m256i counted = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.counted + first));
  __m256 value = _mm256_cvtepi32_ps(_mm256_sub_epi32(counted, _mm256_add_epi32(mismatches, mismatches)));
  if (output.scale != nullptr) value = _mm256_mul_ps(value, _mm256_set1_ps(output.scale[f]));
  if (output.bias != nullptr) value = _mm256_add_ps(value, _mm256_set1_ps(output.bias[f]));
  const __m256i existing = _mm256_cmpgt_epi32(_mm256_set1_epi32(pixels), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (output.residual != nullptr)
    value = _mm256_add_ps(value, _mm256_maskload_ps(output.residual + f * output.stride + first, existing));
  float* out = output.out + f * output.stride + first;
  if (pixels == 8)
    _mm256_storeu_ps(out, value);
  else
    _mm256_maskstore_ps(out, existing, value);
}

// `Filters` filters against one half (8 pixels, two vectors) of a tile. With kMasked,
// `masks` holds nibble masks (0x0f in the lanes of valid words, else 0), which replace
// the popcount's own nibble mask: padded words count 0 at no extra operation.
template <int Filters, bool kMasked>
void MismatchHalf(const TilePanel& panel, const __m256i* masks, int half, const uint64_t* weights, int64_t depth,
                  const TileOutput& output) {
  const int first = half * 8;
  const NibblePopcount popcount;
  __m256i total[Filters][2];
  for (int f = 0; f < Filters; ++f) total[f][0] = total[f][1] = _mm256_setzero_si256();
  __m256i nibbles[2] = {popcount.low_nibbles, popcount.low_nibbles};
  for (int64_t k0 = 0; k0 < depth; k0 += kByteSteps) {
    const int64_t k_end = std::min(depth, k0 + kByteSteps);
    __m256i bytes[Filters][2];
    for (int f = 0; f < Filters; ++f) bytes[f][0] = bytes[f][1] = _mm256_setzero_si256();
    for (int64_t k = k0; k < k_end; ++k) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.rows[k] + first));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.rows[k] + first + 4));
      if (kMasked) {
        nibbles[0] = masks[k * 4 + half * 2];
        nibbles[1] = masks[k * 4 + half * 2 + 1];
      }
      for (int f = 0; f < Filters; ++f) {
        const __m256i w = _mm256_set1_epi64x(static_cast<long long>(weights[f * depth + k]));
        bytes[f][0] = _mm256_add_epi8(bytes[f][0], popcount.Bytes(_mm256_xor_si256(a, w), nibbles[0]));
        bytes[f][1] = _mm256_add_epi8(bytes[f][1], popcount.Bytes(_mm256_xor_si256(b, w), nibbles[1]));
      }
    }
    for (int f = 0; f < Filters; ++f)
      for (int v = 0; v < 2; ++v)
        total[f][v] = _mm256_add_epi64(total[f][v], _mm256_sad_epu8(bytes[f][v], _mm256_setzero_si256()));
  }
  for (int f = 0; f < Filters; ++f) FinishHalf(total[f][0], total[f][1], panel, first, f, output);
}

// One carry-save adder, bitwise: a + b + c = 2 * carry + sum.
inline void CarrySave(__m256i a, __m256i b, __m256i c, __m256i* carry, __m256i* sum) {
  const __m256i u = _mm256_xor_si256(a, b);
  *carry = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
  *sum = _mm256_xor_si256(u, c);
}

// One filter against 4 pixels of a tile (one vector) with Harley-Seal counting (as in
// Muła, Kurz and Lemire's AVX2 popcount): the mismatching bits go into bit-sliced
// counters (ones, twos, fours) through 7 carry-save adders per 8 words, and only the
// resulting eights are popcounted. Adders are plain and/or/xor, which more of the CPU's
// vector units execute than shuffles and shifts (all four on Zen 1). Words past the
// last whole group are popcounted one by one. Returns the 4 pixels' mismatches. For
// tiles without padding: the per-word popcount masks padded words for free, these adders
// would need an AND per word.
__m256i SlicedMismatches(const TilePanel& panel, int vector, const uint64_t* weights, int64_t depth) {
  const NibblePopcount popcount;
  const __m256i zero = _mm256_setzero_si256();
  __m256i ones = zero, twos = zero, fours = zero, eights = zero, total = zero;
  const auto word = [&](int64_t k) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.rows[k] + 4 * vector)),
                            _mm256_set1_epi64x(static_cast<long long>(weights[k])));
  };
  int64_t k = 0;
  for (int groups = 0; k + 8 <= depth; k += 8) {
    __m256i twos_a, twos_b, fours_a, fours_b, eight;
    CarrySave(ones, word(k), word(k + 1), &twos_a, &ones);
    CarrySave(ones, word(k + 2), word(k + 3), &twos_b, &ones);
    CarrySave(twos, twos_a, twos_b, &fours_a, &twos);
    CarrySave(ones, word(k + 4), word(k + 5), &twos_a, &ones);
    CarrySave(ones, word(k + 6), word(k + 7), &twos_b, &ones);
    CarrySave(twos, twos_a, twos_b, &fours_b, &twos);
    CarrySave(fours, fours_a, fours_b, &eight, &fours);
    eights = _mm256_add_epi8(eights, popcount.Bytes(eight));
    if (++groups == kByteSteps) {  // byte counts of eights grow by up to 8 per group
      total = _mm256_add_epi64(total, _mm256_sad_epu8(eights, zero));
      eights = zero;
      groups = 0;
    }
  }
  total = _mm256_slli_epi64(_mm256_add_epi64(total, _mm256_sad_epu8(eights, zero)), 3);
  // The rest in byte counts <= 7 * 8 + 8 + 2 * 8 + 4 * 8 = 112 (fours' counts <= 8, so
  // the 16-bit shift moves no bit across bytes).
  __m256i rest = _mm256_add_epi8(popcount.Bytes(ones), _mm256_slli_epi16(popcount.Bytes(fours), 2));
  const __m256i twos_bytes = popcount.Bytes(twos);
  rest = _mm256_add_epi8(rest, _mm256_add_epi8(twos_bytes, twos_bytes));
  for (; k < depth; ++k) rest = _mm256_add_epi8(rest, popcount.Bytes(word(k)));
  return _mm256_add_epi64(total, _mm256_sad_epu8(rest, zero));
}

void SlicedHalf(const TilePanel& panel, int half, const uint64_t* weights, int64_t depth, const TileOutput& output) {
  FinishHalf(SlicedMismatches(panel, half * 2, weights, depth), SlicedMismatches(panel, half * 2 + 1, weights, depth),
             panel, half * 8, 0, output);
}

// Deep enough for Harley-Seal counting to beat a popcount per word on tiles without
// padding. Measured on an Intel Xeon: 10% faster at 72 words (3x3, 512 channels), 10%
// slower at 36. llvm-mca models its loop 1.34x (Zen 1) and 1.5x (Zen 3) faster than the
// per-word one; not measured there.
constexpr int64_t kSlicedDepth = 64;

// A block of filters against the tile, half by half (a half without pixels is skipped).
template <bool kMasked>
void ConvBlock(const TilePanel& panel, const __m256i* masks, const uint64_t* weights, int64_t depth,
               int64_t filters, const TileOutput& output) {
  for (int half = 0; half < 2 && half * 8 < panel.pixels; ++half) {
    if (!kMasked && depth >= kSlicedDepth) {
      for (int64_t f = 0; f < filters; ++f) SlicedHalf(panel, half, weights + f * depth, depth, Shifted(output, f));
      continue;
    }
    int64_t f = 0;
    for (; f + 2 <= filters; f += 2)
      MismatchHalf<2, kMasked>(panel, masks, half, weights + f * depth, depth, Shifted(output, f));
    if (f < filters) MismatchHalf<1, kMasked>(panel, masks, half, weights + f * depth, depth, Shifted(output, f));
  }
}

// Blocks of 8 filters, whose words stay in the L1 cache for both halves of the tile.
void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  constexpr int64_t kBlock = 8;
  // A masked tile's nibble masks, 4 vectors per word, made once for all its filters.
  struct NibbleMask { __m256i lanes; };
  thread_local std::vector<NibbleMask> nibble_masks;
  const __m256i* masks = nullptr;
  if (panel.valid != nullptr) {
    nibble_masks.resize(depth * 4);
    for (int64_t k = 0; k < depth; ++k)
      for (int v = 0; v < 4; ++v) nibble_masks[k * 4 + v].lanes = kNibbleMasks(panel.valid[k] >> (4 * v));
    masks = &nibble_masks[0].lanes;
  }
  for (int64_t f0 = 0; f0 < filters; f0 += kBlock)
    (masks ? ConvBlock<true> : ConvBlock<false>)(panel, masks, weights + f0 * depth, depth,
                                                 std::min(kBlock, filters - f0), Shifted(output, f0));
}

int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t k = 0, count = 0;
  if (words >= 8) {
    const NibblePopcount popcount;
    __m256i total = _mm256_setzero_si256();
    for (; k + 4 <= words; k += 4) {
      const __m256i v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k)));
      total = _mm256_add_epi64(total, _mm256_sad_epu8(popcount.Bytes(v), _mm256_setzero_si256()));
    }
    count = _mm256_extract_epi64(total, 0) + _mm256_extract_epi64(total, 1) +
            _mm256_extract_epi64(total, 2) + _mm256_extract_epi64(total, 3);
  }
  for (; k < words; ++k) count += _mm_popcnt_u64(a[k] ^ b[k]);
  return count;
}

// 8 pixels at a time: a compare and a movemask per channel give a byte of 8 pixel bits.
// The 64 channel bytes, a 64 x 8 bit matrix, are then transposed with shifts and byte
// movemasks (shifted left by 7 - p, bit 7 of every byte is its bit p): about a third of
// the vector operations of widening each compare to 64-bit lanes.
void PackPlanes(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride) {
  alignas(32) uint8_t channel_bits[64] = {0};  // channels past `channels` stay 0
  for (int64_t s0 = 0; s0 < pixels; s0 += 8) {
    const int64_t n = std::min<int64_t>(8, pixels - s0);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t c = 0; c < channels; ++c) {
      const float* source = x + c * plane_stride + s0;
      __m256 v = n == 8 ? _mm256_loadu_ps(source) : _mm256_maskload_ps(source, valid);
      __m256 threshold = _mm256_setzero_ps();
      if (thresholds.direction != nullptr) {
        v = _mm256_mul_ps(v, _mm256_set1_ps(thresholds.direction[c]));
        threshold = _mm256_set1_ps(thresholds.threshold[c]);
      }
      channel_bits[c] = static_cast<uint8_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, threshold, _CMP_NGE_UQ)));
    }
    const __m256i low = _mm256_load_si256(reinterpret_cast<const __m256i*>(channel_bits));
    const __m256i high = _mm256_load_si256(reinterpret_cast<const __m256i*>(channel_bits + 32));
    for (int p = 0; p < n; ++p) {
      const __m128i shift = _mm_cvtsi32_si128(7 - p);
      const uint64_t low_bits = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_sll_epi16(low, shift)));
      const uint64_t high_bits = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_sll_epi16(high, shift)));
      out[(s0 + p) * out_stride] = low_bits | high_bits << 32;
    }
  }
}

}  // namespace

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes};

}  // namespace avx2
}  // namespace kernels
}  // namespace bmxnet
