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

BMX_HD inline float Sqrt(float x) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

BMX_HD inline float Fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// a * b and a + b rounded on their own: nvcc would fuse a * b + c (the CPU files that
// could are built with -ffp-contract=off).
BMX_HD inline float RoundedMul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

BMX_HD inline float RoundedAdd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// The packed bit of a value: 1 for -1 (v < 0, or NaN, as sign() maps it), 0 for +1.
BMX_HD inline uint64_t NegativeBit(float v) { return v >= 0.0f ? 0 : 1; }

// The same against a folded BatchNorm's threshold: 1 unless direction * v >= threshold
// (direction is +1 or -1, so the product is exact).
BMX_HD inline uint64_t BelowThresholdBit(float v, float direction, float threshold) {
  return direction * v >= threshold ? 0 : 1;
}

// Mask of the valid bits of word `word` of a row of `bits` bits.
BMX_HD inline uint64_t TailMask(int64_t bits, int64_t word) {
  const int64_t valid = bits - word * 64;
  return valid >= 64 ? ~uint64_t(0) : (uint64_t(1) << valid) - 1;
}

// a * b rounded on its own: nvcc would fuse a product and a following add into one FMA
// (one rounding fewer than the CPU code, built with -ffp-contract=off, does).
BMX_HD inline float RoundedProduct(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// A binary layer's output value: value, times scale[o], plus bias[o], plus residual[index],
// each when given, as separate float operations (the float-simulated model's order).
BMX_HD inline float FinishValue(int32_t value, const float* scale, const float* bias, const float* residual,
                                int64_t o, int64_t index) {
  float v = static_cast<float>(value);
  if (scale) v = RoundedProduct(v, scale[o]);
  if (bias) v = v + bias[o];
  if (residual) v = v + residual[index];
  return v;
}

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_HOST_DEVICE_H_
