// What the trainable and the packed QConvolution share: the geometry their parameters give,
// and the output shape.
#ifndef BMXNET_OPERATOR_CONVOLUTION_COMMON_H_
#define BMXNET_OPERATOR_CONVOLUTION_COMMON_H_

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/conv_float.h"
#include "op_common.h"

namespace bmxnet {

constexpr const char* kConvolutionOp = "QConvolution";

inline kernels::ConvGeometry Geometry(const ConvolutionParams& p, const std::vector<int64_t>& data) {
  kernels::ConvGeometry g;
  g.batch = data[0];
  g.in_channels = data[1];
  g.in_height = data[2];
  g.in_width = data[3];
  g.out_channels = p.num_filter;
  g.kernel_h = p.kernel[0];
  g.kernel_w = p.kernel[1];
  g.stride_h = p.stride[0];
  g.stride_w = p.stride[1];
  g.pad_h = p.pad[0];
  g.pad_w = p.pad[1];
  g.dilate_h = p.dilate[0];
  g.dilate_w = p.dilate[1];
  g.groups = p.num_group;
  g.pad_value = p.pad_value;
  return g;
}

// The output shape (kUnknown where not known) of the convolution of data of shape `data`
// (4-D, kUnknown where not known), which is checked against the groups and the kernel.
inline std::vector<int64_t> ConvolutionOutput(const ConvolutionParams& p, const std::vector<int64_t>& data) {
  const char* op = kConvolutionOp;
  FittingShape(op, "data", data);
  if (data[1] != kUnknown && data[1] % p.num_group != 0)
    throw ParamError(std::string(op) + ": input channels " + std::to_string(data[1]) +
                     " not divisible by num_group=" + std::to_string(p.num_group));
  const bool known = data[1] != kUnknown && data[2] != kUnknown && data[3] != kUnknown;
  const kernels::ConvGeometry g = Geometry(p, {std::max<int64_t>(data[0], 1), data[1], data[2], data[3]});
  if (known && (g.OutHeight() < 1 || g.OutWidth() < 1))
    throw ParamError(std::string(op) + ": kernel " + ShapeString(p.kernel) + " with dilate " +
                     ShapeString(p.dilate) + " does not fit the padded input " + ShapeString(data));
  return {data[0], p.num_filter, data[2] == kUnknown ? kUnknown : g.OutHeight(),
          data[3] == kUnknown ? kUnknown : g.OutWidth()};
}

// The input channels per group of data with `channels` channels (kUnknown when not known).
inline int64_t ChannelsPerGroup(const ConvolutionParams& p, int64_t channels) {
  return channels == kUnknown ? kUnknown : channels / p.num_group;
}

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_CONVOLUTION_COMMON_H_
