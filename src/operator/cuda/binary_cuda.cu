// CUDA kernels of the packed layers: bit packing, binary convolution, xnor dense. Each
// kernel maps blockIdx/threadIdx to the per-thread functions of binary_logic.h, which the
// host harness runs the same way.
#include "launch_util.cuh"
#include "launchers.h"

namespace bmxnet {
namespace cuda {
namespace {

constexpr size_t kSharedTileBytes = 48 * 1024;  // default dynamic shared memory per block

__global__ void PackActivationsKernel(ConvShape s, kernels::ChannelPieces x, const float* direction,
                                      const float* threshold, uint64_t* packed) {
  PackActivationThread(s, x, direction, threshold, blockIdx.x, blockIdx.y, threadIdx.x, packed);
}

// The block's weight tile goes to shared memory when it fits (every thread then reads the
// same word at once: a broadcast), else it is read where it is, through the L1 cache.
__global__ void ConvolveKernel(ConvShape s, const uint64_t* x, const uint64_t* w, const float* scale,
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

}  // namespace

void CopyRows(const void* source, int64_t source_pitch, void* destination, int64_t destination_pitch,
              int64_t bytes, int64_t images, void* stream) {
  if (bytes == 0 || images == 0) return;
  const cudaError_t error = cudaMemcpy2DAsync(destination, destination_pitch, source, source_pitch, bytes, images,
                                              cudaMemcpyDeviceToDevice, Stream(stream));
  if (error != cudaSuccess) throw std::runtime_error(std::string("bmxnet CUDA channel copy: ") + cudaGetErrorString(error));
}

void ZeroRows(void* destination, int64_t pitch, int64_t bytes, int64_t images, void* stream) {
  if (bytes == 0 || images == 0) return;
  const cudaError_t error = cudaMemset2DAsync(destination, pitch, 0, bytes, images, Stream(stream));
  if (error != cudaSuccess) throw std::runtime_error(std::string("bmxnet CUDA channel zeroing: ") + cudaGetErrorString(error));
}

void PackActivations(const ConvShape& s, const kernels::ChannelPieces& x, const float* thresholds, uint64_t* packed,
                     void* stream) {
  if (s.batch * s.InSpatial() == 0) return;
  PackActivationsKernel<<<ToDim3(PackGrid(s), "packing"), kPackThreads, 0, Stream(stream)>>>(
      s, x, thresholds, thresholds ? thresholds + s.channels : nullptr, packed);
  Check("activation packing");
}

void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, void* stream) {
  const ConvShape rows_as_images{rows, length, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, false};
  PackActivations(rows_as_images, kernels::ChannelPieces::Whole(x, length, 1), nullptr, packed, stream);
}

void Convolve(const ConvShape& s, const uint64_t* x, const uint64_t* w, const float* scale, const float* bias,
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

}  // namespace cuda
}  // namespace bmxnet
