// PoolForward and PoolBackward (pooling.h): windows wholly inside the image go through the
// vector blocks (AVX2 or NEON), 8 outputs of 1 or 4 rows at a time, the rest one at a time through
// PoolValue; a window as large as the plane chains planes instead. Channels-last tensors
// go a window at a time over all its channels, whose values lie side by side (in vectors of
// channels on the vector builds).
#include "pooling.h"

#include <algorithm>
#include <vector>

#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

constexpr int kChunk = 8;  // outputs of a row in one vector block; planes of one global pooling chain

// Outputs [first, last) along an axis whose windows lie wholly inside the image.
struct InnerRange {
  int64_t first, last;

  InnerRange(int64_t outputs, int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
    first = std::min(outputs, (pad + stride - 1) / stride);  // o * stride - pad >= 0
    const int64_t room = size + pad - kernel;                  // o * stride - pad + kernel <= size
    last = room < 0 ? first : std::max(first, std::min(outputs, room / stride + 1));
  }
};

#if BMXNET_SIMD
// One block of output rows: the inner windows 8 at a time through the vector kernel, the
// others through PoolValue.
void PoolRows(const PoolGeometry& g, const InnerRange& columns, const PoolBlockRows& rows, int64_t oh,
              const float* plane, float* y) {
  for (int r = 0; r < rows.rows; ++r) {
    const int64_t row = (oh + r) * g.out_width;
    for (int64_t ow = 0; ow < columns.first; ++ow) y[row + ow] = PoolValue(g, plane, row + ow);
    for (int64_t ow = columns.last; ow < g.out_width; ++ow) y[row + ow] = PoolValue(g, plane, row + ow);
  }
  for (int64_t ow = columns.first; ow < columns.last; ow += kChunk)
    simd::PoolBlock(g, rows, plane, ow, static_cast<int>(std::min<int64_t>(kChunk, columns.last - ow)),
                    y + oh * g.out_width + ow);
}

void PoolPlaneVectors(const PoolGeometry& g, const InnerRange& inner_rows, const InnerRange& columns,
                      const float* plane, float* y) {
  for (int64_t oh = 0; oh < g.out_height;) {
    if (oh >= inner_rows.first && oh + kPoolBlockRows <= inner_rows.last) {
      PoolRows(g, columns, {kPoolBlockRows, oh * g.stride_h - g.pad_h, g.kernel_h, g.kernel_h}, oh, plane, y);
      oh += kPoolBlockRows;
      continue;
    }
    const PoolWindow window = WindowAt(oh, g.in_height, g.kernel_h, g.stride_h, g.pad_h, g.count_include_pad);
    PoolRows(g, columns, {1, window.first, window.end - window.first, window.count}, oh, plane, y);
    ++oh;
  }
}
#endif

void PoolPlane(const PoolGeometry& g, [[maybe_unused]] const InnerRange& inner_rows,
               [[maybe_unused]] const InnerRange& columns, [[maybe_unused]] bool vectors, const float* plane, float* y) {
#if BMXNET_SIMD
  if (vectors) return PoolPlaneVectors(g, inner_rows, columns, plane, y);
#endif
  for (int64_t i = 0; i < g.out_height * g.out_width; ++i) y[i] = PoolValue(g, plane, i);
}

// A window as large as the plane (global pooling): one value per plane, its sum a chain
// of dependent adds; kChunk planes at a time run as independent chains.
void PoolWholePlanes(const PoolGeometry& g, const float* x, float* y, int64_t planes) {
  const int64_t size = g.in_height * g.in_width;
  const float count = static_cast<float>(size);
  int64_t p = 0;
  for (; p + kChunk <= planes; p += kChunk) {
    float values[kChunk];
    for (int i = 0; i < kChunk; ++i) values[i] = g.max ? kPoolLowest : 0.0f;
    for (int64_t e = 0; e < size; ++e)
      for (int i = 0; i < kChunk; ++i) {
        const float v = x[(p + i) * size + e];
        values[i] = g.max ? (v > values[i] ? v : values[i]) : values[i] + v;
      }
    for (int i = 0; i < kChunk; ++i) y[p + i] = g.max ? values[i] : values[i] / count;
  }
  for (; p < planes; ++p) y[p] = PoolValue(g, x, p);
}

// Output row oh of one image of a channels-last pooling, every channel of each pixel.
void PoolRowChannelsLast(const PoolGeometry& g, const float* image, int64_t oh, float* row,
                         [[maybe_unused]] bool vectors) {
  const PoolWindow rows = WindowAt(oh, g.in_height, g.kernel_h, g.stride_h, g.pad_h, g.count_include_pad);
  for (int64_t ow = 0; ow < g.out_width; ++ow) {
    const PoolWindow columns = WindowAt(ow, g.in_width, g.kernel_w, g.stride_w, g.pad_w, g.count_include_pad);
    float* out = row + ow * g.channels;
#if BMXNET_SIMD
    if (vectors) {
      simd::PoolPixelChannels(g, image, rows, columns, out);
      continue;
    }
#endif
    PoolPixelChannels(g, image, rows, columns, 0, g.channels, out);
  }
}

void PoolForwardChannelsLast(const PoolGeometry& g, const float* x, float* y, int threads, bool vectors) {
  const int64_t images = g.planes / g.channels, rows = images * g.out_height;
  const int64_t in_image = g.in_height * g.in_width * g.channels, out_row = g.out_width * g.channels;
  const bool small = rows * out_row * g.kernel_h * g.kernel_w < (int64_t(1) << 16);
  ParallelFor(rows, small ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      PoolRowChannelsLast(g, x + r / g.out_height * in_image, r % g.out_height, y + r * out_row, vectors);
  });
}

}  // namespace

void PoolPixelChannels(const PoolGeometry& g, const float* image, const PoolWindow& rows, const PoolWindow& columns,
                       int64_t first, int64_t end, float* __restrict out) {
  const float count = static_cast<float>(rows.count * columns.count);
  for (int64_t c = first; c < end; ++c) out[c] = g.max ? kPoolLowest : 0.0f;
  for (int64_t h = rows.first; h < rows.end; ++h)
    for (int64_t w = columns.first; w < columns.end; ++w) {
      const float* __restrict tap = image + (h * g.in_width + w) * g.channels;
      for (int64_t c = first; c < end; ++c)
        out[c] = g.max ? (tap[c] > out[c] ? tap[c] : out[c]) : out[c] + (g.divide_each_tap ? tap[c] / count : tap[c]);
    }
  if (!g.max && !g.divide_each_tap)
    for (int64_t c = first; c < end; ++c) out[c] /= count;
}

void PoolForward(const PoolGeometry& g, const float* x, float* y, int threads, Isa isa) {
  if (g.channels_last) return PoolForwardChannelsLast(g, x, y, threads, BMXNET_SIMD && isa != Isa::kPortable);
  const int64_t in_plane = g.in_height * g.in_width, out_plane = g.out_height * g.out_width;
  // Maps this small take a few microseconds, about what waking a thread costs.
  const bool small = g.planes * out_plane * g.kernel_h * g.kernel_w < (int64_t(1) << 16);
  const bool whole_planes = out_plane == 1 && g.kernel_h == g.in_height && g.kernel_w == g.in_width &&
                            g.pad_h == 0 && g.pad_w == 0 && !g.divide_each_tap;
  const InnerRange inner_rows(g.out_height, g.in_height, g.kernel_h, g.stride_h, g.pad_h);
  const InnerRange columns(g.out_width, g.in_width, g.kernel_w, g.stride_w, g.pad_w);
  const bool vectors = BMXNET_SIMD && isa != Isa::kPortable && (g.stride_w == 1 || g.stride_w == 2) && !g.divide_each_tap;
  ParallelFor(g.planes, small ? 1 : threads, [&](int64_t begin, int64_t end) {
    if (whole_planes) return PoolWholePlanes(g, x + begin * in_plane, y + begin, end - begin);
    for (int64_t p = begin; p < end; ++p)
      PoolPlane(g, inner_rows, columns, vectors, x + p * in_plane, y + p * out_plane);
  });
}

void PoolBackward(const PoolGeometry& g, const float* x, const float* dy, float* dx, int threads) {
  const int64_t inputs = g.planes * g.in_height * g.in_width;
  ParallelFor(inputs, inputs < (int64_t(1) << 14) ? 1 : threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dx[i] = PoolGradValue(g, x, dy, i);
  });
}

}  // namespace kernels
}  // namespace bmxnet
