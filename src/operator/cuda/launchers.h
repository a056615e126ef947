// Launchers of the CUDA kernels (binary_cuda.cu, quantize_cuda.cu, float_cuda.cu),
// callable from plain C++: pointers are device memory, `stream` a cudaStream_t. They throw
// std::runtime_error with CUDA's message when a launch fails. Built only with BMXNET_CUDA.
#ifndef BMXNET_CUDA_LAUNCHERS_H_
#define BMXNET_CUDA_LAUNCHERS_H_

#include <cstdint>

#include "../kernels/batchnorm.h"
#include "../kernels/pooling.h"
#include "../kernels/quantize.h"
#include "binary_logic.h"

namespace bmxnet {
namespace cuda {

// Activations [N, C, H, W] (or channel pieces of them) -> [N, H, W, groups, words];
// thresholds (2, C) or nullptr.
void PackActivations(const ConvShape& s, const kernels::ChannelPieces& x, const float* thresholds, uint64_t* packed,
                     void* stream);

// Rows [N, K] -> [N, words] (dense data and weights).
void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, void* stream);

// y [N, O, OH, OW] from packed activations and weights; scale, bias, residual may be null.
void Convolve(const ConvShape& s, const uint64_t* x, const uint64_t* w, const float* scale,
              const float* bias, const float* residual, float* y, void* stream);

// y [rows, outputs] = features - 2 popcount(x xor w), then scale and bias when given.
void Dense(const uint64_t* x, const uint64_t* w, const float* scale, const float* bias, int64_t rows,
           int64_t features, int64_t outputs, float* y, void* stream);

// Copies `images` rows of `bytes` bytes between pitched buffers (ChannelConcat's pieces).
void CopyRows(const void* source, int64_t source_pitch, void* destination, int64_t destination_pitch,
              int64_t bytes, int64_t images, void* stream);
// Zeroes `images` rows of `bytes` bytes, `pitch` bytes apart.
void ZeroRows(void* destination, int64_t pitch, int64_t bytes, int64_t images, void* stream);

// PlainBatchNorm: y [batch, channels, spatial], one thread per value (BatchNormElement).
void BatchNorm(const kernels::BatchNormGeometry& g, kernels::BatchNormFormula formula, const float* x,
               const float* gamma, const float* beta, const float* mean, const float* variance, float eps, float* y,
               void* stream);
// Its gradients (y: the forward output): dx, and dgamma, dbeta, dmean, dvariance
// ([channels], one thread each).
void BatchNormGradient(const kernels::BatchNormGeometry& g, kernels::BatchNormFormula formula, const float* x,
                       const float* gamma, const float* mean, const float* variance, float eps, const float* dy,
                       const float* y, float* dx, float* dgamma, float* dbeta, float* dmean, float* dvariance,
                       void* stream);
// PlainPooling: y [planes, OH, OW] from x [planes, H, W], one thread per output (PoolValue).
void Pool(const kernels::PoolGeometry& g, const float* x, float* y, void* stream);
// Its data gradient dx [planes, H, W], one thread per input (PoolGradValue).
void PoolGradient(const kernels::PoolGeometry& g, const float* x, const float* dy, float* dx, void* stream);

void QuantizeActivation(const kernels::ActivationSpec& spec, const float* x, float* y, int64_t n,
                        void* stream);
void ActivationGradient(const kernels::ActivationSpec& spec, const float* x, const float* dy, float* dx,
                        int64_t n, void* stream);

// Weights [num_out, per_out] as the CPU QuantizeWeights / WeightGradient (in place allowed);
// scratch: num_out + 1 floats.
void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out,
                     int64_t per_out, float* scratch, void* stream);
void WeightGradient(int bits, bool xnor_scaling, const float* w, const float* dwq, float* dw,
                    int64_t num_out, int64_t per_out, float* scratch, void* stream);
// alpha [num_out] = mean |w| per row, as kernels::XnorScales.
void XnorScales(const float* w, int64_t num_out, int64_t per_out, float* alpha, void* stream);

// Float layers (NCHW; weights [O, C/groups, KH, KW]; dense [rows, features] x
// [outputs, features]); scale (per output channel, times the sum), bias, dx, dw, dbias
// may be null.
void FloatConvForward(const ConvShape& s, const float* x, const float* w, const float* scale, const float* bias,
                      float* y, void* stream);
void FloatConvBackward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                       float* dw, float* dbias, void* stream);
void FloatDenseForward(const float* x, const float* w, const float* scale, const float* bias, int64_t rows,
                       int64_t features, int64_t outputs, float* y, void* stream);
void FloatDenseBackward(const float* x, const float* w, const float* dy, int64_t rows, int64_t features,
                        int64_t outputs, float* dx, float* dw, float* dbias, void* stream);

}  // namespace cuda
}  // namespace bmxnet

#endif  // BMXNET_CUDA_LAUNCHERS_H_
