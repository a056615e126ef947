// Portable build of the binary inner loops (no instruction-set flags). On x86 it is built
// a second time with -mpopcnt (binary_portable_popcnt.cc) under another namespace.
#include <algorithm>
#include <cstring>

#include "binary_kernels.h"
#include "bitpack.h"
#include "tile_output.h"

namespace bmxnet {
namespace kernels {
#ifndef BMXNET_PORTABLE_NAMESPACE
#define BMXNET_PORTABLE_NAMESPACE portable
#endif
namespace BMXNET_PORTABLE_NAMESPACE {
namespace {

// mismatches[f * kTilePixels + p] -> output values of `filters` filters: counted - 2 *
// mismatches, times scale, plus bias, plus residual, one float step each (the AVX2 and
// AVX-512 builds finish the same way in registers).
void StoreTile(const int32_t* mismatches, int64_t filters, const TilePanel& panel, const TileOutput& output) {
  for (int64_t f = 0; f < filters; ++f) {
    const int32_t* row = mismatches + f * kTilePixels;
    float values[kTilePixels];
    for (int p = 0; p < kTilePixels; ++p) values[p] = static_cast<float>(panel.counted[p] - 2 * row[p]);
    if (output.scale != nullptr)
      for (int p = 0; p < kTilePixels; ++p) values[p] *= output.scale[f];
    if (output.bias != nullptr)
      for (int p = 0; p < kTilePixels; ++p) values[p] += output.bias[f];
    float* out = output.out + f * output.stride;
    if (output.residual != nullptr) {
      const float* residual = output.residual + f * output.stride;
      for (int p = 0; p < panel.pixels; ++p) out[p] = values[p] + residual[p];
    } else if (panel.pixels == kTilePixels) {
      std::memcpy(out, values, sizeof(values));  // a fixed size: inlined, not a call
    } else {
      for (int p = 0; p < panel.pixels; ++p) out[p] = values[p];
    }
  }
}

template <bool kMasked>
void CountFilter(const TilePanel& panel, const uint64_t* weights, int64_t depth, int32_t* mismatches) {
  std::fill_n(mismatches, kTilePixels, 0);
  for (int64_t k = 0; k < depth; ++k) {
    const uint64_t* bits = panel.rows[k];
    for (int p = 0; p < kTilePixels; ++p) {
      const uint64_t valid = kMasked ? uint64_t(0) - ((panel.valid[k] >> p) & 1) : ~uint64_t(0);
      mismatches[p] += __builtin_popcountll((bits[p] ^ weights[k]) & valid);
    }
  }
}

void ConvTile(const TilePanel& panel, const uint64_t* weights, int64_t depth, int64_t filters,
              const TileOutput& output) {
  constexpr int64_t kBlock = 8;
  int32_t mismatches[kBlock * kTilePixels];
  for (int64_t f0 = 0; f0 < filters; f0 += kBlock) {
    const int64_t block = std::min(kBlock, filters - f0);
    for (int64_t f = 0; f < block; ++f)
      (panel.valid ? CountFilter<true> : CountFilter<false>)(panel, weights + (f0 + f) * depth, depth,
                                                            mismatches + f * kTilePixels);
    StoreTile(mismatches, block, panel, Shifted(output, f0));
  }
}

int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t count = 0;
  for (int64_t k = 0; k < words; ++k) count += __builtin_popcountll(a[k] ^ b[k]);
  return count;
}

void PackPlanes(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride) {
  // Blocks of pixels keep the reads of each plane contiguous.
  for (int64_t s0 = 0; s0 < pixels; s0 += kTilePixels) {
    const int64_t n = std::min<int64_t>(kTilePixels, pixels - s0);
    uint64_t bits[kTilePixels] = {0};
    for (int64_t c = 0; c < channels; ++c) {
      const float* plane = x + c * plane_stride + s0;
      if (thresholds.direction != nullptr) {
        const float direction = thresholds.direction[c], threshold = thresholds.threshold[c];
        for (int64_t p = 0; p < n; ++p) bits[p] |= BelowThresholdBit(plane[p], direction, threshold) << c;
      } else {
        for (int64_t p = 0; p < n; ++p) bits[p] |= NegativeBit(plane[p]) << c;
      }
    }
    for (int64_t p = 0; p < n; ++p) out[(s0 + p) * out_stride] = bits[p];
  }
}

}  // namespace

const BinaryKernels kBinaryKernels = {ConvTile, XorPopcount, PackPlanes, 1, nullptr};

}  // namespace BMXNET_PORTABLE_NAMESPACE
}  // namespace kernels
}  // namespace bmxnet
