// CUDA kernels of the float layers that non-packed Q layers run on quantized values: one
// thread per output value (float_logic.h), forward and gradients; and PlainPooling's and
// PlainBatchNorm's.
#include "float_logic.h"
#include "launch_util.cuh"
#include "launchers.h"

namespace bmxnet {
namespace cuda {
namespace {

__global__ void ConvForwardKernel(ConvShape s, const float* x, const float* w, const float* scale, const float* bias,
                                  float* y, int64_t n) {
  BMX_GRID_STRIDE(i, n) y[i] = ConvForwardValue(s, x, w, scale, bias, i);
}

__global__ void ConvDataGradKernel(ConvShape s, const float* w, const float* dy, float* dx, int64_t n) {
  BMX_GRID_STRIDE(i, n) dx[i] = ConvDataGradValue(s, w, dy, i);
}

__global__ void ConvWeightGradKernel(ConvShape s, const float* x, const float* dy, float* dw, int64_t n) {
  BMX_GRID_STRIDE(i, n) dw[i] = ConvWeightGradValue(s, x, dy, i);
}

__global__ void ConvBiasGradKernel(ConvShape s, const float* dy, float* dbias) {
  BMX_GRID_STRIDE(o, s.filters) dbias[o] = ConvBiasGradValue(s, dy, o);
}

__global__ void DenseForwardKernel(const float* x, const float* w, const float* scale, const float* bias,
                                   int64_t features, int64_t outputs, float* y, int64_t n) {
  BMX_GRID_STRIDE(i, n) y[i] = DenseForwardValue(x, w, scale, bias, features, outputs, i);
}

__global__ void DenseGradKernel(const float* x, const float* w, const float* dy, int64_t rows, int64_t features,
                                int64_t outputs, float* dx, float* dw, float* dbias) {
  const int64_t data = rows * features, weights = outputs * features;
  BMX_GRID_STRIDE(i, data + weights + (dbias ? outputs : 0)) {
    if (i < data) dx[i] = DenseDataGradValue(w, dy, features, outputs, i);
    else if (i < data + weights) dw[i - data] = DenseWeightGradValue(x, dy, rows, features, outputs, i - data);
    else dbias[i - data - weights] = DenseBiasGradValue(dy, rows, outputs, i - data - weights);
  }
}

__global__ void BatchNormKernel(kernels::BatchNormGeometry g, kernels::BatchNormFormula formula, const float* x,
                                const float* gamma, const float* beta, const float* mean, const float* variance,
                                float eps, float* y, int64_t n) {
  BMX_GRID_STRIDE(i, n) y[i] = kernels::BatchNormElement(g, formula, x, gamma, beta, mean, variance, eps, i);
}

__global__ void BatchNormDataGradKernel(kernels::BatchNormGeometry g, kernels::BatchNormFormula formula,
                                        const float* gamma, const float* variance, float eps, const float* dy,
                                        const float* y, float* dx, int64_t n) {
  BMX_GRID_STRIDE(i, n) {
    dx[kernels::BatchNormInputIndex(g, i)] =
        kernels::BatchNormDataGradElement(g, formula, gamma, variance, eps, dy, y, i);
  }
}

__global__ void BatchNormParamGradKernel(kernels::BatchNormGeometry g, const float* x, const float* gamma,
                                         const float* mean, const float* variance, float eps, const float* dy,
                                         const float* y, float* dgamma, float* dbeta, float* dmean,
                                         float* dvariance) {
  BMX_GRID_STRIDE(c, g.channels) {
    const kernels::BatchNormParamGrads grads =
        kernels::BatchNormParamGradChannel(g, x, gamma, mean, variance, eps, dy, y, c);
    dgamma[c] = grads.gamma;
    dbeta[c] = grads.beta;
    dmean[c] = grads.mean;
    dvariance[c] = grads.variance;
  }
}

__global__ void PoolKernel(kernels::PoolGeometry g, const float* x, float* y, int64_t n) {
  BMX_GRID_STRIDE(i, n) y[i] = kernels::PoolValue(g, x, i);
}

__global__ void PoolGradKernel(kernels::PoolGeometry g, const float* x, const float* dy, float* dx, int64_t n) {
  BMX_GRID_STRIDE(i, n) dx[i] = kernels::PoolGradValue(g, x, dy, i);
}

}  // namespace

void Pool(const kernels::PoolGeometry& g, const float* x, float* y, void* stream) {
  const int64_t n = g.planes * g.out_height * g.out_width;
  if (n == 0) return;
  PoolKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(g, x, y, n);
  Check("pooling");
}

void BatchNorm(const kernels::BatchNormGeometry& g, kernels::BatchNormFormula formula, const float* x,
               const float* gamma, const float* beta, const float* mean, const float* variance, float eps, float* y,
               void* stream) {
  const int64_t n = g.batch * g.channels * g.spatial;
  if (n == 0) return;
  BatchNormKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(g, formula, x, gamma, beta, mean, variance,
                                                                          eps, y, n);
  Check("batch norm");
}

void BatchNormGradient(const kernels::BatchNormGeometry& g, kernels::BatchNormFormula formula, const float* x,
                       const float* gamma, const float* mean, const float* variance, float eps, const float* dy,
                       const float* y, float* dx, float* dgamma, float* dbeta, float* dmean, float* dvariance,
                       void* stream) {
  const int64_t n = g.batch * g.channels * g.spatial;
  if (n == 0) return;
  BatchNormDataGradKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(g, formula, gamma, variance, eps,
                                                                                  dy, y, dx, n);
  BatchNormParamGradKernel<<<StrideBlocks(g.channels), kElementThreads, 0, Stream(stream)>>>(
      g, x, gamma, mean, variance, eps, dy, y, dgamma, dbeta, dmean, dvariance);
  Check("batch norm gradient");
}

void PoolGradient(const kernels::PoolGeometry& g, const float* x, const float* dy, float* dx, void* stream) {
  const int64_t n = g.planes * g.in_height * g.in_width;
  if (n == 0) return;
  PoolGradKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(g, x, dy, dx, n);
  Check("pooling gradient");
}

void FloatConvForward(const ConvShape& s, const float* x, const float* w, const float* scale, const float* bias,
                      float* y, void* stream) {
  const int64_t n = s.batch * s.filters * s.OutSpatial();
  if (n == 0) return;
  ConvForwardKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(s, x, w, scale, bias, y, n);
  Check("float convolution");
}

void FloatConvBackward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* dbias, void* stream) {
  const int64_t data = s.batch * s.channels * s.InSpatial(), weights = s.filters * s.PerGroup() * s.Taps();
  if (dx && data) ConvDataGradKernel<<<StrideBlocks(data), kElementThreads, 0, Stream(stream)>>>(s, w, dy, dx, data);
  if (dw && weights)
    ConvWeightGradKernel<<<StrideBlocks(weights), kElementThreads, 0, Stream(stream)>>>(s, x, dy, dw, weights);
  if (dbias) ConvBiasGradKernel<<<StrideBlocks(s.filters), kElementThreads, 0, Stream(stream)>>>(s, dy, dbias);
  Check("float convolution gradients");
}

void FloatDenseForward(const float* x, const float* w, const float* scale, const float* bias, int64_t rows,
                       int64_t features, int64_t outputs, float* y, void* stream) {
  const int64_t n = rows * outputs;
  if (n == 0) return;
  DenseForwardKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(x, w, scale, bias, features, outputs, y,
                                                                             n);
  Check("float dense");
}

void FloatDenseBackward(const float* x, const float* w, const float* dy, int64_t rows, int64_t features,
                        int64_t outputs, float* dx, float* dw, float* dbias, void* stream) {
  const int64_t n = rows * features + outputs * features + (dbias ? outputs : 0);
  if (n == 0) return;
  DenseGradKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(x, w, dy, rows, features, outputs, dx, dw,
                                                                          dbias);
  Check("float dense gradients");
}

}  // namespace cuda
}  // namespace bmxnet
