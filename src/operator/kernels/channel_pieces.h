// A layer's data as the concatenation along channels of NCHW tensors with the same N, H
// and W, read where they lie: model-converter gives packed convolutions (and poolings) the
// pieces of a ChannelConcat instead of its output when nothing else reads it (MeliusNet's
// and BinaryDenseNet's dense blocks, whose feature maps are then not copied at all; the
// parsers allow up to kMaxChannelPieces). Passed by value to CUDA kernels, hence fixed
// arrays.
#ifndef BMXNET_KERNELS_CHANNEL_PIECES_H_
#define BMXNET_KERNELS_CHANNEL_PIECES_H_

#include <cstdint>

#include "host_device.h"

namespace bmxnet {
namespace kernels {

constexpr int kMaxChannelPieces = 16;

struct ChannelPieces {
  const float* data[kMaxChannelPieces] = {};
  int64_t channels[kMaxChannelPieces] = {};
  int count = 0;
  int64_t spatial = 1;  // H * W of every piece

  // One tensor [N, channels, spatial].
  static ChannelPieces Whole(const float* x, int64_t channels, int64_t spatial) {
    ChannelPieces pieces;
    pieces.Add(x, channels);
    pieces.spatial = spatial;
    return pieces;
  }

  void Add(const float* x, int64_t piece_channels) {
    data[count] = x;
    channels[count++] = piece_channels;
  }

  // The plane of channel c of image n (channels counted over all pieces).
  BMX_HD const float* Plane(int64_t n, int64_t c) const {
    const int p = PieceOf(&c);
    return data[p] + (n * channels[p] + c) * spatial;
  }

  // How many channels from c on lie in c's piece.
  BMX_HD int64_t RunFrom(int64_t c) const {
    const int p = PieceOf(&c);
    return channels[p] - c;
  }

 private:
  // The piece holding channel *c; *c becomes the channel's index within it.
  BMX_HD int PieceOf(int64_t* c) const {
    int p = 0;
    while (p + 1 < count && *c >= channels[p]) *c -= channels[p++];
    return p;
  }
};

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_CHANNEL_PIECES_H_
