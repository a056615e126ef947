// Quantized copies of a layer's data and weight, shared by QConvolution and QFullyConnected.
#ifndef BMXNET_OPERATOR_OP_QUANTIZE_H_
#define BMXNET_OPERATOR_OP_QUANTIZE_H_

#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/quantize.h"
#include "op_params.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {

// Where the xnor scale goes. Forward, onto each output: the sum of +-1 products is an exact
// integer, and one product with the scale rounds it as the packed kernels do (scaled
// weights would round at every step of the sum). Backward, into the weights: the same
// gradient, computed as before.
enum class ScaleOn { kOutputs, kWeights };

struct QuantizedInputs {
  const float* data;
  const float* weight;
  const float* output_scale;  // ScaleOn::kOutputs with xnor scaling: one per output channel, else null
};

// Floats of scratch QuantizeInputs may use.
inline int64_t QuantizeScratchSize(int64_t data_size, int64_t rows, int64_t per_row) {
  return data_size + rows * per_row + rows;
}

// Quantizes data to act_bit and weight ([rows, per_row]) to weight_bit (+ xnor scale, see
// ScaleOn) into scratch; a full-precision input is returned as it is, without a copy.
inline QuantizedInputs QuantizeInputs(int act_bit, int weight_bit, Scaling scaling, ScaleOn scale_on,
                                      const float* data, int64_t data_size, const float* weight,
                                      int64_t rows, int64_t per_row, float* scratch) {
  QuantizedInputs q{data, weight, nullptr};
  const bool xnor = scaling == Scaling::kXnor, scale_weights = xnor && scale_on == ScaleOn::kWeights;
  if (act_bit < 32) {
    kernels::ActivationSpec spec;
    spec.bits = act_bit;
    kernels::QuantizeActivation(spec, data, scratch, data_size);
    q.data = scratch;
    scratch += data_size;
  }
  if (weight_bit < 32 || scale_weights) {
    kernels::QuantizeWeights(weight_bit, scale_weights, weight, scratch, rows, per_row);
    q.weight = scratch;
    scratch += rows * per_row;
  }
  if (xnor && !scale_weights) {
    kernels::XnorScales(weight, rows, per_row, scratch);
    q.output_scale = scratch;
  }
  return q;
}

// y[n, c, s] = y[n, c, s] * scale[c] (+ bias[c]): two roundings, as kernels::FinishValue.
inline void ScaleOutputs(const float* scale, const float* bias, int64_t batch, int64_t channels, int64_t spatial,
                         float* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      float* out = y + (n * channels + c) * spatial;
      for (int64_t s = 0; s < spatial; ++s) {
        const float scaled = kernels::RoundedProduct(out[s], scale[c]);
        out[s] = bias ? scaled + bias[c] : scaled;
      }
    }
}

#ifdef BMXNET_CUDA
// The same on the GPU; scratch (device) holds GpuQuantizeScratchSize floats.
inline int64_t GpuQuantizeScratchSize(int64_t data_size, int64_t rows, int64_t per_row) {
  return data_size + rows * per_row + rows + 1;
}

inline QuantizedInputs QuantizeInputsGpu(int act_bit, int weight_bit, Scaling scaling, ScaleOn scale_on,
                                         const float* data, int64_t data_size, const float* weight, int64_t rows,
                                         int64_t per_row, float* scratch, void* stream) {
  QuantizedInputs q{data, weight, nullptr};
  const bool xnor = scaling == Scaling::kXnor, scale_weights = xnor && scale_on == ScaleOn::kWeights;
  if (act_bit < 32) {
    kernels::ActivationSpec spec;
    spec.bits = act_bit;
    cuda::QuantizeActivation(spec, data, scratch, data_size, stream);
    q.data = scratch;
  }
  float* quantized = scratch + data_size;
  if (weight_bit < 32 || scale_weights) {
    cuda::QuantizeWeights(weight_bit, scale_weights, weight, quantized, rows, per_row, quantized + rows * per_row,
                          stream);
    q.weight = quantized;
  }
  if (xnor && !scale_weights) {
    cuda::XnorScales(weight, rows, per_row, quantized + rows * per_row, stream);
    q.output_scale = quantized + rows * per_row;
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
