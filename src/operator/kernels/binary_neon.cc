// NEON build of the binary inner loops (aarch64, where NEON is always there). Popcounts use
// vcntq_u8 (a count per byte): byte counts add up for up to kByteSteps words, then pairwise
// widening adds take them to 32-bit lanes. A pass counts 4 filters for 8 pixels.
#include <arm_neon.h>

#include <algorithm>

#include "binary_kernels.h"
#include "host_device.h"
#include "tile_output.h"

namespace bmxnet {
namespace kernels {
namespace neon {
namespace {

constexpr int64_t kByteSteps = 31;  // words whose byte counts (each <= 8) fit a byte
constexpr int kHalf = kTilePixels / 2;  // pixels per pass: 4 vectors of two pixels' words
// filters per pass: 16 byte counters, 4 vectors of words, 4 of masks and 4 of weights fit
// the 32 vector registers
constexpr int kFilters = 4;

// A vector of two pixels' words that counts where the word lies inside the image, indexed
// by the two pixels' bits of TilePanel::valid.
constexpr uint64_t kAll = ~uint64_t(0);
alignas(16) constexpr uint64_t kLaneMasks[4][2] = {{0, 0}, {kAll, 0}, {0, kAll}, {kAll, kAll}};

// Mismatches of filters f .. f + Filters - 1 for pixels first .. first + 7 of a tile, into
// mismatches[f][first + p] (pixels that do not exist count garbage, never stored).
template <int Filters, bool kMasked>
void CountFilters(const TilePanel& panel, int first, const uint64_t* weights, int64_t depth,
                  int32_t (*mismatches)[kTilePixels]) {
  constexpr int kVectors = kHalf / 2;
  uint32x4_t total[Filters][kVectors];
  for (int f = 0; f < Filters; ++f)
    for (int v = 0; v < kVectors; ++v) total[f][v] = vdupq_n_u32(0);
  for (int64_t k0 = 0; k0 < depth; k0 += kByteSteps) {
    const int64_t k_end = std::min(depth, k0 + kByteSteps);
    uint8x16_t bytes[Filters][kVectors];
    for (int f = 0; f < Filters; ++f)
      for (int v = 0; v < kVectors; ++v) bytes[f][v] = vdupq_n_u8(0);
    for (int64_t k = k0; k < k_end; ++k) {
      const uint64_t* row = panel.rows[k] + first;
      const unsigned valid = kMasked ? panel.valid[k] >> first : 0;
      uint64x2_t x[kVectors], lanes[kVectors];
      for (int v = 0; v < kVectors; ++v) {
        x[v] = vld1q_u64(row + 2 * v);
        if (kMasked) lanes[v] = vld1q_u64(kLaneMasks[(valid >> (2 * v)) & 3]);
      }
      for (int f = 0; f < Filters; ++f) {
        const uint64x2_t w = vld1q_u64(weights + 2 * (f * depth + k));  // the word twice (PrepareWeights)
        for (int v = 0; v < kVectors; ++v) {
          uint64x2_t differ = veorq_u64(x[v], w);
          if (kMasked) differ = vandq_u64(differ, lanes[v]);
          bytes[f][v] = vaddq_u8(bytes[f][v], vcntq_u8(vreinterpretq_u8_u64(differ)));
        }
      }
    }
    for (int f = 0; f < Filters; ++f)
      for (int v = 0; v < kVectors; ++v) total[f][v] = vpadalq_u16(total[f][v], vpaddlq_u8(bytes[f][v]));
  }
  for (int f = 0; f < Filters; ++f)
    for (int v = 0; v < kVectors; ++v) {
      const uint64x2_t pair = vpaddlq_u32(total[f][v]);  // the two pixels' sums
      mismatches[f][first + 2 * v] = static_cast<int32_t>(vgetq_lane_u64(pair, 0));
      mismatches[f][first + 2 * v + 1] = static_cast<int32_t>(vgetq_lane_u64(pair, 1));
    }
}

// Both halves of the tile (the second only when it has pixels) for `Filters` filters.
template <int Filters>
void CountTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int32_t (*mismatches)[kTilePixels]) {
  for (int first = 0; first < panel.pixels; first += kHalf)
    (panel.valid ? CountFilters<Filters, true> : CountFilters<Filters, false>)(panel, first, weights, depth,
                                                                               mismatches);
}

// counted - 2 * mismatches, times scale, plus bias, plus residual, one float step each, as
// the portable build finishes a tile.
void Finish(const int32_t* mismatches, const TilePanel& panel, int64_t f, const TileOutput& output) {
  float* out = output.out + f * output.stride;
  const float* residual = output.residual != nullptr ? output.residual + f * output.stride : nullptr;
  for (int p = 0; p < panel.pixels; ++p) {
    float value = static_cast<float>(panel.counted[p] - 2 * mismatches[p]);
    if (output.scale != nullptr) value = value * output.scale[f];
    if (output.bias != nullptr) value = value + output.bias[f];
    if (residual != nullptr) value = value + residual[p];
    out[p] = value;
  }
}

void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  int32_t mismatches[kFilters][kTilePixels];
  for (int64_t f = 0; f < filters; f += kFilters) {
    const int64_t block = std::min<int64_t>(kFilters, filters - f);
    const uint64_t* block_weights = weights + 2 * f * depth;
    switch (block) {
      case 4: CountTile<4>(panel, block_weights, depth, mismatches); break;
      case 3: CountTile<3>(panel, block_weights, depth, mismatches); break;
      case 2: CountTile<2>(panel, block_weights, depth, mismatches); break;
      default: CountTile<1>(panel, block_weights, depth, mismatches);
    }
    for (int64_t i = 0; i < block; ++i) Finish(mismatches[i], panel, f + i, output);
  }
}

// Byte counts of two words at a time, widened every kByteSteps pairs, summed at the end.
int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  uint64x2_t total = vdupq_n_u64(0);
  int64_t k = 0;
  while (k + 2 <= words) {
    const int64_t end = std::min(words & ~int64_t(1), k + 2 * kByteSteps);
    uint8x16_t bytes = vdupq_n_u8(0);
    for (; k < end; k += 2)
      bytes = vaddq_u8(bytes, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(a + k), vld1q_u64(b + k)))));
    total = vpadalq_u32(total, vpaddlq_u16(vpaddlq_u8(bytes)));
  }
  int64_t count = static_cast<int64_t>(vaddvq_u64(total));
  if (k < words) count += __builtin_popcountll(a[k] ^ b[k]);
  return count;
}

// Sign bits of 4 pixels (x[c * plane_stride + p], p < 4): a compare per channel sets bit c
// of each pixel's lane, channels 0-31 and 32-63 in 32-bit lanes joined at the end.
template <bool kThresholds>
void PackFourPixels(const float* x, int64_t channels, int64_t plane_stride, const ChannelThresholds& thresholds,
                    uint64_t* out, int64_t out_stride) {
  uint32x4_t halves[2] = {vdupq_n_u32(0), vdupq_n_u32(0)};
  for (int64_t half = 0; half < 2; ++half) {
    uint32x4_t bit = vdupq_n_u32(1), bits = vdupq_n_u32(0);
    for (int64_t c = 32 * half; c < std::min<int64_t>(channels, 32 * half + 32); ++c) {
      float32x4_t v = vld1q_f32(x + c * plane_stride), threshold = vdupq_n_f32(0.0f);
      if (kThresholds) {
        v = vmulq_n_f32(v, thresholds.direction[c]);
        threshold = vdupq_n_f32(thresholds.threshold[c]);
      }
      // bit set unless v >= threshold (so NaN sets it, -0 does not)
      bits = vorrq_u32(bits, vbicq_u32(bit, vcgeq_f32(v, threshold)));
      bit = vshlq_n_u32(bit, 1);
    }
    halves[half] = bits;
  }
  const uint64x2_t low =
      vorrq_u64(vmovl_u32(vget_low_u32(halves[0])), vshlq_n_u64(vmovl_u32(vget_low_u32(halves[1])), 32));
  const uint64x2_t high =
      vorrq_u64(vmovl_u32(vget_high_u32(halves[0])), vshlq_n_u64(vmovl_u32(vget_high_u32(halves[1])), 32));
  out[0] = vgetq_lane_u64(low, 0);
  out[out_stride] = vgetq_lane_u64(low, 1);
  out[2 * out_stride] = vgetq_lane_u64(high, 0);
  out[3 * out_stride] = vgetq_lane_u64(high, 1);
}

void PackPlanes(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride) {
  const auto four = thresholds.direction != nullptr ? PackFourPixels<true> : PackFourPixels<false>;
  int64_t s = 0;
  for (; s + 4 <= pixels; s += 4) four(x + s, channels, plane_stride, thresholds, out + s * out_stride, out_stride);
  for (; s < pixels; ++s) {  // the last pixels one at a time, as the portable build packs
    uint64_t bits = 0;
    for (int64_t c = 0; c < channels; ++c) {
      const float v = x[c * plane_stride + s];
      bits |= (thresholds.direction != nullptr ? BelowThresholdBit(v, thresholds.direction[c], thresholds.threshold[c])
                                               : NegativeBit(v)) << c;
    }
    out[s * out_stride] = bits;
  }
}

// Each weight word twice: one 128-bit load gives both lanes (a load and a dup cost a vector
// operation more per word).
void PrepareWeights(const uint64_t* w, int64_t words, uint64_t* out) {
  for (int64_t i = 0; i < words; ++i) out[2 * i] = out[2 * i + 1] = w[i];
}

}  // namespace

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes, 2, PrepareWeights};

}  // namespace neon
}  // namespace kernels
}  // namespace bmxnet
