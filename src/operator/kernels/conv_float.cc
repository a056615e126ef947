#include "conv_float.h"

#include <algorithm>

#include "gemm.h"

namespace bmxnet {
namespace kernels {

int64_t ConvGeometry::OutHeight() const {
  return (in_height + 2 * pad_h - dilate_h * (kernel_h - 1) - 1) / stride_h + 1;
}

int64_t ConvGeometry::OutWidth() const {
  return (in_width + 2 * pad_w - dilate_w * (kernel_w - 1) - 1) / stride_w + 1;
}

int64_t ConvGeometry::PatchSize() const { return in_channels / groups * kernel_h * kernel_w; }

int64_t ConvGeometry::ScratchSize() const { return 2 * PatchSize() * OutHeight() * OutWidth(); }

namespace {

// A 1x1 kernel without stride or padding reads the input as it is: no im2col needed.
bool IsPointwise(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
         g.pad_h == 0 && g.pad_w == 0;
}

// col[(c, i, j), (oh, ow)] = x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] or the pad value
void Im2Col(const ConvGeometry& g, int64_t channels, const float* x, float* col, int threads) {
  const int64_t oh_count = g.OutHeight(), ow_count = g.OutWidth();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        float* row = col + ((c * g.kernel_h + i) * g.kernel_w + j) * oh_count * ow_count;
        for (int64_t oh = 0; oh < oh_count; ++oh) {
          const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilate_h;
          float* out = row + oh * ow_count;
          if (h < 0 || h >= g.in_height) {
            std::fill(out, out + ow_count, g.pad_value);
            continue;
          }
          const float* in = x + (c * g.in_height + h) * g.in_width;
          for (int64_t ow = 0; ow < ow_count; ++ow) {
            const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilate_w;
            out[ow] = (w >= 0 && w < g.in_width) ? in[w] : g.pad_value;
          }
        }
      }
    }
  }
}

// Adds col back onto the image positions it was read from; padded positions are dropped.
void Col2ImAdd(const ConvGeometry& g, int64_t channels, const float* col, float* x,
               int threads) {
  const int64_t oh_count = g.OutHeight(), ow_count = g.OutWidth();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const float* row = col + ((c * g.kernel_h + i) * g.kernel_w + j) * oh_count * ow_count;
        for (int64_t oh = 0; oh < oh_count; ++oh) {
          const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilate_h;
          if (h < 0 || h >= g.in_height) continue;
          float* out = x + (c * g.in_height + h) * g.in_width;
          for (int64_t ow = 0; ow < ow_count; ++ow) {
            const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilate_w;
            if (w >= 0 && w < g.in_width) out[w] += row[oh * ow_count + ow];
          }
        }
      }
    }
  }
}

}  // namespace

void ConvForward(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                 float* y, float* scratch, int threads) {
  const int64_t spatial = g.OutHeight() * g.OutWidth();
  const int64_t channels_per_group = g.in_channels / g.groups;
  const int64_t filters_per_group = g.out_channels / g.groups;
  const int64_t patch = g.PatchSize();
  const int64_t image_size = g.in_channels * g.in_height * g.in_width;
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t group = 0; group < g.groups; ++group) {
      const float* image = x + n * image_size + group * channels_per_group * g.in_height * g.in_width;
      const float* col = image;
      if (!IsPointwise(g)) {
        Im2Col(g, channels_per_group, image, scratch, threads);
        col = scratch;
      }
      float* out = y + (n * g.out_channels + group * filters_per_group) * spatial;
      Sgemm(false, false, filters_per_group, spatial, patch, 1.0f, w + group * filters_per_group * patch,
            patch, col, spatial, 0.0f, out, spatial, threads);
    }
    if (bias != nullptr) {
      float* out = y + n * g.out_channels * spatial;
      for (int64_t o = 0; o < g.out_channels; ++o)
        for (int64_t s = 0; s < spatial; ++s) out[o * spatial + s] += bias[o];
    }
  }
}

void ConvBackward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* dbias, float* scratch, int threads) {
  const int64_t spatial = g.OutHeight() * g.OutWidth();
  const int64_t channels_per_group = g.in_channels / g.groups;
  const int64_t filters_per_group = g.out_channels / g.groups;
  const int64_t patch = g.PatchSize();
  const int64_t image_size = g.in_channels * g.in_height * g.in_width;
  const int64_t group_image_size = channels_per_group * g.in_height * g.in_width;
  float* col = scratch;
  float* dcol = scratch + patch * spatial;
  if (dx != nullptr) std::fill(dx, dx + g.batch * image_size, 0.0f);
  if (dw != nullptr) std::fill(dw, dw + g.out_channels * patch, 0.0f);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t group = 0; group < g.groups; ++group) {
      const float* grad_out = dy + (n * g.out_channels + group * filters_per_group) * spatial;
      const float* filters = w + group * filters_per_group * patch;
      if (dw != nullptr) {
        const float* image = x + n * image_size + group * group_image_size;
        const float* patches = image;
        if (!IsPointwise(g)) {
          Im2Col(g, channels_per_group, image, col, threads);
          patches = col;
        }
        Sgemm(false, true, filters_per_group, patch, spatial, 1.0f, grad_out, spatial, patches,
              spatial, 1.0f, dw + group * filters_per_group * patch, patch, threads);
      }
      if (dx != nullptr) {
        float* grad_image = dx + n * image_size + group * group_image_size;
        if (IsPointwise(g)) {  // the image is its own column matrix
          Sgemm(true, false, patch, spatial, filters_per_group, 1.0f, filters, patch, grad_out,
                spatial, 0.0f, grad_image, spatial, threads);
        } else {
          Sgemm(true, false, patch, spatial, filters_per_group, 1.0f, filters, patch, grad_out,
                spatial, 0.0f, dcol, spatial, threads);
          Col2ImAdd(g, channels_per_group, dcol, grad_image, threads);
        }
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
