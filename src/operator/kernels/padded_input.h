// The packed input the binary convolution reads: activations bit-packed along channels
// (bitpack.h) and laid out [N, groups, words, H + 2 pad_h, W + 2 pad_w], border included
// (wider at the bottom and right when the kernel is larger than the padded input).
// The border lets every tap read memory; one plane per (group, word) lets a tile of 16
// pixels of one output row (of several rows when there is no border, as in a 1x1
// convolution) read each of its words in place, without a copy.
#ifndef BMXNET_KERNELS_PADDED_INPUT_H_
#define BMXNET_KERNELS_PADDED_INPUT_H_

#include <cstdint>

#include "binary_kernels.h"
#include "channel_pieces.h"
#include "conv_float.h"
#include "cpu_features.h"
#include "sizes.h"

namespace bmxnet {
namespace kernels {

struct PaddedInput {
  int64_t height, width;  // padded
  int64_t groups, words;  // words per pixel and group
  int64_t plane, image;   // words per (group, word) plane and per image

  explicit PaddedInput(const ConvGeometry& g);
  // Word c of group `group` at padded row h, column w of image n.
  int64_t Offset(int64_t n, int64_t h, int64_t group, int64_t c, int64_t w) const {
    return n * image + ((group * words + c) * height + h) * width + w;
  }
  // Words to allocate for a batch: a tile may read up to 16 words past the last pixel
  // (lanes of pixels that do not exist, never stored).
  // Saturates (sizes.h): a layout too large for memory is refused where it is allocated.
  int64_t Size(int64_t batch) const { return SaturatingAdd(SaturatingMultiply(batch, image), kTilePixels); }
};

// Packs float activations x [N, C, H, W] (against the thresholds when given; the C channels
// may be pieces, see channel_pieces.h) into that layout. The border holds zeros for zero
// padding, whose taps the convolution masks out, and -1 bits for pad_value -1, a value like
// any other.
void PackPaddedInput(const ConvGeometry& g, const ChannelPieces& x, const ChannelThresholds& thresholds,
                     uint64_t* out, int threads, Isa isa = ActiveIsa());

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_PADDED_INPUT_H_
