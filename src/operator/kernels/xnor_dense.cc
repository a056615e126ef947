// The binary fully connected layer: one xor-popcount per (row, output), finished like a
// convolution's values (tile_output.h).
#include "xnor_conv.h"

#include "bitpack.h"
#include "thread_pool.h"
#include "host_device.h"

namespace bmxnet {
namespace kernels {

void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads, Isa isa) {
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const int64_t words = WordsFor(features);
  const bool small = batch * out_features * features < (int64_t(1) << 20);
  ParallelFor(batch * out_features, small ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = i / out_features, o = i % out_features;
      const int64_t mismatches = kernels.xor_popcount(x + n * words, w + o * words, words);
      y[i] = FinishValue(static_cast<int32_t>(features - 2 * mismatches), scale, bias, nullptr, o, i);
    }
  });
}

}  // namespace kernels
}  // namespace bmxnet
