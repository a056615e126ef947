// MXNet 1.9's BatchNorm in inference (over axis 1), value for value. MXNet computes it in
// one of three ways, chosen by its build and by the layout of the tensor it is handed
// (measured against the wheel; tests/test_batchnorm.py checks all three):
//   oneDNN, plain NCHW (ncsp_bnorm):      (x - mean) * (gamma / sqrt(var + eps)) + beta
//   oneDNN, blocked or NHWC (bnorm_jit):  fma(x - mean, gamma / sqrt(var + eps), beta)
//   MXNet's own loop (MKLDNN disabled):   ((x - mean) * (1 / sqrt(var + eps))) * gamma + beta
// each operation rounded to float. MXNet's aarch64 wheel is compiled with GCC's default
// -ffp-contract=fast, so there the multiply and the last add fuse on every layout (measured
// under qemu as a Cortex-A72):
//   oneDNN, any layout:                   fma(x - mean, gamma / sqrt(var + eps), beta)
//   MXNet's own loop:                     fma((x - mean) * (1 / sqrt(var + eps)), gamma, beta)
// A packed model hands plain NCHW where its float-simulated
// model had oneDNN's blocked tensors, so model-converter puts PlainBatchNorm with the
// formula the float model used in place of MXNet's BatchNorm there.
#ifndef BMXNET_KERNELS_BATCHNORM_H_
#define BMXNET_KERNELS_BATCHNORM_H_

#include <cstdint>

#include "cpu_features.h"
#include "host_device.h"

namespace bmxnet {
namespace kernels {

enum class BatchNormFormula { kOneDnnPlain, kOneDnnBlocked, kNative, kNativeFused };

// x is [batch, channels, spatial], or [batch, spatial, channels] with channels_last (the
// output is [batch, channels, spatial] either way); gamma nullptr: every gamma is 1
// (fix_gamma). relu: a ReLU the converter fused follows (one pass over the map, not two).
struct BatchNormGeometry {
  int64_t batch = 1, channels = 1, spatial = 1;
  bool channels_last = false;
  bool relu = false;
};

// The fused ReLU: max(0, v) as the vector code computes it (_mm256_max_ps(0, v)), which
// keeps NaN and -0 as MXNet's and oneDNN's ReLUs do up to the sign of a zero.
BMX_HD inline float Relu(float v) { return v < 0.0f ? 0.0f : v; }

// Where the input value of output element i lies.
BMX_HD inline int64_t BatchNormInputIndex(const BatchNormGeometry& g, int64_t i) {
  if (!g.channels_last) return i;
  const int64_t n = i / (g.channels * g.spatial), c = i / g.spatial % g.channels, s = i % g.spatial;
  return (n * g.spatial + s) * g.channels + c;
}

// Whether the formula is MXNet's own loop (gamma applied after the factor).
BMX_HD inline bool IsNative(BatchNormFormula formula) {
  return formula == BatchNormFormula::kNative || formula == BatchNormFormula::kNativeFused;
}

// A channel's factor: gamma / sqrt(var + eps) for oneDNN's formulas, 1 / sqrt(var + eps)
// for MXNet's own.
BMX_HD inline float BatchNormFactor(BatchNormFormula formula, float gamma, float variance, float eps) {
  const float root = Sqrt(variance + eps);
  return IsNative(formula) ? 1.0f / root : gamma / root;
}

BMX_HD inline float BatchNormValue(BatchNormFormula formula, float x, float mean, float factor, float gamma,
                                   float beta) {
  const float centered = x - mean;
  switch (formula) {
    case BatchNormFormula::kOneDnnBlocked: return Fma(centered, factor, beta);
    case BatchNormFormula::kNative: return RoundedAdd(RoundedMul(RoundedMul(centered, factor), gamma), beta);
    case BatchNormFormula::kNativeFused: return Fma(RoundedMul(centered, factor), gamma, beta);
    default: return RoundedAdd(RoundedMul(centered, factor), beta);
  }
}

// One channel's constants, as BatchNormValue takes them.
struct BatchNormChannel {
  float mean, factor, gamma, beta;
};

BMX_HD inline float BatchNormValue(BatchNormFormula formula, float x, const BatchNormChannel& k) {
  return BatchNormValue(formula, x, k.mean, k.factor, k.gamma, k.beta);
}

// A value of the op's output: the BatchNorm's, through the fused ReLU with relu.
BMX_HD inline float BatchNormOutput(BatchNormFormula formula, bool relu, float x, const BatchNormChannel& k) {
  const float value = BatchNormValue(formula, x, k);
  return relu ? Relu(value) : value;
}

// Channel c's constants.
BMX_HD inline BatchNormChannel BatchNormChannelOf(BatchNormFormula formula, const float* gamma, const float* beta,
                                                  const float* mean, const float* variance, float eps, int64_t c) {
  const float scale = gamma ? gamma[c] : 1.0f;
  return {mean[c], BatchNormFactor(formula, scale, variance[c], eps), scale, beta[c]};
}

// Element i of the output (the CUDA kernel's work per thread).
BMX_HD inline float BatchNormElement(const BatchNormGeometry& g, BatchNormFormula formula, const float* x,
                                     const float* gamma, const float* beta, const float* mean,
                                     const float* variance, float eps, int64_t i) {
  const BatchNormChannel k = BatchNormChannelOf(formula, gamma, beta, mean, variance, eps, i / g.spatial % g.channels);
  return BatchNormOutput(formula, g.relu, x[BatchNormInputIndex(g, i)], k);
}

// The gradient that reaches the BatchNorm's value at output element i: dy, or 0 where the
// fused ReLU's output y is not positive (MXNet's ReLU gradient).
BMX_HD inline float BatchNormValueGrad(const BatchNormGeometry& g, const float* dy, const float* y, int64_t i) {
  return !g.relu || y[i] > 0.0f ? dy[i] : 0.0f;
}

// The gradient of that inference function (moving statistics held fixed in the forward
// pass, but differentiated; y is its output): the data gradient of output element i,
// dy * d(y)/d(x), which belongs at BatchNormInputIndex(g, i).
BMX_HD inline float BatchNormDataGradElement(const BatchNormGeometry& g, BatchNormFormula formula,
                                             const float* gamma, const float* variance, float eps, const float* dy,
                                             const float* y, int64_t i) {
  const int64_t c = i / g.spatial % g.channels;
  const float scale = gamma ? gamma[c] : 1.0f;
  const float factor = BatchNormFactor(formula, scale, variance[c], eps);
  return BatchNormValueGrad(g, dy, y, i) * (IsNative(formula) ? factor * scale : factor);
}

// The parameter gradients of channel c: {gamma (0 with fix_gamma), beta, mean, variance}.
struct BatchNormParamGrads {
  float gamma, beta, mean, variance;
};
BMX_HD inline BatchNormParamGrads BatchNormParamGradChannel(const BatchNormGeometry& g, const float* x,
                                                            const float* gamma, const float* mean,
                                                            const float* variance, float eps, const float* dy,
                                                            const float* y, int64_t c) {
  double sum_dy = 0.0, sum_dy_centered = 0.0;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t s = 0; s < g.spatial; ++s) {
      const int64_t i = (n * g.channels + c) * g.spatial + s;
      const float grad = BatchNormValueGrad(g, dy, y, i);
      sum_dy += grad;
      sum_dy_centered += static_cast<double>(grad) * (x[BatchNormInputIndex(g, i)] - mean[c]);
    }
  const double scale = gamma ? gamma[c] : 1.0, inv = 1.0 / Sqrt(variance[c] + eps);
  return {gamma ? static_cast<float>(sum_dy_centered * inv) : 0.0f, static_cast<float>(sum_dy),
          static_cast<float>(-sum_dy * scale * inv),
          static_cast<float>(-0.5 * sum_dy_centered * scale * inv * inv * inv)};
}

void BatchNormForward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                      const float* beta, const float* mean, const float* variance, float eps, float* y,
                      int threads, Isa isa);

// dx, and dgamma, dbeta, dmean, dvariance ([channels] each); y is the forward output.
void BatchNormBackward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                       const float* mean, const float* variance, float eps, const float* dy, const float* y, float* dx,
                       float* dgamma, float* dbeta, float* dmean, float* dvariance, int threads);

// The vector build (AVX2 on x86, also under AVX-512; NEON on aarch64).
namespace simd {
// y[0..n) of one plane (then the ReLU with relu).
void BatchNormPlane(BatchNormFormula formula, bool relu, const float* x, int64_t n, const BatchNormChannel& k,
                    float* y);
// Pixels first .. first + 7, channels c_begin .. c_end - 1 of one channels-last image x
// [spatial, channels] into y [channels, spatial] (blocks transposed in registers;
// `first` + 8 <= spatial).
void BatchNormPixelsChannelsLast(BatchNormFormula formula, bool relu, const float* x, int64_t spatial,
                                 int64_t channels, int64_t first, int64_t c_begin, int64_t c_end,
                                 const BatchNormChannel* k, float* y);
}  // namespace simd

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_BATCHNORM_H_
