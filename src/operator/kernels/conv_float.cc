#include "conv_float.h"

#include <algorithm>

#include "gemm.h"
#include "sizes.h"

namespace bmxnet {
namespace kernels {

int64_t ConvGeometry::OutHeight() const {
  return (in_height + 2 * pad_h - dilate_h * (kernel_h - 1) - 1) / stride_h + 1;
}

int64_t ConvGeometry::OutWidth() const {
  return (in_width + 2 * pad_w - dilate_w * (kernel_w - 1) - 1) / stride_w + 1;
}

// The sizes saturate (sizes.h): a layer too large for memory is refused where its scratch
// is allocated.
int64_t ConvGeometry::PatchSize() const { return SaturatingProduct({in_channels / groups, kernel_h, kernel_w}); }

int64_t ConvGeometry::ImagesPerGemm() const {
  constexpr int64_t kColumnFloats = int64_t(4) << 20;
  const int64_t per_image = std::max<int64_t>(1, SaturatingProduct({PatchSize(), OutHeight(), OutWidth()}));
  return std::max<int64_t>(1, std::min(batch, kColumnFloats / per_image));
}

// column matrix, its gradient, and the GEMM output / gathered output gradient
int64_t ConvGeometry::ScratchSize() const {
  const int64_t columns = SaturatingProduct({ImagesPerGemm(), OutHeight(), OutWidth()});
  return SaturatingMultiply(SaturatingAdd(SaturatingMultiply(2, PatchSize()), out_channels / groups), columns);
}

namespace {

// Column-matrix view of `images` consecutive images of one group: row (c, i, j), column
// (image, oh, ow); `ld` is the row length (images * spatial).
struct Columns {
  const ConvGeometry& g;
  int64_t images, spatial, ld;

  Columns(const ConvGeometry& geometry, int64_t count)
      : g(geometry), images(count), spatial(geometry.OutHeight() * geometry.OutWidth()),
        ld(count * spatial) {}

  // Visits (row pointer offset, input offset or -1 for padding) of every column entry of
  // input channel c of image b.
  template <typename Visit>
  void ForEach(int64_t b, int64_t c, Visit visit) const {
    const int64_t oh_count = g.OutHeight(), ow_count = g.OutWidth();
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t row = ((c * g.kernel_h + i) * g.kernel_w + j) * ld + b * spatial;
        for (int64_t oh = 0; oh < oh_count; ++oh) {
          const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilate_h;
          const bool row_inside = h >= 0 && h < g.in_height;
          for (int64_t ow = 0; ow < ow_count; ++ow) {
            const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilate_w;
            const bool inside = row_inside && w >= 0 && w < g.in_width;
            visit(row + oh * ow_count + ow, inside ? (c * g.in_height + h) * g.in_width + w : -1);
          }
        }
      }
    }
  }
};

int64_t GroupImageSize(const ConvGeometry& g) {
  return g.in_channels / g.groups * g.in_height * g.in_width;
}

int64_t ImageSize(const ConvGeometry& g) { return g.in_channels * g.in_height * g.in_width; }

// col = patches of images [first, first + count) of one group; padding reads pad_value.
void Im2Col(const ConvGeometry& g, const float* x, int64_t first, int64_t count, int64_t group,
            float* col, int threads) {
  const Columns columns(g, count);
  const int64_t channels = g.in_channels / g.groups;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t b = 0; b < count; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* image = x + (first + b) * ImageSize(g) + group * GroupImageSize(g);
      columns.ForEach(b, c, [&](int64_t at, int64_t from) {
        col[at] = from >= 0 ? image[from] : g.pad_value;
      });
    }
  }
}

// dx += col, back onto the positions the patches were read from (padding takes nothing).
void Col2ImAdd(const ConvGeometry& g, const float* col, int64_t first, int64_t count,
               int64_t group, float* dx, int threads) {
  const Columns columns(g, count);
  const int64_t channels = g.in_channels / g.groups;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t b = 0; b < count; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      float* image = dx + (first + b) * ImageSize(g) + group * GroupImageSize(g);
      columns.ForEach(b, c, [&](int64_t at, int64_t to) {
        if (to >= 0) image[to] += col[at];
      });
    }
  }
}

// Moves between NCHW tensors and the [filters of group, image * spatial] GEMM layout.
void GatherOutput(const ConvGeometry& g, const float* y, int64_t first, int64_t count,
                  int64_t group, float* matrix) {
  const int64_t filters = g.out_channels / g.groups, spatial = g.OutHeight() * g.OutWidth();
  for (int64_t o = 0; o < filters; ++o)
    for (int64_t b = 0; b < count; ++b)
      std::copy_n(y + ((first + b) * g.out_channels + group * filters + o) * spatial, spatial,
                  matrix + (o * count + b) * spatial);
}

void ScatterOutput(const ConvGeometry& g, const float* matrix, int64_t first, int64_t count,
                   int64_t group, float* y) {
  const int64_t filters = g.out_channels / g.groups, spatial = g.OutHeight() * g.OutWidth();
  for (int64_t o = 0; o < filters; ++o)
    for (int64_t b = 0; b < count; ++b)
      std::copy_n(matrix + (o * count + b) * spatial, spatial,
                  y + ((first + b) * g.out_channels + group * filters + o) * spatial);
}

}  // namespace

void ConvForward(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                 float* y, float* scratch, int threads) {
  const int64_t spatial = g.OutHeight() * g.OutWidth();
  const int64_t filters = g.out_channels / g.groups, patch = g.PatchSize();
  const int64_t chunk = g.ImagesPerGemm();
  float* col = scratch;
  float* product = scratch + 2 * patch * chunk * spatial;
  for (int64_t first = 0; first < g.batch; first += chunk) {
    const int64_t count = std::min(chunk, g.batch - first);
    for (int64_t group = 0; group < g.groups; ++group) {
      Im2Col(g, x, first, count, group, col, threads);
      Sgemm(false, false, filters, count * spatial, patch, 1.0f, w + group * filters * patch,
            patch, col, count * spatial, 0.0f, product, count * spatial, threads);
      ScatterOutput(g, product, first, count, group, y);
    }
  }
  if (bias != nullptr) {
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        float* out = y + (n * g.out_channels + o) * spatial;
        for (int64_t s = 0; s < spatial; ++s) out[s] += bias[o];
      }
  }
}

void ConvBackward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* dbias, float* scratch, int threads) {
  const int64_t spatial = g.OutHeight() * g.OutWidth();
  const int64_t filters = g.out_channels / g.groups, patch = g.PatchSize();
  const int64_t chunk = g.ImagesPerGemm();
  float* col = scratch;
  float* dcol = scratch + patch * chunk * spatial;
  float* grad_out = scratch + 2 * patch * chunk * spatial;
  if (dx != nullptr) std::fill(dx, dx + g.batch * ImageSize(g), 0.0f);
  if (dw != nullptr) std::fill(dw, dw + g.out_channels * patch, 0.0f);
  for (int64_t first = 0; first < g.batch; first += chunk) {
    const int64_t count = std::min(chunk, g.batch - first), width = count * spatial;
    for (int64_t group = 0; group < g.groups; ++group) {
      GatherOutput(g, dy, first, count, group, grad_out);
      if (dw != nullptr) {
        Im2Col(g, x, first, count, group, col, threads);
        Sgemm(false, true, filters, patch, width, 1.0f, grad_out, width, col, width, 1.0f,
              dw + group * filters * patch, patch, threads);
      }
      if (dx != nullptr) {
        Sgemm(true, false, patch, width, filters, 1.0f, w + group * filters * patch, patch,
              grad_out, width, 0.0f, dcol, width, threads);
        Col2ImAdd(g, dcol, first, count, group, dx, threads);
      }
    }
  }
  if (dbias != nullptr) {
    std::fill(dbias, dbias + g.out_channels, 0.0f);
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        const float* grad = dy + (n * g.out_channels + o) * spatial;
        double sum = 0.0;
        for (int64_t s = 0; s < spatial; ++s) sum += grad[s];
        dbias[o] += static_cast<float>(sum);
      }
  }
}

void DenseForward(int64_t batch, int64_t in_features, int64_t out_features, const float* x,
                  const float* w, const float* bias, float* y, int threads) {
  Sgemm(false, true, batch, out_features, in_features, 1.0f, x, in_features, w, in_features, 0.0f,
        y, out_features, threads);
  if (bias != nullptr)
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t o = 0; o < out_features; ++o) y[n * out_features + o] += bias[o];
}

void DenseBackward(int64_t batch, int64_t in_features, int64_t out_features, const float* x,
                   const float* w, const float* dy, float* dx, float* dw, float* dbias,
                   int threads) {
  if (dx != nullptr)
    Sgemm(false, false, batch, in_features, out_features, 1.0f, dy, out_features, w, in_features,
          0.0f, dx, in_features, threads);
  if (dw != nullptr)
    Sgemm(true, false, out_features, in_features, batch, 1.0f, dy, out_features, x, in_features,
          0.0f, dw, in_features, threads);
  if (dbias != nullptr) {
    for (int64_t o = 0; o < out_features; ++o) {
      double sum = 0.0;
      for (int64_t n = 0; n < batch; ++n) sum += dy[n * out_features + o];
      dbias[o] = static_cast<float>(sum);
    }
  }
}

}  // namespace kernels
}  // namespace bmxnet
