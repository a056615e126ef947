// Attribute parsing shared by all operators: one struct per operator, defaults and range
// checks in one place, errors as one line naming the parameter. Each graph node parses its
// attributes once, into its state (op_state.h).
#ifndef BMXNET_OPERATOR_OP_PARAMS_H_
#define BMXNET_OPERATOR_OP_PARAMS_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/quantize.h"

namespace bmxnet {

using Attributes = std::unordered_map<std::string, std::string>;

// The MXNet 1.9.1 wheel indexes tensors with 32-bit integers (it is built without
// INT64_TENSOR_SIZE): no tensor, so no dimension, holds more elements than this.
constexpr int64_t kMaxElements = 0x7fffffff;
// Upper bound of size-like attributes (kernel, stride, dilate, pad, channel counts): with
// it, shape arithmetic on them cannot overflow 64 bits.
constexpr int64_t kMaxDimension = kMaxElements;

// Thrown by the parsers; the op glue turns it into MX_ERROR_MSG + MX_FAIL.
class ParamError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct QActivationParams {
  kernels::ActivationSpec spec;
  bool backward_only = false;
};

enum class Scaling { kNone, kXnor };

// What both kinds of QConvolution node take: the trainable, float-simulated layer and the
// packed one model-converter writes (binarized_weights_only=True).
struct ConvolutionParams {
  std::vector<int64_t> kernel, stride{1, 1}, dilate{1, 1}, pad{0, 0};
  int64_t num_filter = 0, num_group = 1;
  bool no_bias = true;
  Scaling scaling = Scaling::kNone;
  float pad_value = 0.0f;
};

struct QConvolutionParams : ConvolutionParams {
  int act_bit = 1, weight_bit = 1;
};

// The packed layer: the weight is the converter's int64 tensor [O, KH, KW, words].
struct PackedConvolutionParams : ConvolutionParams {
  bool residual = false;  // one more input, added to the output
  // the residual has residual_offset more channels in front, which are skipped (MeliusNet's
  // improvement blocks add to the last channels of their input)
  int64_t residual_offset = 0;
  bool data_threshold = false;  // input (2, C) of per-channel sign directions and thresholds
  // the data is input 0 and data_pieces - 1 more inputs at the end, joined along the
  // channels (for a ChannelConcat that nothing else reads)
  int64_t data_pieces = 1;
  // input channels per group the packed weight holds (0 = not given): the packed shape
  // alone cannot tell 32 from 64 channels (one word each)
  int64_t packed_channels = 0;
};

struct QFullyConnectedParams {
  int64_t num_hidden = 0;
  bool no_bias = true, flatten = true;
  int act_bit = 1, weight_bit = 1;
  Scaling scaling = Scaling::kNone;
};

// The packed dense layer: the weight is int64 [O, words].
struct PackedFullyConnectedParams {
  int64_t num_hidden = 0;
  bool no_bias = true, flatten = true;
  Scaling scaling = Scaling::kNone;
  int64_t packed_features = 0;  // features the packed weight holds (0: not given)
};

// MXNet Pooling's parameters that PlainPooling takes (2-D, NCHW, max or avg).
struct PlainPoolingParams {
  std::vector<int64_t> kernel{1, 1}, stride{1, 1}, pad{0, 0};
  bool max = true, global_pool = false, full_convention = false, count_include_pad = true;
  int64_t data_pieces = 1;  // inputs joined along the channels (converter, as for QConvolution)
  bool channels_last = false;  // layout="NHWC": data and output are (N, H, W, C)
};

// Positions of the optional inputs: data, weight, [scale (packed + xnor)], [bias],
// [data threshold], [residual], [data pieces 2, 3, ...].
struct InputLayout {
  int scale = -1, bias = -1, threshold = -1, residual = -1, pieces = -1, count = 2;
};
InputLayout LayoutOf(const QConvolutionParams& p);
InputLayout LayoutOf(const PackedConvolutionParams& p);
InputLayout LayoutOf(const QFullyConnectedParams& p);
InputLayout LayoutOf(const PackedFullyConnectedParams& p);

// Whether the attributes of a QConvolution or QFullyConnected (`op`) describe a packed layer.
bool IsPackedLayer(const char* op, const Attributes& attrs);

QActivationParams ParseQActivation(const Attributes& attrs);
// ChannelConcat: how many inputs, and how many leading channels of each it takes (0: all;
// model-converter sets them in place of a slice_axis(begin=0) of an input).
struct ChannelConcatParams {
  int count = 1;
  std::vector<int64_t> take_channels;  // count entries
};
ChannelConcatParams ParseChannelConcat(const Attributes& attrs);
QConvolutionParams ParseQConvolution(const Attributes& attrs);
PackedConvolutionParams ParsePackedConvolution(const Attributes& attrs);
PlainPoolingParams ParsePlainPooling(const Attributes& attrs);
// MXNet BatchNorm's inference parameters that PlainBatchNorm takes (axis 1), and which of
// oneDNN's formulas the float-simulated model used (kernels/batchnorm.h).
struct PlainBatchNormParams {
  float eps = 1e-3f;       // MXNet's defaults
  bool fix_gamma = true;
  bool blocked = false;    // the float model ran it on a oneDNN-blocked tensor
  bool channels_last = false;  // data is (N, H, W, C); the output stays (N, C, H, W)
  bool relu = false;           // act_type="relu": a ReLU follows in the same pass
};
PlainBatchNormParams ParsePlainBatchNorm(const Attributes& attrs);
QFullyConnectedParams ParseQFullyConnected(const Attributes& attrs);
PackedFullyConnectedParams ParsePackedFullyConnected(const Attributes& attrs);

// "(2, 3)" -> {2, 3}; used for shapes in messages too.
std::string ShapeString(const std::vector<int64_t>& shape);
std::string ShapeString(const std::vector<unsigned int>& shape);

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_OP_PARAMS_H_
