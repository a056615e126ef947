// Binary convolution as a blocked popcount GEMM without a float im2col: for a tile of 16
// output pixels the receptive fields' packed words are gathered into a small panel
// (one row of 16 words per (tap, word)), and the instruction-set kernel counts the
// mismatching bits of every filter against it. The pool's threads (thread_pool.h) split
// the (image, group, tile, filter chunk) tasks.
#include "xnor_conv.h"

#include <algorithm>
#include <vector>

#include "binary_kernels.h"
#include "bitpack.h"
#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

constexpr int64_t kFilterChunk = 64;  // filters per task: the counts tile stays in L1

struct ConvPlan {
  const ConvGeometry& g;
  int64_t per_group, words, filters, taps, depth, out_w, spatial, tiles, chunks;
  bool minus_one_padding;
  std::vector<int64_t> tap_offset;  // word offset of each tap from its pixel's top-left tap

  explicit ConvPlan(const ConvGeometry& geometry) : g(geometry) {
    per_group = g.in_channels / g.groups;
    words = WordsFor(per_group);
    filters = g.out_channels / g.groups;
    taps = g.kernel_h * g.kernel_w;
    depth = taps * words;
    out_w = g.OutWidth();
    spatial = g.OutHeight() * out_w;
    tiles = (spatial + kTilePixels - 1) / kTilePixels;
    chunks = (filters + kFilterChunk - 1) / kFilterChunk;
    minus_one_padding = g.pad_value != 0.0f;
    for (int64_t i = 0; i < g.kernel_h; ++i)
      for (int64_t j = 0; j < g.kernel_w; ++j)
        tap_offset.push_back((i * g.dilate_h * g.in_width + j * g.dilate_w) * g.groups * words);
  }
};

// One thread's buffers for a tile: the gathered receptive fields and, for tiles that
// touch zero padding, which of their words lie inside the image.
struct TileBuffers {
  std::vector<uint64_t> bits, valid;
  int32_t counted[kTilePixels];

  explicit TileBuffers(const ConvPlan& plan)
      : bits(plan.depth * kTilePixels), valid(plan.depth * kTilePixels) {}
};

// Word c of tap t for `count` pixels whose top-left taps are corner, corner + step, ...
void CopyTaps(const ConvPlan& plan, const uint64_t* corner, int64_t step, int count, uint64_t* bits) {
  for (int64_t t = 0; t < plan.taps; ++t)
    for (int64_t c = 0; c < plan.words; ++c, bits += kTilePixels) {
      const uint64_t* source = corner + plan.tap_offset[t] + c;
      if (step == 1) {
        std::copy_n(source, count, bits);
      } else {
        for (int p = 0; p < count; ++p) bits[p] = source[p * step];
      }
    }
}

// Fills bits[(t * words + c) * 16 + p] with word c of tap t of tile pixel p. A padded tap
// reads pad_word: zeros for zero padding, whose valid words are then zero too so that
// they count for nothing, or -1 bits for -1 padding. Pixels past the end of the image
// read zeros and are never stored. Returns the panel the kernels read.
TilePanel GatherPanel(const ConvPlan& plan, const uint64_t* x, const uint64_t* pad_word, int64_t n,
                      int64_t group, int64_t tile, TileBuffers* buffers) {
  const ConvGeometry& g = plan.g;
  const int64_t pixel_stride = g.groups * plan.words;
  const int64_t reach_h = (g.kernel_h - 1) * g.dilate_h, reach_w = (g.kernel_w - 1) * g.dilate_w;
  const uint64_t* image = x + (n * g.in_height * g.in_width) * pixel_stride + group * plan.words;
  const int32_t full = static_cast<int32_t>(plan.taps * plan.per_group);
  const int pixels = static_cast<int>(std::min<int64_t>(kTilePixels, plan.spatial - tile * kTilePixels));
  uint64_t* bits = buffers->bits.data();
  uint64_t* valid = buffers->valid.data();
  // Where each pixel's receptive field starts, or nullptr when it reaches the border.
  const uint64_t* corner[kTilePixels];
  int64_t oh = tile * kTilePixels / plan.out_w, ow = tile * kTilePixels % plan.out_w;
  int interior = 0;
  bool one_row = true;
  for (int p = 0; p < pixels; ++p, ++ow) {
    if (ow == plan.out_w) {
      ow = 0;
      ++oh;
      one_row = false;
    }
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    const bool inside = h0 >= 0 && w0 >= 0 && h0 + reach_h < g.in_height && w0 + reach_w < g.in_width;
    corner[p] = inside ? image + (h0 * g.in_width + w0) * pixel_stride : nullptr;
    interior += inside;
    buffers->counted[p] = full;
  }
  std::fill(buffers->counted + pixels, buffers->counted + kTilePixels, full);
  if (interior == kTilePixels && one_row) {  // the common case: one strided copy per word
    CopyTaps(plan, corner[0], g.stride_w * pixel_stride, kTilePixels, bits);
    return {bits, nullptr, buffers->counted, pixels};
  }
  const bool zero_padding = interior < pixels && !plan.minus_one_padding;
  for (int p = 0; p < kTilePixels; ++p) {
    uint64_t* column = bits + p;
    uint64_t* valid_column = valid + p;
    if (p >= pixels || corner[p] != nullptr) {
      if (p < pixels) {
        CopyTaps(plan, corner[p], 1, 1, column);
      } else {
        for (int64_t k = 0; k < plan.depth; ++k) column[k * kTilePixels] = 0;
      }
      if (zero_padding)
        for (int64_t k = 0; k < plan.depth; ++k) valid_column[k * kTilePixels] = ~uint64_t(0);
      continue;
    }
    const int64_t q = tile * kTilePixels + p;
    const int64_t h0 = (q / plan.out_w) * g.stride_h - g.pad_h;
    const int64_t w0 = (q % plan.out_w) * g.stride_w - g.pad_w;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t h = h0 + i * g.dilate_h;
      const bool row_inside = h >= 0 && h < g.in_height;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t w = w0 + j * g.dilate_w;
        const bool inside = row_inside && w >= 0 && w < g.in_width;
        const uint64_t* source = inside ? image + (h * g.in_width + w) * pixel_stride : pad_word;
        const uint64_t valid_word = inside || plan.minus_one_padding ? ~uint64_t(0) : 0;
        if (valid_word == 0) buffers->counted[p] -= static_cast<int32_t>(plan.per_group);
        for (int64_t c = 0; c < plan.words; ++c, column += kTilePixels, valid_column += kTilePixels) {
          *column = source[c];
          *valid_column = valid_word;
        }
      }
    }
  }
  return {bits, zero_padding ? valid : nullptr, buffers->counted, pixels};
}

std::vector<uint64_t> PadWord(const ConvPlan& plan) {
  std::vector<uint64_t> word(plan.words);
  for (int64_t c = 0; c < plan.words; ++c) word[c] = plan.minus_one_padding ? TailMask(plan.per_group, c) : 0;
  return word;
}

// A thread wakes up in microseconds but not in nothing; layers that one thread finishes
// in about that time run on the caller alone.
int TeamSize(const ConvPlan& plan, Isa isa, int threads) {
  const int64_t binary_macs = plan.g.batch * plan.g.out_channels * plan.spatial * plan.taps * plan.per_group;
  const int64_t serial_below = isa == Isa::kAvx512 ? (int64_t(4) << 20)
                               : isa == Isa::kAvx2 ? (int64_t(2) << 20) : (int64_t(1) << 19);
  return binary_macs < serial_below ? 1 : threads;
}

// Tasks are (image, group, tile, chunk of filters); each thread takes contiguous runs.
void Convolve(const ConvPlan& plan, Isa isa, const uint64_t* x, const uint64_t* w, const float* scale,
              const float* bias, const float* residual, float* y, int team) {
  const ConvGeometry& g = plan.g;
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const std::vector<uint64_t> pad_word = PadWord(plan);
  ParallelFor(g.batch * g.groups * plan.tiles * plan.chunks, team, [&](int64_t begin, int64_t end) {
    TileBuffers buffers(plan);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t chunk = task % plan.chunks, tile = task / plan.chunks % plan.tiles;
      const int64_t group = task / (plan.chunks * plan.tiles) % g.groups;
      const int64_t n = task / (plan.chunks * plan.tiles * g.groups);
      const TilePanel panel = GatherPanel(plan, x, pad_word.data(), n, group, tile, &buffers);
      const int64_t first = group * plan.filters + chunk * kFilterChunk;
      const int64_t count = std::min(kFilterChunk, plan.filters - chunk * kFilterChunk);
      const int64_t offset = (n * g.out_channels + first) * plan.spatial + tile * kTilePixels;
      const TileOutput output = {scale ? scale + first : nullptr, bias ? bias + first : nullptr,
                                 residual ? residual + offset : nullptr, y + offset, plan.spatial};
      kernels.conv_tile(panel, w + first * plan.depth, plan.depth, count, output);
    }
  });
}

}  // namespace

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, const float* residual, float* y,
                       int threads, Isa isa) {
  const ConvPlan plan(g);
  Convolve(plan, isa, x, w, scale, bias, residual, y, TeamSize(plan, isa, threads));
}

void PackAndConvolve(const ConvGeometry& g, const float* x, const ChannelThresholds& thresholds,
                     uint64_t* packed, const uint64_t* w,
                     const float* scale, const float* bias, const float* residual, float* y,
                     int threads, Isa isa) {
  const ConvPlan plan(g);
  const int team = TeamSize(plan, isa, threads);
  PackActivationsNCHW(x, g.batch, g.in_channels, g.in_height, g.in_width, g.groups, packed, team, isa,
                      thresholds);
  Convolve(plan, isa, packed, w, scale, bias, residual, y, team);
}

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

const BinaryKernels& BinaryKernelsFor(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return avx512::kBinaryKernels;
    case Isa::kAvx2: return avx2::kBinaryKernels;
    default: return portable::kBinaryKernels;
  }
}

}  // namespace kernels
}  // namespace bmxnet
