// The quantizers' formulas for one value, shared by the CPU loops (quantize.cc) and the
// CUDA kernels (one thread per value). docs/operators.md gives the formulas.
#ifndef BMXNET_KERNELS_QUANTIZE_ELEMENT_H_
#define BMXNET_KERNELS_QUANTIZE_ELEMENT_H_

#include "host_device.h"
#include "quantize.h"

namespace bmxnet {
namespace kernels {

BMX_HD inline float Levels(int bits) { return static_cast<float>((1u << bits) - 1u); }

// round-half-up of v in [0, levels], then back to [0, 1]
BMX_HD inline float QuantizeUnit(float v, float levels) { return Floor(v * levels + 0.5f) / levels; }

BMX_HD inline float ClipUnit(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

BMX_HD inline float SignValue(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

// q(x): sign (1 bit), clipped k-bit in [0, 1], identity (32 bits).
BMX_HD inline float QuantizeActivationValue(int bits, float x) {
  if (bits == 1) return SignValue(x);
  if (bits < 32) return QuantizeUnit(ClipUnit(x), Levels(bits));
  return x;
}

BMX_HD inline float SwishSignDerivative(float x, float beta) {
  const float bx = beta * x;
  return beta * (2.0f - bx * Tanh(0.5f * bx)) / (1.0f + Cosh(bx));
}

// dy * q'(x) for the estimator of (bits, method).
BMX_HD inline float ActivationGradientValue(int bits, Estimator method, float clip, float beta, float x,
                                            float dy) {
  if (bits == 32) return dy;
  if (bits > 1) return (x >= 0.0f && x <= 1.0f) ? dy : 0.0f;  // straight through inside [0, 1]
  switch (method) {
    case Estimator::kApproxSign: {
      const float a = Abs(x);
      return a <= 1.0f ? dy * (2.0f - 2.0f * a) : 0.0f;
    }
    case Estimator::kSwishSign:
      return dy * SwishSignDerivative(x, beta);
    default:
      return Abs(x) <= clip ? dy : 0.0f;
  }
}

// XNOR-Net scale of row `row` of w [rows, per_out]: mean |w|, summed in double in order,
// rounded once to float. The converter computes the packed model's scales the same way.
BMX_HD inline float RowMeanAbs(const float* w, int64_t per_out, int64_t row) {
  double sum = 0.0;
  for (int64_t i = 0; i < per_out; ++i) sum += static_cast<double>(Abs(w[row * per_out + i]));
  return static_cast<float>(sum / static_cast<double>(per_out));
}

// DoReFa k-bit weight: 2 q_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1.
BMX_HD inline float DoReFaWeight(float w, float levels, float max_tanh) {
  const float unit = max_tanh > 0.0f ? Tanh(w) / (2.0f * max_tanh) + 0.5f : 0.5f;
  return 2.0f * QuantizeUnit(unit, levels) - 1.0f;
}

// d(DoReFaWeight)/dw with the rounding passed straight through and the max held constant.
BMX_HD inline float DoReFaDerivative(float w, float max_tanh) {
  const float t = Tanh(w);
  return max_tanh > 0.0f ? (1.0f - t * t) / max_tanh : 0.0f;
}

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_QUANTIZE_ELEMENT_H_
