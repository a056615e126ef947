// Binary (xnor + popcount) convolution and fully connected layers on bit-packed inputs
// (bitpack.h). Results equal the float-simulated layer exactly: a 1-bit dot product of
// n valid positions is n - 2 * popcount(x xor w), held in float.
#ifndef BMXNET_KERNELS_XNOR_CONV_H_
#define BMXNET_KERNELS_XNOR_CONV_H_

#include <cstdint>
#include <memory>

#include "binary_kernels.h"
#include "channel_pieces.h"
#include "conv_float.h"
#include "cpu_features.h"

namespace bmxnet {
namespace kernels {

// A tensor added to a convolution's output y [N, O, OH, OW]: [N, skipped_channels + O, OH,
// OW], of which output channel o adds channel skipped_channels + o (MeliusNet's improvement
// blocks add to the last channels of their input). A plain pointer: y's own shape.
struct ResidualInput {
  const float* values;
  int64_t skipped_channels;
  ResidualInput(const float* values = nullptr, int64_t skipped_channels = 0)  // NOLINT: implicit on purpose
      : values(values), skipped_channels(skipped_channels) {}
};

// What a packed convolution keeps from one call to the next, one per graph node: its
// geometry's padding masks and each thread's copy of the weights as the kernels read them.
// The copies are prepared again when the weights' pointer or version changes; version 0
// means unknown (prepared at every call). Not for two calls at once. A copy starts empty:
// what was kept belongs to one node.
class ConvMemory {
 public:
  ConvMemory();
  ~ConvMemory();
  ConvMemory(const ConvMemory&);
  ConvMemory& operator=(const ConvMemory&);

  struct Kept;  // defined and used in xnor_conv.cc only
  Kept* kept() { return kept_.get(); }

 private:
  std::unique_ptr<Kept> kept_;
};

// Words of `packed` that PackAndConvolve needs.
int64_t PackedInputWords(const ConvGeometry& g);

// The packed convolution of float activations x [N, C, H, W] (or its channel pieces): packs
// them (against the thresholds when given) into `packed` (padded_input.h), then convolves
// with w: [O, KH, KW, words] packed weights. scale and bias (per output channel) and
// residual (added to y, see ResidualInput) may be null. Zero padding is exact: the words of
// padded taps are masked out of the count, so they contribute 0, not +-1. `isa` picks the
// inner loops (tests run every instruction set the CPU has). A 1x1
// layer that splits its filters across threads packs into a buffer of each thread instead
// (see xnor_conv.cc). With `memory`, what the call works out is kept there for the next
// (w's version: see ConvMemory).
void PackAndConvolve(const ConvGeometry& g, const ChannelPieces& x, const ChannelThresholds& thresholds,
                     uint64_t* packed, const uint64_t* w,
                     const float* scale, const float* bias, const ResidualInput& residual, float* y,
                     int threads, Isa isa = ActiveIsa(), ConvMemory* memory = nullptr, uint64_t weights_version = 0);

inline void PackAndConvolve(const ConvGeometry& g, const float* x, const ChannelThresholds& thresholds,
                            uint64_t* packed, const uint64_t* w,
                            const float* scale, const float* bias, const ResidualInput& residual, float* y,
                            int threads, Isa isa = ActiveIsa(), ConvMemory* memory = nullptr,
                            uint64_t weights_version = 0) {
  PackAndConvolve(g, ChannelPieces::Whole(x, g.in_channels, g.in_height * g.in_width), thresholds, packed, w,
                  scale, bias, residual, y, threads, isa, memory, weights_version);
}

// x: [N, words], w: [O, words] for `features` valid bits; y: [N, O].
void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads, Isa isa = ActiveIsa());

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_XNOR_CONV_H_
