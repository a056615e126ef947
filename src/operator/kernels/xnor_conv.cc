#include <algorithm>
#include <vector>

#include "bitpack.h"
#include "xnor_conv.h"

#include "cpu_features.h"

namespace bmxnet {
namespace kernels {
namespace portable {
namespace {

// Built without -mpopcnt: the compiler's table-free bit-twiddling popcount.
inline int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t count = 0;
  for (int64_t k = 0; k < words; ++k) count += __builtin_popcountll(a[k] ^ b[k]);
  return count;
}

#include "xnor_conv_impl.h"

}  // namespace

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, float* y, int threads) {
  ConvForwardImpl(g, x, w, scale, bias, y, threads);
}

void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads) {
  DenseForwardImpl(batch, features, out_features, x, w, scale, bias, y, threads);
}

}  // namespace portable

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, float* y, int threads) {
  if (ActiveIsa() == Isa::kPortable)
    portable::BinaryConvForward(g, x, w, scale, bias, y, threads);
  else
    avx2::BinaryConvForward(g, x, w, scale, bias, y, threads);
}

void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads) {
  if (ActiveIsa() == Isa::kPortable)
    portable::BinaryDenseForward(batch, features, out_features, x, w, scale, bias, y, threads);
  else
    avx2::BinaryDenseForward(batch, features, out_features, x, w, scale, bias, y, threads);
}

}  // namespace kernels
}  // namespace bmxnet
