// The inner loops of the packed (xnor + popcount) layers, built once per instruction set:
// portable C++, AVX2 (vpshufb nibble popcount), AVX-512 (vpopcntq) and NEON (vcntq_u8). The drivers in
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

// The receptive fields of a tile's pixels: word k of pixel p is rows[k][p], 16 words in a
// row, read in place from the padded input (padded_input.h) or from a copy.
struct TilePanel {
  const uint64_t* const* rows;
  // Zero padding: bit p of valid[k] is set when word k of pixel p lies inside the image;
  // the bits of a padded word count neither as matches nor as mismatches. nullptr: every
  // word lies inside (or the padding is -1, a value like any other).
  const uint16_t* valid;
  // Bits that count towards each pixel's value: channels times the taps inside the image
  // (or times all taps when the padding is -1).
  const int32_t* counted;
  int pixels;  // pixels of the tile that exist; the others are not stored
};

// Where a tile's values go and how they are finished: value = (counted - 2 * mismatches),
// times scale[f], plus bias[f], plus residual[f * stride + p], each only when given and
// as a separate float operation (as in the float-simulated model), stored at
// out[f * stride + p].
struct TileOutput {
  const float* scale;
  const float* bias;
  const float* residual;
  float* out;
  int64_t stride;
};

// Per-channel sign thresholds: a BatchNorm followed by sign, folded by the converter.
// direction[c] is +1 or -1 (multiplying by it is exact); nullptr pointers: plain sign.
struct ChannelThresholds {
  const float* direction = nullptr;
  const float* threshold = nullptr;

  ChannelThresholds From(int64_t first) const {
    return direction ? ChannelThresholds{direction + first, threshold + first} : ChannelThresholds{};
  }
};

struct BinaryKernels {
  // Values of `filters` filters for the pixels of a tile: mismatches = sum over k < depth
  // of popcount(bits xor weight[f * depth + k]) over the valid words. `weights` are the
  // packed weights as prepare_weights leaves them (weight_words words each).
  void (*conv_tile)(const TilePanel& panel, const uint64_t* weights, int64_t depth,
                    int64_t filters, const TileOutput& output);
  // popcount(a xor b) over `words` words.
  int64_t (*xor_popcount)(const uint64_t* a, const uint64_t* b, int64_t words);
  // Sign bits of up to 64 channel planes (channel c at x + c * plane_stride) for `pixels`
  // pixels: out[s * out_stride] gets bit c set when x[c][s] < 0 or NaN, other bits 0.
  // With thresholds (see ChannelThresholds) the test is !(direction[c] * x >= threshold[c]).
  void (*pack_planes)(const float* x, int64_t channels, int64_t plane_stride, int64_t pixels,
                      const ChannelThresholds& thresholds, uint64_t* out, int64_t out_stride);
  // How conv_tile reads the weights: words * weight_words words that prepare_weights
  // makes of `words` packed weight words, or the packed words themselves when it is null.
  int weight_words;
  void (*prepare_weights)(const uint64_t* w, int64_t words, uint64_t* out);
};

// The table of an instruction set (it must be <= HardwareIsa()).
const BinaryKernels& BinaryKernelsFor(Isa isa);

namespace portable { extern const BinaryKernels kBinaryKernels; }
namespace portable_popcnt { extern const BinaryKernels kBinaryKernels; }  // x86 only
namespace avx2 { extern const BinaryKernels kBinaryKernels; }
namespace avx512 { extern const BinaryKernels kBinaryKernels; }
namespace neon { extern const BinaryKernels kBinaryKernels; }

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_BINARY_KERNELS_H_
