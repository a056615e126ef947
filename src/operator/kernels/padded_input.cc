#include "padded_input.h"

#include <algorithm>
#include <vector>

#include "bitpack.h"
#include "sizes.h"
#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

uint64_t BorderWord(const ConvGeometry& g, int64_t c) {
  return g.pad_value != 0.0f ? TailMask(g.in_channels / g.groups, c) : 0;
}

// The words of channels first .. first + count - 1 (one word's worth) of image n for
// `pixels` pixels from `offset` on in each plane: one pack_planes call when they lie in one
// piece, else one per piece, ORed together at their bit offsets.
void PackWords(const BinaryKernels& kernels, const ChannelPieces& x, int64_t n, int64_t first, int64_t count,
               int64_t offset, int64_t pixels, const ChannelThresholds& thresholds, uint64_t* out) {
  int64_t run = std::min(count, x.RunFrom(first));
  if (run == count) {
    kernels.pack_planes(x.Plane(n, first) + offset, count, x.spatial, pixels, thresholds.From(first), out, 1);
    return;
  }
  thread_local std::vector<uint64_t> piece_bits;
  piece_bits.resize(pixels);
  std::fill_n(out, pixels, uint64_t(0));
  for (int64_t done = 0; done < count; done += run) {
    run = std::min(count - done, x.RunFrom(first + done));
    kernels.pack_planes(x.Plane(n, first + done) + offset, run, x.spatial, pixels, thresholds.From(first + done),
                        piece_bits.data(), 1);
    for (int64_t i = 0; i < pixels; ++i) out[i] |= piece_bits[i] << done;
  }
}

}  // namespace

// The border is pad_h rows / pad_w columns wide, wider at the bottom and right where the
// last receptive field reaches further (a kernel larger than the padded input).
PaddedInput::PaddedInput(const ConvGeometry& g)
    : height(std::max(g.in_height + 2 * g.pad_h, (g.OutHeight() - 1) * g.stride_h + (g.kernel_h - 1) * g.dilate_h + 1)),
      width(std::max(g.in_width + 2 * g.pad_w, (g.OutWidth() - 1) * g.stride_w + (g.kernel_w - 1) * g.dilate_w + 1)),
      groups(g.groups),
      words(WordsFor(g.in_channels / g.groups)),
      plane(SaturatingMultiply(height, width)),
      image(SaturatingProduct({g.groups, words, plane})) {}

void PackPaddedInput(const ConvGeometry& g, const ChannelPieces& x, const ChannelThresholds& thresholds,
                     uint64_t* out, int threads, Isa isa) {
  const PaddedInput layout(g);
  const BinaryKernels& kernels = BinaryKernelsFor(isa);
  const int64_t per_group = g.in_channels / g.groups;
  const int64_t planes = layout.groups * layout.words;
  // Without a left or right border the image rows of a plane follow each other, and one
  // call packs a band of them (short rows would leave most of each vector empty).
  const bool no_side_border = layout.width == g.in_width;
  const int64_t band = no_side_border ? std::max<int64_t>(1, 256 / g.in_width) : 1;
  const int64_t bands = (layout.height + band - 1) / band;
  // One task per (image, band of padded rows, plane): it writes those rows of the plane,
  // border included, and reads up to 64 channel rows.
  ParallelFor(g.batch * bands * planes, threads, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task % planes, n = task / (planes * bands);
      const int64_t group = plane / layout.words, c = plane % layout.words;
      const int64_t first_row = task / planes % bands * band;
      const int64_t last_row = std::min(layout.height, first_row + band);
      const uint64_t border = BorderWord(g, c);
      const int64_t channel = group * per_group + c * 64;
      for (int64_t h = first_row; h < last_row;) {
        uint64_t* row = out + layout.Offset(n, h, group, c, 0);
        const int64_t image_row = h - g.pad_h;
        if (image_row < 0 || image_row >= g.in_height) {
          std::fill_n(row, layout.width, border);
          ++h;
          continue;
        }
        // image rows h .. h + rows - 1, one call
        const int64_t rows = no_side_border ? std::min(last_row - h, g.in_height - image_row) : 1;
        std::fill_n(row, g.pad_w, border);
        std::fill(row + g.pad_w + g.in_width, row + layout.width, border);
        PackWords(kernels, x, n, channel, std::min<int64_t>(64, per_group - c * 64), image_row * g.in_width,
                  rows * g.in_width, thresholds, row + g.pad_w);
        h += rows;
      }
    }
  });
  std::fill_n(out + g.batch * layout.image, kTilePixels, uint64_t(0));
}

}  // namespace kernels
}  // namespace bmxnet
