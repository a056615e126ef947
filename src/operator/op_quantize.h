// Quantized copies of a layer's data and weight, shared by QConvolution and QFullyConnected.
#ifndef BMXNET_OPERATOR_OP_QUANTIZE_H_
#define BMXNET_OPERATOR_OP_QUANTIZE_H_

#include <cstdint>

#include "kernels/quantize.h"
#include "op_params.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {

struct QuantizedInputs {
  const float* data;
  const float* weight;
};

// Floats of scratch QuantizeInputs may use.
inline int64_t QuantizeScratchSize(int64_t data_size, int64_t weight_size) {
  return data_size + weight_size;
}

// Quantizes data to act_bit and weight ([rows, per_row]) to weight_bit (+ xnor scale) into
// scratch; a full-precision input is returned as it is, without a copy.
inline QuantizedInputs QuantizeInputs(int act_bit, int weight_bit, Scaling scaling,
                                      const float* data, int64_t data_size, const float* weight,
                                      int64_t rows, int64_t per_row, float* scratch) {
  QuantizedInputs q{data, weight};
  if (act_bit < 32) {
    kernels::ActivationSpec spec;
    spec.bits = act_bit;
    kernels::QuantizeActivation(spec, data, scratch, data_size);
    q.data = scratch;
    scratch += data_size;
  }
  if (weight_bit < 32 || scaling == Scaling::kXnor) {
    kernels::QuantizeWeights(weight_bit, scaling == Scaling::kXnor, weight, scratch, rows, per_row);
    q.weight = scratch;
  }
  return q;
}

#ifdef BMXNET_CUDA
// The same on the GPU; scratch (device) holds GpuQuantizeScratchSize floats.
inline int64_t GpuQuantizeScratchSize(int64_t data_size, int64_t rows, int64_t per_row) {
  return data_size + rows * per_row + rows + 1;
}

inline QuantizedInputs QuantizeInputsGpu(int act_bit, int weight_bit, Scaling scaling, const float* data,
                                         int64_t data_size, const float* weight, int64_t rows, int64_t per_row,
                                         float* scratch, void* stream) {
  QuantizedInputs q{data, weight};
  if (act_bit < 32) {
    kernels::ActivationSpec spec;
    spec.bits = act_bit;
    cuda::QuantizeActivation(spec, data, scratch, data_size, stream);
    q.data = scratch;
  }
  if (weight_bit < 32 || scaling == Scaling::kXnor) {
    float* quantized = scratch + data_size;
    cuda::QuantizeWeights(weight_bit, scaling == Scaling::kXnor, weight, quantized, rows, per_row,
                          quantized + rows * per_row, stream);
    q.weight = quantized;
  }
  return q;
}
#endif

// weights[r, :] *= scale[r]: the xnor scale applied to unpacked +-1 weights.
inline void ScaleRows(const float* scale, int64_t rows, int64_t per_row, float* weights) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < per_row; ++k) weights[r * per_row + k] *= scale[r];
}

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_OP_QUANTIZE_H_
