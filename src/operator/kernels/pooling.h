// Max and average pooling of float NCHW (or NHWC) tensors with the values of MXNet's Pooling: a
// window's sum runs over its rows, within a row over its columns, from 0, and is divided
// by its count once, as MXNet's and oneDNN's loops do. model-converter puts it (operator
// PlainPooling) in place of Pooling in packed models, which so keep the float-simulated
// model's results bit for bit.
#ifndef BMXNET_KERNELS_POOLING_H_
#define BMXNET_KERNELS_POOLING_H_

#include <cstdint>

#include "cpu_features.h"
#include "host_device.h"

namespace bmxnet {
namespace kernels {

struct PoolGeometry {
  int64_t planes = 1;  // images times channels
  // Input and output are (N, H, W, C), as MXNet's Pooling with layout='NHWC', instead of
  // planes of (N, C, H, W); `channels` is C then.
  bool channels_last = false;
  int64_t channels = 1;
  int64_t in_height = 1, in_width = 1, out_height = 1, out_width = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool max = true;
  // Average only: the count includes a window's padded taps (up to `pad` past the image,
  // as MXNet counts them), else only its taps inside the image.
  bool count_include_pad = true;
  // Average only: each tap divided by the count, then summed, as MXNet's own loop does;
  // MXNet 1.9 runs that loop, not oneDNN's, for pooling_convention='full' when the last
  // windows reach past the padded input, and for all pooling when MXNET_MKLDNN_ENABLED=0.
  bool divide_each_tap = false;
};

// Where a max window starts, as MXNet's and oneDNN's do: the lowest float (so a window of
// -inf and NaN taps stays at it).
constexpr float kPoolLowest = -3.40282347e38f;

// The taps of window o along one axis: [first, end) inside the image, and how many the
// average divides by.
struct PoolWindow {
  int64_t first, end, count;
};

BMX_HD inline PoolWindow WindowAt(int64_t o, int64_t size, int64_t kernel, int64_t stride, int64_t pad,
                                  bool count_include_pad) {
  const int64_t start = o * stride - pad;
  const int64_t padded_end = start + kernel < size + pad ? start + kernel : size + pad;
  const int64_t first = start > 0 ? start : 0, end = padded_end < size ? padded_end : size;
  return {first, end, count_include_pad ? padded_end - start : end - first};
}

// Where the taps of one plane (an image's channel) lie: tap (h, w) at at[h * row + w * column].
struct PlaneTaps {
  const float* at;
  int64_t row, column;
};

BMX_HD inline PlaneTaps InputPlane(const PoolGeometry& g, const float* x, int64_t plane) {
  if (!g.channels_last) return {x + plane * g.in_height * g.in_width, g.in_width, 1};
  const int64_t image = plane / g.channels, channel = plane % g.channels;
  return {x + image * g.in_height * g.in_width * g.channels + channel, g.in_width * g.channels, g.channels};
}

// The plane and position of element `index` of a tensor of height x width planes in g's
// layout.
struct PlanePosition {
  int64_t plane, h, w;
};

BMX_HD inline PlanePosition PositionOf(const PoolGeometry& g, int64_t index, int64_t height, int64_t width) {
  if (!g.channels_last) return {index / (width * height), index / width % height, index % width};
  const int64_t pixel = index / g.channels;
  return {pixel / (width * height) * g.channels + index % g.channels, pixel / width % height, pixel % width};
}

// Offset of output (oh, ow) of `plane` in g's layout.
BMX_HD inline int64_t OutputOffset(const PoolGeometry& g, int64_t plane, int64_t oh, int64_t ow) {
  if (!g.channels_last) return (plane * g.out_height + oh) * g.out_width + ow;
  const int64_t image = plane / g.channels, channel = plane % g.channels;
  return ((image * g.out_height + oh) * g.out_width + ow) * g.channels + channel;
}

// y[index], index over the output in g's layout, one window at a time (the CUDA kernel's
// work; PoolForward computes the same values a row at a time).
BMX_HD inline float PoolValue(const PoolGeometry& g, const float* x, int64_t index) {
  const PlanePosition out = PositionOf(g, index, g.out_height, g.out_width);
  const PlaneTaps plane = InputPlane(g, x, out.plane);
  const PoolWindow rows = WindowAt(out.h, g.in_height, g.kernel_h, g.stride_h, g.pad_h, g.count_include_pad);
  const PoolWindow columns = WindowAt(out.w, g.in_width, g.kernel_w, g.stride_w, g.pad_w, g.count_include_pad);
  const float count = static_cast<float>(rows.count * columns.count);
  float value = g.max ? kPoolLowest : 0.0f;
  for (int64_t h = rows.first; h < rows.end; ++h)
    for (int64_t w = columns.first; w < columns.end; ++w) {
      const float v = plane.at[h * plane.row + w * plane.column];
      value = g.max ? (v > value ? v : value) : value + (g.divide_each_tap ? v / count : v);
    }
  return g.max || g.divide_each_tap ? value : value / count;
}

// Outputs [first, last] along an axis whose windows (before clipping) hold input i.
BMX_HD inline void OutputsReading(int64_t i, int64_t outputs, int64_t kernel, int64_t stride, int64_t pad,
                                  int64_t* first, int64_t* last) {
  const int64_t lowest = i + pad - kernel + 1;  // o * stride >= i + pad - kernel + 1
  *first = lowest > 0 ? (lowest + stride - 1) / stride : 0;
  const int64_t highest = (i + pad) / stride;   // o * stride <= i + pad
  *last = highest < outputs - 1 ? highest : outputs - 1;
}

// dx[index], index over the input in g's layout, from the output gradient dy: the sum
// over the windows holding this input of dy / count (avg), or of dy where it is the
// window's max (its first tap of the largest value, the one PoolValue keeps). Each max
// window is searched again per input it holds: meant for the small windows of CNN pooling.
BMX_HD inline float PoolGradValue(const PoolGeometry& g, const float* x, const float* dy, int64_t index) {
  const PlanePosition input = PositionOf(g, index, g.in_height, g.in_width);
  const PlaneTaps in = InputPlane(g, x, input.plane);
  int64_t oh_first, oh_last, ow_first, ow_last;
  OutputsReading(input.h, g.out_height, g.kernel_h, g.stride_h, g.pad_h, &oh_first, &oh_last);
  OutputsReading(input.w, g.out_width, g.kernel_w, g.stride_w, g.pad_w, &ow_first, &ow_last);
  float sum = 0.0f;
  for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
    const PoolWindow rows = WindowAt(oh, g.in_height, g.kernel_h, g.stride_h, g.pad_h, g.count_include_pad);
    for (int64_t ow = ow_first; ow <= ow_last; ++ow) {
      const PoolWindow columns = WindowAt(ow, g.in_width, g.kernel_w, g.stride_w, g.pad_w, g.count_include_pad);
      const float dy_value = dy[OutputOffset(g, input.plane, oh, ow)];
      if (!g.max) {
        sum += dy_value / static_cast<float>(rows.count * columns.count);
        continue;
      }
      float best = kPoolLowest;
      int64_t best_h = -1, best_w = -1;
      for (int64_t h = rows.first; h < rows.end; ++h)
        for (int64_t w = columns.first; w < columns.end; ++w)
          if (in.at[h * in.row + w * in.column] > best) {
            best = in.at[h * in.row + w * in.column];
            best_h = h;
            best_w = w;
          }
      if (best_h == input.h && best_w == input.w) sum += dy_value;
    }
  }
  return sum;
}

// y [planes, OH, OW] from x [planes, H, W] (or y [N, OH, OW, C] from x [N, H, W, C]);
// `isa` picks the inner loops (the simd build for any vector set).
void PoolForward(const PoolGeometry& g, const float* x, float* y, int threads, Isa isa = ActiveIsa());
// dx in x's layout (PoolGradValue).
void PoolBackward(const PoolGeometry& g, const float* x, const float* dy, float* dx, int threads);

// Channels [first, end) of one output pixel of a channels-last pooling whose window is
// rows x columns (`image` at its image's first value, `out` at the pixel's first channel):
// PoolValue's operations in its order, on each channel.
void PoolPixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                       int64_t first, int64_t end, float* out);

// Output rows in one block of the vector kernel: kPoolBlockRows rows whose windows lie
// inside the image, or one row (of any window).
constexpr int kPoolBlockRows = 4;
struct PoolBlockRows {
  int rows;               // 1 or kPoolBlockRows
  int64_t first;          // input row of the first row's first tap
  int64_t taps, count;    // kernel rows inside the image; a row's count (avg)
};

// The vector build (AVX2 on x86, also under AVX-512; NEON on aarch64).
namespace simd {
// Outputs ow .. ow + outputs - 1 (outputs <= 8) of the block's output rows, whose windows
// lie inside the image along the width, into out (row r at out + r * out_width);
// stride_w 1 or 2. PoolValue's values.
void PoolBlock(const PoolGeometry& g, const PoolBlockRows& rows, const float* plane, int64_t ow, int outputs,
               float* out);
// PoolPixelChannels of all the pixel's channels, in vectors of channels (the last few
// through PoolPixelChannels). A block's values stay in registers over the window's taps.
void PoolPixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                       float* out);
}  // namespace simd

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_POOLING_H_
