// Convolution and fully connected layers on already-quantized float tensors (NCHW),
// forward and backward, through im2col + GEMM. This is the float-simulated path that
// training uses; the packed xnor path must reproduce its forward results exactly.
#ifndef BMXNET_KERNELS_CONV_FLOAT_H_
#define BMXNET_KERNELS_CONV_FLOAT_H_

#include <cstdint>

namespace bmxnet {
namespace kernels {

struct ConvGeometry {
  int64_t batch = 1, in_channels = 1, in_height = 1, in_width = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilate_h = 1, dilate_w = 1;
  int64_t groups = 1;
  float pad_value = 0.0f;  // value of the padded border (0, or -1 for BMXNet-v2 style)

  int64_t OutHeight() const;
  int64_t OutWidth() const;
  // Rows of the im2col matrix of one group: (C / groups) * kh * kw.
  int64_t PatchSize() const;
  // Images whose patches go into one GEMM: small feature maps need several per call to
  // keep the matrix wide, while the column buffer stays near 16 MiB.
  int64_t ImagesPerGemm() const;
  // Floats of scratch the forward and backward passes need.
  int64_t ScratchSize() const;
};

void ConvForward(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                 float* y, float* scratch, int threads);

// Writes dx and dw (and dbias when not null); any of dx/dw may be null to skip it.
void ConvBackward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* dbias, float* scratch, int threads);

// y[n, o] = sum_k x[n, k] * w[o, k] + bias[o]
void DenseForward(int64_t batch, int64_t in_features, int64_t out_features, const float* x,
                  const float* w, const float* bias, float* y, int threads);
void DenseBackward(int64_t batch, int64_t in_features, int64_t out_features, const float* x,
                   const float* w, const float* dy, float* dx, float* dw, float* dbias,
                   int threads);

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_CONV_FLOAT_H_
