// CUDA kernels of the quantized operators. Each kernel maps blockIdx/threadIdx to the
// per-thread functions of binary_logic.h, which the host harness runs the same way.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "binary_cuda.h"

namespace bmxnet {
namespace cuda {
namespace {

constexpr int64_t kMaxGridY = 65535;
constexpr size_t kSharedTileBytes = 48 * 1024;  // default dynamic shared memory per block

void Check(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string("bmxnet CUDA ") + what + ": " + cudaGetErrorString(error));
}

dim3 ToDim3(const Dim3& d, const char* what) {
  if (d.y > kMaxGridY || d.z > kMaxGridY)
    throw std::runtime_error(std::string("bmxnet CUDA ") + what + ": grid too large for one launch");
  return dim3(static_cast<unsigned>(d.x), static_cast<unsigned>(d.y), static_cast<unsigned>(d.z));
}

cudaStream_t Stream(void* stream) { return static_cast<cudaStream_t>(stream); }

unsigned Blocks(int64_t n, int threads) { return static_cast<unsigned>(CeilDiv(n, threads)); }

__global__ void PackActivationsKernel(PackedConv s, const float* x, const float* direction, const float* threshold,
                                      uint64_t* packed) {
  PackActivationThread(s, x, direction, threshold, blockIdx.x, blockIdx.y, threadIdx.x, packed);
}

__global__ void PackWeightsKernel(const float* w, int64_t per_group, int64_t taps, int64_t words, int64_t total,
                                  uint64_t* packed) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index < total) packed[index] = PackWeightWord(w, per_group, taps, words, index);
}

// The block's weight tile goes to shared memory when it fits (every thread then reads the
// same word at once: a broadcast), else it is read where it is, through the L1 cache.
__global__ void ConvolveKernel(PackedConv s, const uint64_t* x, const uint64_t* w, const float* scale,
                               const float* bias, const float* residual, bool staged, float* y) {
  extern __shared__ uint64_t shared_tile[];
  const int64_t depth = s.Depth();
  const uint64_t* tile = w + ConvTileFirstFilter(s, blockIdx.y, blockIdx.z) * depth;
  if (staged) {
    const int64_t words = ConvTileFilters(s, blockIdx.y) * depth;
    for (int64_t i = threadIdx.x; i < words; i += blockDim.x) shared_tile[i] = tile[i];
    __syncthreads();
    tile = shared_tile;
  }
  ConvThread(s, x, tile, scale, bias, residual, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, y);
}

__global__ void DenseKernel(const uint64_t* x, const uint64_t* w, const float* scale, const float* bias,
                            int64_t rows, int64_t features, int64_t outputs, float* y) {
  DenseThread(x, w, scale, bias, rows, features, outputs, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y, y);
}

__global__ void QuantizeActivationKernel(int bits, const float* x, float* y, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = kernels::QuantizeActivationValue(bits, x[i]);
}

__global__ void ActivationGradientKernel(int bits, kernels::Estimator method, float clip, float beta, const float* x,
                                         const float* dy, float* dx, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = kernels::ActivationGradientValue(bits, method, clip, beta, x[i], dy[i]);
}

// Block tree reduction of one value per thread (kReduceThreads threads).
template <typename Combine>
__device__ float BlockReduce(float value, Combine combine) {
  __shared__ float partial[kReduceThreads];
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] = combine(partial[threadIdx.x], partial[threadIdx.x + half]);
    __syncthreads();
  }
  return partial[0];
}

// max |tanh(w)| into *result (0 beforehand): non-negative floats order like their bits.
__global__ void MaxAbsTanhKernel(const float* w, int64_t n, float* result) {
  const float m = BlockReduce(MaxAbsTanhPartial(w, n, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
                                                static_cast<int64_t>(gridDim.x) * blockDim.x),
                              [](float a, float b) { return a > b ? a : b; });
  if (threadIdx.x == 0) atomicMax(reinterpret_cast<int*>(result), __float_as_int(m));
}

__global__ void RowMeanAbsKernel(const float* w, int64_t per_out, float* means) {
  const float sum = BlockReduce(RowAbsSumPartial(w, per_out, blockIdx.x, threadIdx.x, blockDim.x),
                                [](float a, float b) { return a + b; });
  if (threadIdx.x == 0) means[blockIdx.x] = sum / static_cast<float>(per_out);
}

__global__ void QuantizeWeightsKernel(int bits, const float* w, const float* max_tanh, const float* row_scale,
                                      int64_t per_out, int64_t n, float* wq) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    wq[i] = QuantizeWeightValue(bits, w[i], *max_tanh, row_scale, i / per_out);
}

unsigned ElementBlocks(int64_t n) {
  const int64_t blocks = CeilDiv(n, kElementThreads);
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);  // grid-stride beyond
}

}  // namespace

void PackActivations(const PackedConv& s, const float* x, const float* thresholds, uint64_t* packed, void* stream) {
  if (s.batch * s.InSpatial() == 0) return;
  PackActivationsKernel<<<ToDim3(PackGrid(s), "packing"), kPackThreads, 0, Stream(stream)>>>(
      s, x, thresholds, thresholds ? thresholds + s.channels : nullptr, packed);
  Check("activation packing");
}

void PackConvWeights(const float* w, int64_t filters, int64_t per_group, int64_t taps, uint64_t* packed,
                     void* stream) {
  const int64_t words = (per_group + 63) / 64, total = filters * taps * words;
  if (total == 0) return;
  PackWeightsKernel<<<Blocks(total, kElementThreads), kElementThreads, 0, Stream(stream)>>>(
      w, per_group, taps, words, total, packed);
  Check("weight packing");
}

void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, void* stream) {
  const PackedConv rows_as_images{rows, length, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, false};
  PackActivations(rows_as_images, x, nullptr, packed, stream);
}

void Convolve(const PackedConv& s, const uint64_t* x, const uint64_t* w, const float* scale, const float* bias,
              const float* residual, float* y, void* stream) {
  if (s.batch * s.OutSpatial() * s.filters == 0) return;
  const size_t tile_bytes = static_cast<size_t>(kConvFilters * s.Depth()) * sizeof(uint64_t);
  const bool staged = tile_bytes <= kSharedTileBytes;
  ConvolveKernel<<<ToDim3(ConvGrid(s), "convolution"), kConvThreads, staged ? tile_bytes : 0, Stream(stream)>>>(
      s, x, w, scale, bias, residual, staged, y);
  Check("binary convolution");
}

void Dense(const uint64_t* x, const uint64_t* w, const float* scale, const float* bias, int64_t rows,
           int64_t features, int64_t outputs, float* y, void* stream) {
  if (rows * outputs == 0) return;
  DenseKernel<<<ToDim3(DenseGrid(rows, outputs), "dense"), dim3(kDenseTile, kDenseTile), 0, Stream(stream)>>>(
      x, w, scale, bias, rows, features, outputs, y);
  Check("binary dense");
}

void QuantizeActivation(const kernels::ActivationSpec& spec, const float* x, float* y, int64_t n, void* stream) {
  if (n == 0) return;
  QuantizeActivationKernel<<<ElementBlocks(n), kElementThreads, 0, Stream(stream)>>>(spec.bits, x, y, n);
  Check("activation quantization");
}

void ActivationGradient(const kernels::ActivationSpec& spec, const float* x, const float* dy, float* dx, int64_t n,
                        void* stream) {
  if (n == 0) return;
  ActivationGradientKernel<<<ElementBlocks(n), kElementThreads, 0, Stream(stream)>>>(
      spec.bits, spec.method, spec.clip, spec.beta, x, dy, dx, n);
  Check("activation gradient");
}

void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out, int64_t per_out,
                     float* scratch, void* stream) {
  const int64_t n = num_out * per_out;
  if (n == 0) return;
  cudaMemsetAsync(scratch, 0, sizeof(float), Stream(stream));
  if (bits > 1 && bits < 32)
    MaxAbsTanhKernel<<<ElementBlocks(n), kReduceThreads, 0, Stream(stream)>>>(w, n, scratch);
  if (xnor_scaling) RowMeanAbsKernel<<<static_cast<unsigned>(num_out), kReduceThreads, 0, Stream(stream)>>>(w, per_out, scratch + 1);
  // w may be wq: the reductions above read all of w before this kernel starts (same stream)
  QuantizeWeightsKernel<<<ElementBlocks(n), kElementThreads, 0, Stream(stream)>>>(
      bits, w, scratch, xnor_scaling ? scratch + 1 : nullptr, per_out, n, wq);
  Check("weight quantization");
}

}  // namespace cuda
}  // namespace bmxnet
