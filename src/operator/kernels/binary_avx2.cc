// AVX2 build of the binary inner loops (-mavx2 -mfma -mpopcnt); used only when the CPU
// reports AVX2. Popcounts use the nibble-table shuffle (Mula et al.): byte counts add up
// for up to kByteSteps words before vpsadbw widens them.
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
  __m256i Bytes(__m256i v) const { return Counts(Low(v), High(v)); }
  // v's low and high nibbles, each in the low half of its byte.
  __m256i Low(__m256i v) const { return _mm256_and_si256(v, low_nibbles); }
  __m256i High(__m256i v) const { return _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles); }
  // Per-byte popcounts from the nibbles (a byte of index 0x80 or more counts 0).
  __m256i Counts(__m256i low, __m256i high) const {
    return _mm256_add_epi8(_mm256_shuffle_epi8(table, low), _mm256_shuffle_epi8(table, high));
  }
};

constexpr int64_t kByteSteps = 31;  // words whose byte counts (each <= 8) fit a byte

// Bytes of 4 pixels' words that the shuffle of a padded word should count as 0: entry m
// has 0x80 (a shuffle index with bit 7 set, which yields 0) in lane i unless bit i of m is
// set.
struct PaddedLanes {
  alignas(32) uint64_t lanes[16][4];
  PaddedLanes() {
    for (int m = 0; m < 16; ++m)
      for (int i = 0; i < 4; ++i) lanes[m][i] = (m >> i & 1) ? 0 : 0x8080808080808080ull;
  }
  __m256i operator()(unsigned m) const { return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes[m & 15])); }
};
const PaddedLanes kPaddedLanes;

// The output values of output's first filter for pixels first .. first + 7 of a tile, from
// their mismatches in two vectors of 64-bit lanes, finished as the portable StoreTile does:
// counted - 2 * mismatches, times scale, plus bias, plus residual, one float step each.
inline void FinishHalf(__m256i left, __m256i right, const TilePanel& panel, int first, const TileOutput& output) {
  const int pixels = std::min(8, panel.pixels - first);
  // The low halves of the 64-bit lanes, in pixel order: (0 1 4 5 | 2 3 6 7), then swap.
  const __m256i mismatches = _mm256_permute4x64_epi64(
      _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(left), _mm256_castsi256_ps(right), 0x88)), 0xd8);
  const __m256i counted = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.counted + first));
  __m256 value = _mm256_cvtepi32_ps(_mm256_sub_epi32(counted, _mm256_add_epi32(mismatches, mismatches)));
  if (output.scale != nullptr) value = _mm256_mul_ps(value, _mm256_set1_ps(output.scale[0]));
  if (output.bias != nullptr) value = _mm256_add_ps(value, _mm256_set1_ps(output.bias[0]));
  const __m256i existing = _mm256_cmpgt_epi32(_mm256_set1_epi32(pixels), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (output.residual != nullptr)
    value = _mm256_add_ps(value, _mm256_maskload_ps(output.residual + first, existing));
  float* out = output.out + first;
  if (pixels == 8)
    _mm256_storeu_ps(out, value);
  else
    _mm256_maskstore_ps(out, existing, value);
}

// The pixel side of the nibble-table popcount (Mula et al.) of x xor w, split once per tile
// for all its filters: the low and the high nibble of every byte of the words, each in the
// low half of its byte. Since (x xor w)'s nibbles are x's nibbles xor w's, a filter word
// then costs two xors, two shuffles and two adds per vector of 4 pixels (the weights come
// split likewise, see PrepareWeights), not the 8 operations of splitting x xor w itself.
struct PixelNibbles {
  __m256i low, high;
};

// One filter against the first `Vectors` vectors of 4 pixels of a tile: the filter's words
// are read once for the whole tile, and each pixel word once per filter. A tile of at most
// 4, 8 or 12 pixels leaves the vectors past them out: a 7x7 map is 3 tiles and 1 pixel,
// whose 16-pixel tile would have cost a quarter of the layer.
template <int Vectors>
void MismatchTile(const PixelNibbles* pixels, const TilePanel& panel, const uint64_t* weights, int64_t depth,
                  const TileOutput& output) {
  const NibblePopcount popcount;
  __m256i total[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
  for (int64_t k0 = 0; k0 < depth; k0 += kByteSteps) {
    const int64_t k_end = std::min(depth, k0 + kByteSteps);
    __m256i bytes[Vectors];
    for (int v = 0; v < Vectors; ++v) bytes[v] = _mm256_setzero_si256();
    for (int64_t k = k0; k < k_end; ++k) {
      const PixelNibbles* x = pixels + k * 4;
      const __m256i w_low = _mm256_set1_epi64x(static_cast<long long>(weights[2 * k]));
      const __m256i w_high = _mm256_set1_epi64x(static_cast<long long>(weights[2 * k + 1]));
      for (int v = 0; v < Vectors; ++v)
        bytes[v] = _mm256_add_epi8(bytes[v], popcount.Counts(_mm256_xor_si256(x[v].low, w_low),
                                                             _mm256_xor_si256(x[v].high, w_high)));
    }
    for (int v = 0; v < Vectors; ++v)
      total[v] = _mm256_add_epi64(total[v], _mm256_sad_epu8(bytes[v], _mm256_setzero_si256()));
  }
  FinishHalf(total[0], total[1], panel, 0, output);
  if (Vectors > 2) FinishHalf(total[2], total[3], panel, 8, output);
}

// Splits the tile's words into nibbles (`vectors` vectors of 4 pixels per word); a padded word's
// bytes become 0x80, which the shuffle counts as 0, so padding costs nothing per filter.
void SplitPixels(const TilePanel& panel, int64_t depth, int vectors, PixelNibbles* out) {
  const NibblePopcount popcount;
  for (int64_t k = 0; k < depth; ++k)
    for (int v = 0; v < vectors; ++v) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel.rows[k] + 4 * v));
      __m256i low = popcount.Low(x), high = popcount.High(x);
      if (panel.valid != nullptr) {
        const __m256i padded = kPaddedLanes(panel.valid[k] >> (4 * v));
        low = _mm256_or_si256(low, padded);
        high = _mm256_or_si256(high, padded);
      }
      out[k * 4 + v] = {low, high};
    }
}

// Filter by filter, each against the whole tile.
void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  thread_local std::vector<PixelNibbles> pixels;
  pixels.resize(depth * 4);
  const int vectors = (panel.pixels + 3) / 4;
  SplitPixels(panel, depth, vectors, pixels.data());
  const bool far_rows = output.residual != nullptr && output.stride >= 256;
  for (int64_t f = 0; f < filters; ++f) {
    const uint64_t* w = weights + 2 * f * depth;
    const TileOutput at = Shifted(output, f);
    if (far_rows && f + 1 < filters) {
      // the residual the next filter adds, in a row far from this one's, which would
      // otherwise wait for the caches at its end (rows close together are prefetched anyway)
      __builtin_prefetch(output.residual + (f + 1) * output.stride);
      __builtin_prefetch(output.residual + (f + 1) * output.stride + 15);
    }
    switch (vectors) {
      case 1: MismatchTile<1>(pixels.data(), panel, w, depth, at); break;
      case 2: MismatchTile<2>(pixels.data(), panel, w, depth, at); break;
      case 3: MismatchTile<3>(pixels.data(), panel, w, depth, at); break;
      default: MismatchTile<4>(pixels.data(), panel, w, depth, at);
    }
  }
}

// Each weight word as its low and its high nibbles, each in the low half of its byte.
void PrepareWeights(const uint64_t* w, int64_t words, uint64_t* out) {
  constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;
  for (int64_t i = 0; i < words; ++i) {
    out[2 * i] = w[i] & kLowNibbles;
    out[2 * i + 1] = (w[i] >> 4) & kLowNibbles;
  }
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

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes, 2, PrepareWeights};

}  // namespace avx2
}  // namespace kernels
}  // namespace bmxnet
