// The per-thread work of the CUDA kernels (binary_cuda.cu): packing one word, the values of
// a tile of filters at one output pixel, one xnor dot product, reductions of the weight
// quantizers. Plain host + device functions, so tests/cpp/test_cuda_logic.cc runs them on
// the CPU over the same grid/block decomposition the kernels launch.
#ifndef BMXNET_CUDA_BINARY_LOGIC_H_
#define BMXNET_CUDA_BINARY_LOGIC_H_

#include <cstdint>

#include "../kernels/channel_pieces.h"
#include "../kernels/host_device.h"
#include "../kernels/quantize_element.h"

namespace bmxnet {
namespace cuda {

using kernels::BelowThresholdBit;
using kernels::FinishValue;
using kernels::NegativeBit;
using kernels::Popcount64;
using kernels::TailMask;

// Launch geometry, shared by the kernels and the host harness.
constexpr int kElementThreads = 256;   // element-wise kernels: threads per block
constexpr int kPackThreads = 128;      // packing: pixels per block (coalesced reads per channel)
constexpr int kConvThreads = 128;      // convolution: output pixels per block, one per thread
constexpr int kConvFilters = 16;       // convolution: filters per block, all held by every thread
constexpr int kDenseTile = 16;         // dense: 16 x 16 (row, output) values per block
constexpr int kReduceThreads = 256;    // reductions: threads per block

struct Dim3 {
  int64_t x = 1, y = 1, z = 1;
};

BMX_HD inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A convolution's shape. Packed: activations [N, H, W, groups, words], weights
// [O, KH, KW, words]; float: NCHW data, [O, C/groups, KH, KW] weights.
struct ConvShape {
  int64_t batch, channels, height, width, filters, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilate_h, dilate_w, groups;
  bool minus_one_padding;  // pad_value -1 (packed: all-ones words that count), else 0
  // packed: leading channels of each residual image that are not added (kernels::ResidualInput)
  int64_t residual_skip = 0;

  BMX_HD int64_t PerGroup() const { return channels / groups; }
  BMX_HD int64_t Words() const { return (PerGroup() + 63) / 64; }
  BMX_HD int64_t Taps() const { return kernel_h * kernel_w; }
  BMX_HD int64_t Depth() const { return Taps() * Words(); }
  BMX_HD int64_t FiltersPerGroup() const { return filters / groups; }
  BMX_HD int64_t OutHeight() const { return (height + 2 * pad_h - dilate_h * (kernel_h - 1) - 1) / stride_h + 1; }
  BMX_HD int64_t OutWidth() const { return (width + 2 * pad_w - dilate_w * (kernel_w - 1) - 1) / stride_w + 1; }
  BMX_HD int64_t InSpatial() const { return height * width; }
  BMX_HD int64_t OutSpatial() const { return OutHeight() * OutWidth(); }
};

// ---------------------------------------------------------------- packing
// Grid: x = pixel blocks of kPackThreads, y = images * groups * words.
inline Dim3 PackGrid(const ConvShape& s) {
  return {CeilDiv(s.InSpatial(), kPackThreads), s.batch * s.groups * s.Words(), 1};
}

// Word `word` of group g at one pixel of image n: bit c set when channel first + c is
// negative (or NaN), or, with thresholds, when !(direction * x >= threshold).
BMX_HD inline uint64_t PackActivationWord(const ConvShape& s, const kernels::ChannelPieces& x,
                                          const float* direction, const float* threshold, int64_t n, int64_t g,
                                          int64_t word, int64_t pixel) {
  const int64_t first = g * s.PerGroup() + word * 64;
  const int64_t count = s.PerGroup() - word * 64 < 64 ? s.PerGroup() - word * 64 : 64;
  uint64_t bits = 0;
  for (int64_t c = 0; c < count;) {  // a run of channels at a time that lie in one piece
    const int64_t left = x.RunFrom(first + c), run = left < count - c ? left : count - c;
    const float* plane = x.Plane(n, first + c) + pixel;
    for (int64_t i = 0; i < run; ++i, ++c) {
      const float v = plane[i * s.InSpatial()];
      bits |= (direction ? BelowThresholdBit(v, direction[first + c], threshold[first + c]) : NegativeBit(v)) << c;
    }
  }
  return bits;
}

// The thread (block, thread) of the packing grid: which word it writes, or false past the end.
BMX_HD inline bool PackActivationThread(const ConvShape& s, const kernels::ChannelPieces& x,
                                        const float* direction,
                                        const float* threshold, int64_t block_x, int64_t block_y,
                                        int64_t thread, uint64_t* packed) {
  const int64_t pixel = block_x * kPackThreads + thread;
  if (pixel >= s.InSpatial()) return false;
  const int64_t word = block_y % s.Words(), g = block_y / s.Words() % s.groups;
  const int64_t n = block_y / (s.Words() * s.groups);
  packed[((n * s.InSpatial() + pixel) * s.groups + g) * s.Words() + word] =
      PackActivationWord(s, x, direction, threshold, n, g, word, pixel);
  return true;
}

// ---------------------------------------------------------------- convolution
// Grid: x = output-pixel blocks of kConvThreads, y = filter blocks of kConvFilters within a
// group, z = images * groups. Every thread owns one output pixel and keeps kConvFilters
// counters: each activation word it loads meets kConvFilters weight words (which the
// block stages in shared memory, so all threads read the same address: a broadcast).
inline Dim3 ConvGrid(const ConvShape& s) {
  return {CeilDiv(s.OutSpatial(), kConvThreads), CeilDiv(s.FiltersPerGroup(), kConvFilters), s.batch * s.groups};
}

// The block's weight tile: up to kConvFilters filters' [depth] words, first filter first.
BMX_HD inline int64_t ConvTileFirstFilter(const ConvShape& s, int64_t block_y, int64_t block_z) {
  return (block_z % s.groups) * s.FiltersPerGroup() + block_y * kConvFilters;
}

BMX_HD inline int ConvTileFilters(const ConvShape& s, int64_t block_y) {
  const int64_t left = s.FiltersPerGroup() - block_y * kConvFilters;
  return static_cast<int>(left < kConvFilters ? left : kConvFilters);
}

// Output values (bits counted - 2 * mismatches; zero-padded taps count for nothing) of the
// tile's filters at one output pixel. tile: filter f's word k at tile[f * depth + k].
BMX_HD inline void ConvPixelValues(const ConvShape& s, const uint64_t* x, const uint64_t* tile, int filters,
                                   int64_t n, int64_t g, int64_t pixel, int32_t* values) {
  int32_t mismatches[kConvFilters];
  for (int f = 0; f < kConvFilters; ++f) mismatches[f] = 0;
  const int64_t oh = pixel / s.OutWidth(), ow = pixel % s.OutWidth(), words = s.Words();
  int32_t counted = 0;
  for (int64_t i = 0; i < s.kernel_h; ++i) {
    const int64_t h = oh * s.stride_h - s.pad_h + i * s.dilate_h;
    for (int64_t j = 0; j < s.kernel_w; ++j) {
      const int64_t w = ow * s.stride_w - s.pad_w + j * s.dilate_w;
      const bool inside = h >= 0 && h < s.height && w >= 0 && w < s.width;
      if (!inside && !s.minus_one_padding) continue;
      counted += static_cast<int32_t>(s.PerGroup());
      const uint64_t* source = inside ? x + (((n * s.height + h) * s.width + w) * s.groups + g) * words : nullptr;
      const uint64_t* weights = tile + (i * s.kernel_w + j) * words;
      for (int64_t c = 0; c < words; ++c) {
        const uint64_t a = inside ? source[c] : TailMask(s.PerGroup(), c);
        for (int f = 0; f < kConvFilters; ++f)
          if (f < filters) mismatches[f] += Popcount64(a ^ weights[f * s.Depth() + c]);
      }
    }
  }
  for (int f = 0; f < filters; ++f) values[f] = counted - 2 * mismatches[f];
}

// The thread (block, thread) of the convolution grid, with the block's weight tile.
BMX_HD inline void ConvThread(const ConvShape& s, const uint64_t* x, const uint64_t* tile, const float* scale,
                              const float* bias, const float* residual, int64_t block_x, int64_t block_y,
                              int64_t block_z, int64_t thread, float* y) {
  const int64_t pixel = block_x * kConvThreads + thread;
  if (pixel >= s.OutSpatial()) return;
  const int64_t n = block_z / s.groups, g = block_z % s.groups;
  const int filters = ConvTileFilters(s, block_y);
  const int64_t first = ConvTileFirstFilter(s, block_y, block_z);
  int32_t values[kConvFilters];
  ConvPixelValues(s, x, tile, filters, n, g, pixel, values);
  for (int f = 0; f < filters; ++f) {
    const int64_t index = (n * s.filters + first + f) * s.OutSpatial() + pixel;
    const float value = FinishValue(values[f], scale, bias, nullptr, first + f, index);
    y[index] = residual == nullptr ? value
                                   : value + residual[(n * (s.filters + s.residual_skip) + s.residual_skip + first + f) *
                                                          s.OutSpatial() + pixel];
  }
}

// ---------------------------------------------------------------- dense (xnor GEMM)
// Grid: x = output blocks, y = row blocks of kDenseTile; thread (tx, ty) computes
// y[row = by * 16 + ty][out = bx * 16 + tx].
inline Dim3 DenseGrid(int64_t rows, int64_t outputs) {
  return {CeilDiv(outputs, kDenseTile), CeilDiv(rows, kDenseTile), 1};
}

BMX_HD inline void DenseThread(const uint64_t* x, const uint64_t* w, const float* scale, const float* bias,
                               int64_t rows, int64_t features, int64_t outputs, int64_t block_x,
                               int64_t block_y, int64_t tx, int64_t ty, float* y) {
  const int64_t row = block_y * kDenseTile + ty, out = block_x * kDenseTile + tx;
  if (row >= rows || out >= outputs) return;
  const int64_t words = (features + 63) / 64;
  int64_t mismatches = 0;
  for (int64_t k = 0; k < words; ++k) mismatches += Popcount64(x[row * words + k] ^ w[out * words + k]);
  y[row * outputs + out] =
      FinishValue(static_cast<int32_t>(features - 2 * mismatches), scale, bias, nullptr, out, 0);
}

// ---------------------------------------------------------------- weight quantizers
// Reductions: kReduceThreads threads of a block stride over their range; thread t of the
// block holds one partial value, the block combines them (tree in shared memory).
BMX_HD inline float MaxAbsTanhPartial(const float* w, int64_t n, int64_t start, int64_t stride) {
  float m = 0.0f;
  for (int64_t i = start; i < n; i += stride) {
    const float t = kernels::Abs(kernels::Tanh(w[i]));
    m = t > m ? t : m;
  }
  return m;
}

// One quantized weight: sign, DoReFa k-bit or identity, times the row's scale when given.
BMX_HD inline float QuantizeWeightValue(int bits, float w, float max_tanh, const float* row_scale, int64_t row) {
  float q = bits == 1 ? kernels::SignValue(w) : (bits < 32 ? kernels::DoReFaWeight(w, kernels::Levels(bits), max_tanh) : w);
  return row_scale ? q * row_scale[row] : q;
}

// dw = dwq * d(wq)/dw: straight through the rounding, DoReFa's tanh derivative for k bits,
// times the row's xnor scale when given.
BMX_HD inline float WeightGradValue(int bits, float w, float dwq, float max_tanh, const float* row_scale,
                                    int64_t row) {
  const float derivative = (bits > 1 && bits < 32) ? kernels::DoReFaDerivative(w, max_tanh) : 1.0f;
  return dwq * derivative * (row_scale ? row_scale[row] : 1.0f);
}

}  // namespace cuda
}  // namespace bmxnet

#endif  // BMXNET_CUDA_BINARY_LOGIC_H_
