// The output of a block of a tile's filters, shared by the builds of the tile kernel (each
// compiles this header with its own vector flags).
#ifndef BMXNET_KERNELS_TILE_OUTPUT_H_
#define BMXNET_KERNELS_TILE_OUTPUT_H_

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

}  // namespace
}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_TILE_OUTPUT_H_
