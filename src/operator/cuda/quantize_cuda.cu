// CUDA kernels of the quantizers: activations forward and backward, weights (sign, DoReFa
// k bits, xnor scale) and their straight-through gradient. Per-value formulas:
// kernels/quantize_element.h; reductions: binary_logic.h.
#include "launch_util.cuh"
#include "launchers.h"

namespace bmxnet {
namespace cuda {
namespace {

__global__ void QuantizeActivationKernel(int bits, const float* x, float* y, int64_t n) {
  BMX_GRID_STRIDE(i, n) y[i] = kernels::QuantizeActivationValue(bits, x[i]);
}

__global__ void ActivationGradientKernel(int bits, kernels::Estimator method, float clip, float beta, const float* x,
                                         const float* dy, float* dx, int64_t n) {
  BMX_GRID_STRIDE(i, n) dx[i] = kernels::ActivationGradientValue(bits, method, clip, beta, x[i], dy[i]);
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

// One thread per row, summing in order as the CPU does: the same scales bit for bit.
__global__ void RowMeanAbsKernel(const float* w, int64_t num_out, int64_t per_out, float* means) {
  BMX_GRID_STRIDE(row, num_out) means[row] = kernels::RowMeanAbs(w, per_out, row);
}

__global__ void QuantizeWeightsKernel(int bits, const float* w, const float* max_tanh, const float* row_scale,
                                      int64_t per_out, int64_t n, float* wq) {
  BMX_GRID_STRIDE(i, n) wq[i] = QuantizeWeightValue(bits, w[i], *max_tanh, row_scale, i / per_out);
}

__global__ void WeightGradientKernel(int bits, const float* w, const float* dwq, const float* max_tanh,
                                     const float* row_scale, int64_t per_out, int64_t n, float* dw) {
  BMX_GRID_STRIDE(i, n) dw[i] = WeightGradValue(bits, w[i], dwq[i], *max_tanh, row_scale, i / per_out);
}

// scratch[0] = max |tanh(w)| (k bits), scratch[1 + row] = mean |w| of the row (xnor).
void WeightStatistics(int bits, bool xnor_scaling, const float* w, int64_t num_out, int64_t per_out, float* scratch,
                      void* stream) {
  const int64_t n = num_out * per_out;
  cudaMemsetAsync(scratch, 0, sizeof(float), Stream(stream));
  if (bits > 1 && bits < 32) MaxAbsTanhKernel<<<StrideBlocks(n), kReduceThreads, 0, Stream(stream)>>>(w, n, scratch);
  if (xnor_scaling) RowMeanAbsKernel<<<StrideBlocks(num_out), kElementThreads, 0, Stream(stream)>>>(w, num_out, per_out, scratch + 1);
}

}  // namespace

void QuantizeActivation(const kernels::ActivationSpec& spec, const float* x, float* y, int64_t n, void* stream) {
  if (n == 0) return;
  QuantizeActivationKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(spec.bits, x, y, n);
  Check("activation quantization");
}

void ActivationGradient(const kernels::ActivationSpec& spec, const float* x, const float* dy, float* dx, int64_t n,
                        void* stream) {
  if (n == 0) return;
  ActivationGradientKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(
      spec.bits, spec.method, spec.clip, spec.beta, x, dy, dx, n);
  Check("activation gradient");
}

void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out, int64_t per_out,
                     float* scratch, void* stream) {
  const int64_t n = num_out * per_out;
  if (n == 0) return;
  WeightStatistics(bits, xnor_scaling, w, num_out, per_out, scratch, stream);
  // w may be wq: the reductions read all of w before this kernel starts (same stream)
  QuantizeWeightsKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(
      bits, w, scratch, xnor_scaling ? scratch + 1 : nullptr, per_out, n, wq);
  Check("weight quantization");
}

void XnorScales(const float* w, int64_t num_out, int64_t per_out, float* alpha, void* stream) {
  if (num_out == 0) return;
  RowMeanAbsKernel<<<StrideBlocks(num_out), kElementThreads, 0, Stream(stream)>>>(w, num_out, per_out, alpha);
  Check("xnor scales");
}

void WeightGradient(int bits, bool xnor_scaling, const float* w, const float* dwq, float* dw, int64_t num_out,
                    int64_t per_out, float* scratch, void* stream) {
  const int64_t n = num_out * per_out;
  if (n == 0) return;
  WeightStatistics(bits, xnor_scaling, w, num_out, per_out, scratch, stream);
  WeightGradientKernel<<<StrideBlocks(n), kElementThreads, 0, Stream(stream)>>>(
      bits, w, dwq, scratch, xnor_scaling ? scratch + 1 : nullptr, per_out, n, dw);
  Check("weight gradient");
}

}  // namespace cuda
}  // namespace bmxnet
