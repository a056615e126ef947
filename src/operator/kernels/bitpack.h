// Bit packing along the channel axis: bit c of a group's channels lives in word c / 64,
// bit c % 64 (LSB first); a set bit means -1 (the value was < 0 or NaN, as sign() maps it).
// Tail bits past the channel count are zero, so any channel count works.
#ifndef BMXNET_KERNELS_BITPACK_H_
#define BMXNET_KERNELS_BITPACK_H_

#include <cstdint>

#include "binary_kernels.h"
#include "cpu_features.h"
#include "host_device.h"  // NegativeBit, TailMask

namespace bmxnet {
namespace kernels {

inline int64_t WordsFor(int64_t bits) { return (bits + 63) / 64; }


// Conv weights [O, C/groups, KH, KW] (float) -> [O, KH, KW, WordsFor(C/groups)].
void PackConvWeights(const float* w, int64_t filters, int64_t channels_per_group, int64_t kh,
                     int64_t kw, uint64_t* packed);

// Inverse of PackConvWeights: +-1 floats [O, C/groups, KH, KW].
void UnpackConvWeights(const uint64_t* packed, int64_t filters, int64_t channels_per_group,
                       int64_t kh, int64_t kw, float* w);

// Activations [N, C, H, W] -> [N, H, W, groups, WordsFor(C/groups)]: one run of words per
// pixel and group, the layout the binary convolution reads. Signs are taken against the
// per-channel thresholds when given.
void PackActivationsNCHW(const float* x, int64_t batch, int64_t channels, int64_t height,
                         int64_t width, int64_t groups, uint64_t* packed, int threads,
                         Isa isa = ActiveIsa(), const ChannelThresholds& thresholds = {});

// Rows [N, K] -> [N, WordsFor(K)] (fully connected data and weights).
void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, int threads);

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_BITPACK_H_
