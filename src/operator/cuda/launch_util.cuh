// Launch helpers shared by the .cu files: error checks, grid sizes, the stream.
#ifndef BMXNET_CUDA_LAUNCH_UTIL_CUH_
#define BMXNET_CUDA_LAUNCH_UTIL_CUH_

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "binary_logic.h"

namespace bmxnet {
namespace cuda {

constexpr int64_t kMaxGridX = 0x7fffffff, kMaxGridY = 65535;
constexpr int64_t kMaxGridStrideBlocks = 4096;  // element-wise kernels loop beyond this

// Throws with CUDA's message if the last launch failed.
inline void Check(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string("bmxnet CUDA ") + what + ": " + cudaGetErrorString(error));
}

inline dim3 ToDim3(const Dim3& d, const char* what) {
  if (d.x > kMaxGridX || d.y > kMaxGridY || d.z > kMaxGridY)
    throw std::runtime_error(std::string("bmxnet CUDA ") + what + ": grid too large for one launch");
  return dim3(static_cast<unsigned>(d.x), static_cast<unsigned>(d.y), static_cast<unsigned>(d.z));
}

inline cudaStream_t Stream(void* stream) { return static_cast<cudaStream_t>(stream); }

inline unsigned Blocks(int64_t n, int threads) { return static_cast<unsigned>(CeilDiv(n, threads)); }

// Blocks of a grid-stride kernel over n values.
inline unsigned StrideBlocks(int64_t n) {
  const int64_t blocks = CeilDiv(n, kElementThreads);
  return static_cast<unsigned>(blocks < kMaxGridStrideBlocks ? (blocks > 0 ? blocks : 1) : kMaxGridStrideBlocks);
}

// The index of each value a grid-stride thread handles.
#define BMX_GRID_STRIDE(i, n)                                                       \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

}  // namespace cuda
}  // namespace bmxnet

#endif  // BMXNET_CUDA_LAUNCH_UTIL_CUH_
