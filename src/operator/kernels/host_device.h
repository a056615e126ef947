// Functions that run on the CPU and, compiled by nvcc, on the GPU: the per-element and
// per-thread work of the kernels lives in such functions so that the logic a CUDA kernel
// runs is also what the CPU code and the host test harness run.
#ifndef BMXNET_KERNELS_HOST_DEVICE_H_
#define BMXNET_KERNELS_HOST_DEVICE_H_

#include <cstdint>

#ifdef __CUDACC__
#define BMX_HD __host__ __device__
#else
#define BMX_HD
#include <cmath>
#endif

namespace bmxnet {
namespace kernels {

BMX_HD inline int Popcount64(uint64_t v) {
#ifdef __CUDA_ARCH__
  return __popcll(v);
#else
  return __builtin_popcountll(v);
#endif
}

BMX_HD inline float Tanh(float x) {
#ifdef __CUDA_ARCH__
  return tanhf(x);
#else
  return std::tanh(x);
#endif
}

BMX_HD inline float Cosh(float x) {
#ifdef __CUDA_ARCH__
  return coshf(x);
#else
  return std::cosh(x);
#endif
}

BMX_HD inline float Floor(float x) {
#ifdef __CUDA_ARCH__
  return floorf(x);
#else
  return std::floor(x);
#endif
}

BMX_HD inline float Abs(float x) { return x < 0.0f ? -x : x; }

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_HOST_DEVICE_H_
