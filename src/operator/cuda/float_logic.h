// The per-thread work of the float CUDA kernels that let non-packed Q layers run (and
// train) on a GPU: one output value of a convolution, of its data, weight and bias
// gradients, of a dense layer and its gradients. One thread per value, each summing directly: correct first — the fast
// GPU path is packed inference (binary_logic.h). tests/cpp/test_cuda_logic runs these on
// the CPU against the im2col + GEMM kernels.
#ifndef BMXNET_CUDA_FLOAT_LOGIC_H_
#define BMXNET_CUDA_FLOAT_LOGIC_H_

#include "binary_logic.h"

namespace bmxnet {
namespace cuda {

// x[n, c, h, w], or the pad value outside the image.
BMX_HD inline float InputValue(const ConvShape& s, const float* x, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (h < 0 || h >= s.height || w < 0 || w >= s.width) return s.minus_one_padding ? -1.0f : 0.0f;
  return x[((n * s.channels + c) * s.height + h) * s.width + w];
}

// y[index], index over [N, O, OH, OW]: the sum, times scale[o] (xnor) and plus bias[o] when
// given, as the packed kernels finish it.
BMX_HD inline float ConvForwardValue(const ConvShape& s, const float* x, const float* w, const float* scale,
                                     const float* bias, int64_t index) {
  const int64_t ow = index % s.OutWidth(), oh = index / s.OutWidth() % s.OutHeight();
  const int64_t o = index / s.OutSpatial() % s.filters, n = index / (s.OutSpatial() * s.filters);
  const int64_t first = o / s.FiltersPerGroup() * s.PerGroup();
  float sum = 0.0f;
  for (int64_t c = 0; c < s.PerGroup(); ++c)
    for (int64_t i = 0; i < s.kernel_h; ++i)
      for (int64_t j = 0; j < s.kernel_w; ++j)
        sum += InputValue(s, x, n, first + c, oh * s.stride_h - s.pad_h + i * s.dilate_h,
                          ow * s.stride_w - s.pad_w + j * s.dilate_w) *
               w[((o * s.PerGroup() + c) * s.kernel_h + i) * s.kernel_w + j];
  if (scale) sum = kernels::RoundedProduct(sum, scale[o]);
  return bias ? sum + bias[o] : sum;
}

// dx[index], index over [N, C, H, W]: every output whose receptive field holds this input.
BMX_HD inline float ConvDataGradValue(const ConvShape& s, const float* w, const float* dy, int64_t index) {
  const int64_t wi = index % s.width, hi = index / s.width % s.height;
  const int64_t c = index / s.InSpatial() % s.channels, n = index / (s.InSpatial() * s.channels);
  const int64_t group = c / s.PerGroup(), c_local = c % s.PerGroup();
  float sum = 0.0f;
  for (int64_t i = 0; i < s.kernel_h; ++i) {
    const int64_t th = hi + s.pad_h - i * s.dilate_h;
    if (th < 0 || th % s.stride_h != 0 || th / s.stride_h >= s.OutHeight()) continue;
    for (int64_t j = 0; j < s.kernel_w; ++j) {
      const int64_t tw = wi + s.pad_w - j * s.dilate_w;
      if (tw < 0 || tw % s.stride_w != 0 || tw / s.stride_w >= s.OutWidth()) continue;
      const int64_t pixel = th / s.stride_h * s.OutWidth() + tw / s.stride_w;
      for (int64_t f = 0; f < s.FiltersPerGroup(); ++f) {
        const int64_t o = group * s.FiltersPerGroup() + f;
        sum += dy[(n * s.filters + o) * s.OutSpatial() + pixel] *
               w[((o * s.PerGroup() + c_local) * s.kernel_h + i) * s.kernel_w + j];
      }
    }
  }
  return sum;
}

// dw[index], index over [O, C/groups, KH, KW] (padded positions count with the pad value).
BMX_HD inline float ConvWeightGradValue(const ConvShape& s, const float* x, const float* dy, int64_t index) {
  const int64_t j = index % s.kernel_w, i = index / s.kernel_w % s.kernel_h;
  const int64_t c_local = index / s.Taps() % s.PerGroup(), o = index / (s.Taps() * s.PerGroup());
  const int64_t c = o / s.FiltersPerGroup() * s.PerGroup() + c_local;
  float sum = 0.0f;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.OutHeight(); ++oh)
      for (int64_t ow = 0; ow < s.OutWidth(); ++ow)
        sum += dy[((n * s.filters + o) * s.OutHeight() + oh) * s.OutWidth() + ow] *
               InputValue(s, x, n, c, oh * s.stride_h - s.pad_h + i * s.dilate_h,
                          ow * s.stride_w - s.pad_w + j * s.dilate_w);
  return sum;
}

BMX_HD inline float ConvBiasGradValue(const ConvShape& s, const float* dy, int64_t o) {
  float sum = 0.0f;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t p = 0; p < s.OutSpatial(); ++p) sum += dy[(n * s.filters + o) * s.OutSpatial() + p];
  return sum;
}

// Dense y[rows, outputs] = x[rows, features] w[outputs, features]^T + bias.
BMX_HD inline float DenseForwardValue(const float* x, const float* w, const float* scale, const float* bias,
                                      int64_t features, int64_t outputs, int64_t index) {
  const int64_t row = index / outputs, out = index % outputs;
  float sum = 0.0f;
  for (int64_t k = 0; k < features; ++k) sum += x[row * features + k] * w[out * features + k];
  if (scale) sum = kernels::RoundedProduct(sum, scale[out]);
  return bias ? sum + bias[out] : sum;
}

BMX_HD inline float DenseDataGradValue(const float* w, const float* dy, int64_t features, int64_t outputs,
                                       int64_t index) {
  const int64_t row = index / features, k = index % features;
  float sum = 0.0f;
  for (int64_t out = 0; out < outputs; ++out) sum += dy[row * outputs + out] * w[out * features + k];
  return sum;
}

BMX_HD inline float DenseWeightGradValue(const float* x, const float* dy, int64_t rows, int64_t features,
                                         int64_t outputs, int64_t index) {
  const int64_t out = index / features, k = index % features;
  float sum = 0.0f;
  for (int64_t row = 0; row < rows; ++row) sum += dy[row * outputs + out] * x[row * features + k];
  return sum;
}

BMX_HD inline float DenseBiasGradValue(const float* dy, int64_t rows, int64_t outputs, int64_t out) {
  float sum = 0.0f;
  for (int64_t row = 0; row < rows; ++row) sum += dy[row * outputs + out];
  return sum;
}

}  // namespace cuda
}  // namespace bmxnet

#endif  // BMXNET_CUDA_FLOAT_LOGIC_H_
