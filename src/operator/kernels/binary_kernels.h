// The inner loops of the packed (xnor + popcount) layers, built once per instruction set:
// portable C++, AVX2 (vpshufb nibble popcount) and AVX-512 (vpopcntq). The drivers in
// xnor_conv.cc and bitpack.cc do the index work once and call these through a table
// chosen at run time.
#ifndef BMXNET_KERNELS_BINARY_KERNELS_H_
#define BMXNET_KERNELS_BINARY_KERNELS_H_

#include <cstdint>

#include "cpu_features.h"

namespace bmxnet {
namespace kernels {

// Output pixels per tile of the binary convolution: two AVX-512 vectors of 64-bit words.
constexpr int kTilePixels = 16;

struct BinaryKernels {
  // counts[f * kTilePixels + p] = sum over k < depth of popcount(panel[k * kTilePixels + p]
  // xor weights[f * depth + k]) for every filter f < filters: the mismatching bits of
  // tile pixel p's receptive field (panel, one row of kTilePixels words per k) against
  // filter f.
  void (*mismatch_tile)(const uint64_t* panel, const uint64_t* weights, int64_t depth,
                        int64_t filters, int32_t* counts);
  // popcount(a xor b) over `words` words.
  int64_t (*xor_popcount)(const uint64_t* a, const uint64_t* b, int64_t words);
  // Sign bits of up to 64 channel planes (channel c at x + c * plane_stride) for `pixels`
  // pixels: out[s * out_stride] gets bit c set when x[c][s] < 0 or NaN, other bits 0.
  void (*pack_planes)(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                      uint64_t* out, int64_t out_stride);
};

// The table of an instruction set (it must be <= HardwareIsa()).
const BinaryKernels& BinaryKernelsFor(Isa isa);

namespace portable { extern const BinaryKernels kBinaryKernels; }
namespace avx2 { extern const BinaryKernels kBinaryKernels; }
namespace avx512 { extern const BinaryKernels kBinaryKernels; }

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_BINARY_KERNELS_H_
