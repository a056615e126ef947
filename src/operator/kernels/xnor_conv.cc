// Binary convolution as a blocked popcount GEMM without a float im2col: for a tile of 16
// output pixels the receptive fields' packed words are gathered into a small panel
// (one row of 16 words per (tap, word)), and the instruction-set kernel counts the
// mismatching bits of every filter against it. OpenMP runs over (image, group, tile,
// filter chunk).
#include "xnor_conv.h"

#include <algorithm>
#include <vector>

#include "binary_kernels.h"
#include "bitpack.h"

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
  uint64_t* bits = buffers->bits.data();
  uint64_t* valid = buffers->valid.data();
  bool touches_zero_padding = false;
  bool clear[kTilePixels];  // valid words written only once the tile needs them
  for (int p = 0; p < kTilePixels; ++p) {
    buffers->counted[p] = full;
    clear[p] = true;
    const int64_t q = tile * kTilePixels + p;
    if (q >= plan.spatial) {
      for (int64_t k = 0; k < plan.depth; ++k) bits[k * kTilePixels + p] = 0;
      continue;
    }
    const int64_t h0 = (q / plan.out_w) * g.stride_h - g.pad_h;
    const int64_t w0 = (q % plan.out_w) * g.stride_w - g.pad_w;
    uint64_t* column = bits + p;
    uint64_t* valid_column = valid + p;
    if (h0 >= 0 && w0 >= 0 && h0 + reach_h < g.in_height && w0 + reach_w < g.in_width) {
      const uint64_t* corner = image + (h0 * g.in_width + w0) * pixel_stride;
      for (int64_t t = 0; t < plan.taps; ++t)
        for (int64_t c = 0; c < plan.words; ++c, column += kTilePixels) *column = corner[plan.tap_offset[t] + c];
      continue;
    }
    clear[p] = false;
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
    touches_zero_padding |= !plan.minus_one_padding;
  }
  if (touches_zero_padding)
    for (int p = 0; p < kTilePixels; ++p)
      if (clear[p])
        for (int64_t k = 0; k < plan.depth; ++k) valid[k * kTilePixels + p] = ~uint64_t(0);
  const int pixels = static_cast<int>(std::min<int64_t>(kTilePixels, plan.spatial - tile * kTilePixels));
  return {bits, touches_zero_padding ? valid : nullptr, buffers->counted, pixels};
}

}  // namespace

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, float* y, int threads, Isa isa) {
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const ConvPlan plan(g);
  std::vector<uint64_t> pad_word(plan.words);
  for (int64_t c = 0; c < plan.words; ++c) pad_word[c] = plan.minus_one_padding ? TailMask(plan.per_group, c) : 0;
  const int64_t tasks = g.batch * g.groups * plan.tiles * plan.chunks;
#pragma omp parallel num_threads(threads)
  {
    TileBuffers buffers(plan);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t chunk = task % plan.chunks, tile = task / plan.chunks % plan.tiles;
      const int64_t group = task / (plan.chunks * plan.tiles) % g.groups;
      const int64_t n = task / (plan.chunks * plan.tiles * g.groups);
      const TilePanel panel = GatherPanel(plan, x, pad_word.data(), n, group, tile, &buffers);
      const int64_t first = group * plan.filters + chunk * kFilterChunk;
      const int64_t count = std::min(kFilterChunk, plan.filters - chunk * kFilterChunk);
      const TileOutput output = {scale ? scale + first : nullptr, bias ? bias + first : nullptr,
                                 y + (n * g.out_channels + first) * plan.spatial + tile * kTilePixels,
                                 plan.spatial};
      kernels.conv_tile(panel, w + first * plan.depth, plan.depth, count, output);
    }
  }
}

void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads, Isa isa) {
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const int64_t words = WordsFor(features);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out_features; ++o) {
      float value = static_cast<float>(features - 2 * kernels.xor_popcount(x + n * words, w + o * words, words));
      if (scale != nullptr) value *= scale[o];
      if (bias != nullptr) value += bias[o];
      y[n * out_features + o] = value;
    }
  }
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
