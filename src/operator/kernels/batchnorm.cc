#include "batchnorm.h"

#include <algorithm>
#include <vector>

#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

void PortablePlane(BatchNormFormula formula, bool relu, const float* x, int64_t n, const BatchNormChannel& k,
                   float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = BatchNormOutput(formula, relu, x[i], k);
}

// Pixels first .. end - 1, channels c_begin .. c_end - 1 of a channels-last image.
void PortablePixelsChannelsLast(BatchNormFormula formula, bool relu, const float* x, int64_t spatial,
                                int64_t channels, int64_t first, int64_t end, int64_t c_begin, int64_t c_end,
                                const BatchNormChannel* k, float* y) {
  for (int64_t c = c_begin; c < c_end; ++c)
    for (int64_t p = first; p < end; ++p)
      y[c * spatial + p] = BatchNormOutput(formula, relu, x[p * channels + c], k[c]);
}

// A channels-last task: 32 channels (two 64-byte lines of each pixel, read whole) of 128
// pixels (8 lines of each channel's plane, written whole), in blocks of 8 pixels for the
// vector build.
// Tasks of 8 pixels and all channels wrote 32 bytes to each of up to hundreds of planes,
// pages apart, which was far slower (docs/performance.md).
constexpr int64_t kBlockPixels = 8, kTaskChannels = 32, kTaskPixels = 128;

}  // namespace

void BatchNormForward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                      const float* beta, const float* mean, const float* variance, float eps, float* y,
                      int threads, Isa isa) {
  std::vector<BatchNormChannel> k(g.channels);
  for (int64_t c = 0; c < g.channels; ++c) k[c] = BatchNormChannelOf(formula, gamma, beta, mean, variance, eps, c);
  // a memory-bound pass: a second thread pays off from about 64 K values
  const int team = g.batch * g.channels * g.spatial < (int64_t(1) << 16) ? 1 : threads;
  [[maybe_unused]] const bool vectors = BMXNET_SIMD && isa != Isa::kPortable;
  if (!g.channels_last) {
#if BMXNET_SIMD
    const auto plane = vectors ? simd::BatchNormPlane : PortablePlane;
#else
    const auto plane = PortablePlane;
#endif
    ParallelFor(g.batch * g.channels, team, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        plane(formula, g.relu, x + p * g.spatial, g.spatial, k[p % g.channels], y + p * g.spatial);
    });
    return;
  }
  const int64_t channel_blocks = (g.channels + kTaskChannels - 1) / kTaskChannels,
                pixel_blocks = (g.spatial + kTaskPixels - 1) / kTaskPixels, image = g.channels * g.spatial;
  ParallelFor(g.batch * channel_blocks * pixel_blocks, team, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / (channel_blocks * pixel_blocks), channel_block = task / pixel_blocks % channel_blocks;
      const int64_t c_begin = channel_block * kTaskChannels, c_end = std::min(g.channels, c_begin + kTaskChannels);
      const int64_t p_begin = task % pixel_blocks * kTaskPixels, p_end = std::min(g.spatial, p_begin + kTaskPixels);
      const float* in = x + n * image;
      float* out = y + n * image;
      for (int64_t first = p_begin; first < p_end; first += kBlockPixels) {
        const int64_t last = std::min(p_end, first + kBlockPixels);
#if BMXNET_SIMD
        if (vectors && last - first == kBlockPixels)
          simd::BatchNormPixelsChannelsLast(formula, g.relu, in, g.spatial, g.channels, first, c_begin, c_end,
                                            k.data(), out);
        else
#endif
          PortablePixelsChannelsLast(formula, g.relu, in, g.spatial, g.channels, first, last, c_begin, c_end,
                                     k.data(), out);
      }
    }
  });
}

void BatchNormBackward(const BatchNormGeometry& g, BatchNormFormula formula, const float* x, const float* gamma,
                       const float* mean, const float* variance, float eps, const float* dy, const float* y,
                       float* dx, float* dgamma, float* dbeta, float* dmean, float* dvariance, int threads) {
  const int64_t n = g.batch * g.channels * g.spatial;
  ParallelFor(n, n < (int64_t(1) << 16) ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      dx[BatchNormInputIndex(g, i)] = BatchNormDataGradElement(g, formula, gamma, variance, eps, dy, y, i);
  });
  ParallelFor(g.channels, n < (int64_t(1) << 16) ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const BatchNormParamGrads grads = BatchNormParamGradChannel(g, x, gamma, mean, variance, eps, dy, y, c);
      dgamma[c] = grads.gamma;
      dbeta[c] = grads.beta;
      dmean[c] = grads.mean;
      dvariance[c] = grads.variance;
    }
  });
}

}  // namespace kernels
}  // namespace bmxnet
