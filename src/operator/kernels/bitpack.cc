#include "bitpack.h"

#include <algorithm>

#include "binary_kernels.h"
#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
void PackConvWeights(const float* w, int64_t filters, int64_t channels_per_group, int64_t kh,
                     int64_t kw, uint64_t* packed) {
  const int64_t words = WordsFor(channels_per_group), taps = kh * kw;
  std::fill(packed, packed + filters * taps * words, uint64_t(0));
  for (int64_t o = 0; o < filters; ++o)
    for (int64_t c = 0; c < channels_per_group; ++c)
      for (int64_t t = 0; t < taps; ++t)
        packed[(o * taps + t) * words + c / 64] |=
            NegativeBit(w[(o * channels_per_group + c) * taps + t]) << (c % 64);
}

void UnpackConvWeights(const uint64_t* packed, int64_t filters, int64_t channels_per_group,
                       int64_t kh, int64_t kw, float* w) {
  const int64_t words = WordsFor(channels_per_group), taps = kh * kw;
  for (int64_t o = 0; o < filters; ++o)
    for (int64_t c = 0; c < channels_per_group; ++c)
      for (int64_t t = 0; t < taps; ++t) {
        const uint64_t bit = packed[(o * taps + t) * words + c / 64] >> (c % 64) & 1;
        w[(o * channels_per_group + c) * taps + t] = bit ? -1.0f : 1.0f;
      }
}

void PackActivationsNCHW(const float* x, int64_t batch, int64_t channels, int64_t height,
                         int64_t width, int64_t groups, uint64_t* packed, int threads, Isa isa,
                         const ChannelThresholds& thresholds) {
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const int64_t per_group = channels / groups, words = WordsFor(per_group);
  const int64_t spatial = height * width, pixel_stride = groups * words;
  const int64_t block = 1024, blocks = (spatial + block - 1) / block;  // pixels per task
  // One task per (image, group, word, pixel block): it reads up to 64 channel planes and
  // owns its output words, so no two threads write the same word.
  ParallelFor(batch * groups * words * blocks, threads, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task % blocks, word = task / blocks % words;
      const int64_t g = task / (blocks * words) % groups, n = task / (blocks * words * groups);
      const int64_t first = word * 64, s0 = b * block;
      kernels.pack_planes(x + (n * channels + g * per_group + first) * spatial + s0,
                          std::min<int64_t>(64, per_group - first), spatial, std::min(block, spatial - s0),
                          thresholds.From(g * per_group + first), packed + (n * spatial + s0) * pixel_stride + g * words + word, pixel_stride);
    }
  });
}

void PackRows(const float* x, int64_t rows, int64_t length, uint64_t* packed, int threads) {
  const int64_t words = WordsFor(length);
  ParallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t word = 0; word < words; ++word) {
        uint64_t bits = 0;
        const int64_t first = word * 64, last = std::min(length, first + 64);
        for (int64_t k = first; k < last; ++k) bits |= NegativeBit(x[r * length + k]) << (k - first);
        packed[r * words + word] = bits;
      }
    }
  });
}

}  // namespace kernels
}  // namespace bmxnet
