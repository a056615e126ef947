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

// The taps of one tile pixel that fall on the border.
using PaddedTaps = std::vector<int32_t>;

// Fills panel[(t * words + c) * 16 + p] with word c of tap t of tile pixel p. A padded tap
// reads pad_word (all zeros for zero padding, corrected afterwards; -1 bits for -1
// padding); pixels past the end of the image read zeros and are never stored.
// Returns true when no tap of the tile touches the border.
bool GatherPanel(const ConvPlan& plan, const uint64_t* x, const uint64_t* pad_word, int64_t n,
                 int64_t group, int64_t tile, uint64_t* panel, PaddedTaps* padded) {
  const ConvGeometry& g = plan.g;
  const int64_t pixel_stride = g.groups * plan.words;
  const int64_t reach_h = (g.kernel_h - 1) * g.dilate_h, reach_w = (g.kernel_w - 1) * g.dilate_w;
  const uint64_t* image = x + (n * g.in_height * g.in_width) * pixel_stride + group * plan.words;
  bool interior_tile = true;
  for (int p = 0; p < kTilePixels; ++p) {
    padded[p].clear();
    const int64_t q = tile * kTilePixels + p;
    if (q >= plan.spatial) {
      for (int64_t k = 0; k < plan.depth; ++k) panel[k * kTilePixels + p] = 0;
      continue;
    }
    const int64_t h0 = (q / plan.out_w) * g.stride_h - g.pad_h;
    const int64_t w0 = (q % plan.out_w) * g.stride_w - g.pad_w;
    uint64_t* column = panel + p;
    if (h0 >= 0 && w0 >= 0 && h0 + reach_h < g.in_height && w0 + reach_w < g.in_width) {
      const uint64_t* corner = image + (h0 * g.in_width + w0) * pixel_stride;
      for (int64_t t = 0; t < plan.taps; ++t)
        for (int64_t c = 0; c < plan.words; ++c, column += kTilePixels) *column = corner[plan.tap_offset[t] + c];
      continue;
    }
    interior_tile = false;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t h = h0 + i * g.dilate_h;
      const bool row_inside = h >= 0 && h < g.in_height;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t w = w0 + j * g.dilate_w;
        const uint64_t* source = pad_word;
        if (row_inside && w >= 0 && w < g.in_width) {
          source = image + (h * g.in_width + w) * pixel_stride;
        } else {
          padded[p].push_back(static_cast<int32_t>(i * g.kernel_w + j));
        }
        for (int64_t c = 0; c < plan.words; ++c, column += kTilePixels) *column = source[c];
      }
    }
  }
  return interior_tile;
}

// Output values of one filter for the tile's pixels: bits counted minus twice the
// mismatches, then scale and bias (only when given, so the float operations are exactly
// those of the float-simulated layer).
template <bool kScale, bool kBias>
void StoreFilter(const ConvPlan& plan, const int32_t* counts, const PaddedTaps* padded,
                 bool interior_tile, const int32_t* tap_popcount, float scale, float bias,
                 int64_t pixels, float* out) {
  // int32 arithmetic (a layer has far fewer than 2^31 bits per output), so that the
  // conversion to float vectorizes even in the portable build
  const int32_t full = static_cast<int32_t>(plan.taps * plan.per_group);
  for (int64_t p = 0; p < pixels; ++p) {  // as if no tap were padded: vectorizes
    float value = static_cast<float>(full - 2 * counts[p]);
    if (kScale) value *= scale;
    if (kBias) value += bias;
    out[p] = value;
  }
  if (interior_tile || plan.minus_one_padding) return;
  for (int64_t p = 0; p < pixels; ++p) {  // redo the few pixels whose taps reach zero padding
    if (padded[p].empty()) continue;
    int32_t differing = counts[p];
    for (int32_t t : padded[p]) differing -= tap_popcount[t];
    const int32_t counted = static_cast<int32_t>((plan.taps - static_cast<int64_t>(padded[p].size())) * plan.per_group);
    float value = static_cast<float>(counted - 2 * differing);
    if (kScale) value *= scale;
    if (kBias) value += bias;
    out[p] = value;
  }
}

}  // namespace

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, float* y, int threads, Isa isa) {
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const ConvPlan plan(g);
  std::vector<uint64_t> pad_word(plan.words);
  for (int64_t c = 0; c < plan.words; ++c) pad_word[c] = plan.minus_one_padding ? TailMask(plan.per_group, c) : 0;
  // popcount of each filter tap: what a zero-padded tap wrongly counts as mismatches
  std::vector<int32_t> tap_popcount(g.out_channels * plan.taps);
  const std::vector<uint64_t> zeros(plan.words, 0);
  for (int64_t t = 0; t < g.out_channels * plan.taps; ++t)
    tap_popcount[t] = static_cast<int32_t>(kernels.xor_popcount(w + t * plan.words, zeros.data(), plan.words));

  auto* store = scale ? (bias ? StoreFilter<true, true> : StoreFilter<true, false>)
                      : (bias ? StoreFilter<false, true> : StoreFilter<false, false>);
  const int64_t tasks = g.batch * g.groups * plan.tiles * plan.chunks;
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint64_t> panel(plan.depth * kTilePixels);
    std::vector<int32_t> counts(kFilterChunk * kTilePixels);
    std::vector<PaddedTaps> padded(kTilePixels);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t chunk = task % plan.chunks, tile = task / plan.chunks % plan.tiles;
      const int64_t group = task / (plan.chunks * plan.tiles) % g.groups;
      const int64_t n = task / (plan.chunks * plan.tiles * g.groups);
      const bool interior = GatherPanel(plan, x, pad_word.data(), n, group, tile, panel.data(), padded.data());
      const int64_t first = group * plan.filters + chunk * kFilterChunk;
      const int64_t count = std::min(kFilterChunk, plan.filters - chunk * kFilterChunk);
      kernels.mismatch_tile(panel.data(), w + first * plan.depth, plan.depth, count, counts.data());
      const int64_t pixels = std::min<int64_t>(kTilePixels, plan.spatial - tile * kTilePixels);
      for (int64_t f = 0; f < count; ++f) {
        const int64_t o = first + f;
        float* out = y + (n * g.out_channels + o) * plan.spatial + tile * kTilePixels;
        store(plan, counts.data() + f * kTilePixels, padded.data(), interior,
              tap_popcount.data() + o * plan.taps, scale ? scale[o] : 1.0f, bias ? bias[o] : 0.0f,
              pixels, out);
      }
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
