// The finishing step of a binary convolution tile: the portable build counts into a small
// buffer and finishes it here; the AVX2 and AVX-512 builds finish in registers the same
// way (one float step each for scale, bias and residual) and use only Shifted. Each build
// compiles this header with its own vector flags.
#ifndef BMXNET_KERNELS_TILE_OUTPUT_H_
#define BMXNET_KERNELS_TILE_OUTPUT_H_

#include <cstring>

#include "binary_kernels.h"

namespace bmxnet {
namespace kernels {
namespace {

// The output of filters first, first + 1, ... of a tile whose output starts with filter 0.
inline TileOutput Shifted(const TileOutput& output, int64_t first) {
  return {output.scale ? output.scale + first : nullptr, output.bias ? output.bias + first : nullptr,
          output.residual ? output.residual + first * output.stride : nullptr,
          output.out + first * output.stride, output.stride};
}

// mismatches[f * kTilePixels + p] -> output values of `filters` filters.
inline void StoreTile(const int32_t* mismatches, int64_t filters, const TilePanel& panel,
                      const TileOutput& output) {
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

}  // namespace
}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_TILE_OUTPUT_H_
