// Launchers of the CUDA kernels (binary_cuda.cu), callable from plain C++: pointers are
// device memory, `stream` a cudaStream_t. They throw std::runtime_error with CUDA's
// message when a launch fails. Built only with BMXNET_CUDA.
#ifndef BMXNET_CUDA_BINARY_CUDA_H_
#define BMXNET_CUDA_BINARY_CUDA_H_

#include <cstdint>

#include "../kernels/quantize.h"
#include "binary_logic.h"

namespace bmxnet {
namespace cuda {

// Activations [N, C, H, W] -> [N, H, W, groups, words]; thresholds (2, C) or nullptr.
void PackActivations(const PackedConv& s, const float* x, const float* thresholds, uint64_t* packed,
                     void* stream);

// Conv weights [O, C/groups, KH, KW] -> [O, KH, KW, words].
void PackConvWeights(const float* w, int64_t filters, int64_t per_group, int64_t taps, uint64_t* packed,
                     void* stream);

// Rows [N, K] -> [N, words] (dense data and weights).
void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, void* stream);

// y [N, O, OH, OW] from packed activations and weights; scale, bias, residual may be null.
void Convolve(const PackedConv& s, const uint64_t* x, const uint64_t* w, const float* scale,
              const float* bias, const float* residual, float* y, void* stream);

// y [rows, outputs] = features - 2 popcount(x xor w), then scale and bias when given.
void Dense(const uint64_t* x, const uint64_t* w, const float* scale, const float* bias, int64_t rows,
           int64_t features, int64_t outputs, float* y, void* stream);

void QuantizeActivation(const kernels::ActivationSpec& spec, const float* x, float* y, int64_t n,
                        void* stream);
void ActivationGradient(const kernels::ActivationSpec& spec, const float* x, const float* dy, float* dx,
                        int64_t n, void* stream);

// Weights [num_out, per_out] as the CPU QuantizeWeights; scratch: num_out + 1 floats.
void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out,
                     int64_t per_out, float* scratch, void* stream);

}  // namespace cuda
}  // namespace bmxnet

#endif  // BMXNET_CUDA_BINARY_CUDA_H_
