#include "quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_features.h"
#include "quantize_element.h"

namespace bmxnet {
namespace kernels {
namespace {

#if BMXNET_SIMD
bool UseVectors() { return ActiveIsa() != Isa::kPortable; }
#endif

std::vector<float> RowScales(const float* w, int64_t num_out, int64_t per_out) {
  std::vector<float> alpha(num_out);
  XnorScales(w, num_out, per_out, alpha.data());
  return alpha;
}

float MaxAbsTanh(const float* w, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(std::tanh(w[i])));
  return m;
}

}  // namespace

namespace portable {

void SignActivation(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}

void SteGradient(float clip, const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = std::fabs(x[i]) <= clip ? dy[i] : 0.0f;
}

}  // namespace portable

void XnorScales(const float* w, int64_t num_out, int64_t per_out, float* alpha) {
  for (int64_t o = 0; o < num_out; ++o) alpha[o] = RowMeanAbs(w, per_out, o);
}

void QuantizeActivation(const ActivationSpec& spec, const float* x, float* y, int64_t n) {
  if (spec.bits == 1) {
#if BMXNET_SIMD
    if (UseVectors()) return simd::SignActivation(x, y, n);
#endif
    portable::SignActivation(x, y, n);
  } else if (spec.bits < 32) {
    for (int64_t i = 0; i < n; ++i) y[i] = QuantizeActivationValue(spec.bits, x[i]);
  } else if (x != y) {
    std::copy(x, x + n, y);
  }
}

void ActivationGradient(const ActivationSpec& spec, const float* x, const float* dy, float* dx,
                        int64_t n) {
  if (spec.bits == 32) {
    if (dy != dx) std::copy(dy, dy + n, dx);
    return;
  }
  if (spec.bits == 1 && spec.method == Estimator::kSte) {
#if BMXNET_SIMD
    if (UseVectors()) return simd::SteGradient(spec.clip, x, dy, dx, n);
#endif
    portable::SteGradient(spec.clip, x, dy, dx, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    dx[i] = ActivationGradientValue(spec.bits, spec.method, spec.clip, spec.beta, x[i], dy[i]);
}

void QuantizeWeights(int bits, bool xnor_scaling, const float* w, float* wq, int64_t num_out,
                     int64_t per_out) {
  const int64_t n = num_out * per_out;
  // Scales come from the float weights, so compute them before wq may overwrite w.
  std::vector<float> alpha;
  if (xnor_scaling) alpha = RowScales(w, num_out, per_out);
  if (bits == 1) {
    portable::SignActivation(w, wq, n);
  } else if (bits < 32) {
    const float levels = Levels(bits);
    const float max_tanh = MaxAbsTanh(w, n);
    for (int64_t i = 0; i < n; ++i) wq[i] = DoReFaWeight(w[i], levels, max_tanh);
  } else if (w != wq) {
    std::copy(w, w + n, wq);
  }
  if (xnor_scaling) {
    for (int64_t o = 0; o < num_out; ++o)
      for (int64_t i = 0; i < per_out; ++i) wq[o * per_out + i] *= alpha[o];
  }
}

void WeightGradient(int bits, bool xnor_scaling, const float* w, const float* dwq, float* dw,
                    int64_t num_out, int64_t per_out) {
  const int64_t n = num_out * per_out;
  std::vector<float> alpha;
  if (xnor_scaling) alpha = RowScales(w, num_out, per_out);
  // DoReFa: d/dw of tanh(w) / (2 max|tanh|) scaled by 2, the max held constant.
  const float max_tanh = (bits > 1 && bits < 32) ? MaxAbsTanh(w, n) : 0.0f;
  for (int64_t o = 0; o < num_out; ++o) {
    const float scale = xnor_scaling ? alpha[o] : 1.0f;
    for (int64_t i = 0; i < per_out; ++i) {
      const int64_t k = o * per_out + i;
      const float derivative = (bits > 1 && bits < 32) ? DoReFaDerivative(w[k], max_tanh) : 1.0f;
      dw[k] = dwq[k] * derivative * scale;
    }
  }
}

}  // namespace kernels
}  // namespace bmxnet
