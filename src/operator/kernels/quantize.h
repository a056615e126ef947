// Quantizers of activations and weights, forward and straight-through backward.
// Plain float arrays, no MXNet types; formulas are documented in docs/operators.md.
#ifndef BMXNET_KERNELS_QUANTIZE_H_
#define BMXNET_KERNELS_QUANTIZE_H_

#include <cstdint>

namespace bmxnet {
namespace kernels {

enum class Estimator { kSte, kApproxSign, kSwishSign };

struct ActivationSpec {
  int bits = 1;                     // 1: sign, 2..31: k-bit in [0, 1], 32: identity
  Estimator method = Estimator::kSte;
  float clip = 1.0f;                // ste: gradient passes where |x| <= clip
  float beta = 5.0f;                // swish_sign steepness
};

// y = q(x). In-place (x == y) is allowed.
void QuantizeActivation(const ActivationSpec& spec, const float* x, float* y, int64_t n);

// dx = dy * q'(x) for the estimator of spec. In-place (dy == dx) is allowed.
void ActivationGradient(const ActivationSpec& spec, const float* x, const float* dy, float* dx,
                        int64_t n);

// Weights of shape [num_out, per_out]: 1 bit sign, k bits DoReFa, 32 identity;
// with xnor scaling every output row is multiplied by mean|w| of that row.
void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out,
                     int64_t per_out);

// alpha[o] = mean |w| of row o (XNOR-Net's scale; quantize_element.h RowMeanAbs).
void XnorScales(const float* w, int64_t num_out, int64_t per_out, float* alpha);

// dw = dwq * d(wq)/dw (straight-through for the rounding step). In-place allowed.
void WeightGradient(int bits, bool xnor_scaling, const float* w, const float* dwq, float* dw,
                    int64_t num_out, int64_t per_out);

// Vectorised pieces of the 1-bit path (AVX2 on x86, NEON on aarch64); QuantizeActivation /
// ActivationGradient dispatch to them.
namespace simd {
void SignActivation(const float* x, float* y, int64_t n);
void SteGradient(float clip, const float* x, const float* dy, float* dx, int64_t n);
}  // namespace simd
namespace portable {
void SignActivation(const float* x, float* y, int64_t n);
void SteGradient(float clip, const float* x, const float* dy, float* dx, int64_t n);
}  // namespace portable

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_QUANTIZE_H_
