// QConvolution: 2-D convolution of act_bit-quantized data with weight_bit-quantized weights
// (NCHW). The data quantizer passes gradients straight through; gradient clipping belongs
// to the QActivation that precedes the layer (bmxnet.nn.QConv2D adds it).
// With binarized_weights_only=True the weight is the converter's packed int64 tensor
// [O, KH, KW, words] and the forward pass runs the xnor-popcount kernel.
#include "kernels/bitpack.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/quantize.h"
#include "kernels/xnor_conv.h"
#include "kernels/sizes.h"
#include "op_common.h"
#include "op_quantize.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "QConvolution";
using kernels::WordsFor;

kernels::ConvGeometry Geometry(const QConvolutionParams& p, const std::vector<int64_t>& data) {
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

// The inputs holding the data's pieces, counted from the data: input 0, the rest from
// layout.pieces on.
std::vector<size_t> PieceIndices(const QConvolutionParams& p, const InputLayout& layout) {
  std::vector<size_t> indices = {0};
  for (int64_t j = 1; j < p.data_pieces; ++j) indices.push_back(layout.pieces + j - 1);
  return indices;
}

// The data's tensors from `first` on (input `first` and the pieces after layout.pieces).
kernels::ChannelPieces DataPieces(const QConvolutionParams& p, const InputLayout& layout,
                                  std::vector<MXTensor>* tensors, size_t first) {
  kernels::ChannelPieces pieces;
  const std::vector<int64_t>& shape = (*tensors)[first].shape;
  pieces.spatial = shape[2] * shape[3];
  for (size_t index : PieceIndices(p, layout)) pieces.Add(Data(tensors, first + index), (*tensors)[first + index].shape[1]);
  return pieces;
}

// The geometry of the layer whose data starts at tensors[first].
kernels::ConvGeometry GeometryOf(const QConvolutionParams& p, std::vector<MXTensor>* tensors, size_t first) {
  std::vector<int64_t> data = (*tensors)[first].shape;
  data[1] = 0;
  for (size_t index : PieceIndices(p, LayoutOf(p))) data[1] += (*tensors)[first + index].shape[1];
  return Geometry(p, data);
}

// The inputs these parameters call for.
size_t InputCount(const QConvolutionParams& p) {
  return static_cast<size_t>(LayoutOf(p).count);
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParseQConvolution(attrs)); }

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(InputCount(attrs));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types,
                        std::vector<int>* out_types) {
  return Guard([&] {
    CheckInputCount(kOp, InputCount(attrs), in_types->size());
    std::vector<int> expected(in_types->size(), mxnet::ext::kFloat32);
    if (ParseQConvolution(attrs).binarized_weights_only) expected[1] = mxnet::ext::kInt64;
    InferTypes(kOp, expected, in_types, out_types);
  });
}

// Sizes the kernels will work with, beyond the tensors MXNet checks: the unpacked path's
// column matrix of one image goes to BLAS, which takes int.
void CheckWorkSizes(const QConvolutionParams& p, const kernels::ConvGeometry& g) {
  if (!p.binarized_weights_only && kernels::SaturatingProduct({g.PatchSize(), g.OutHeight(), g.OutWidth()}) > kMaxElements)
    throw ParamError(std::string(kOp) + ": the column matrix of one image (" + std::to_string(g.PatchSize()) +
                     " x " + std::to_string(g.OutHeight() * g.OutWidth()) + ") exceeds " +
                     std::to_string(kMaxElements) + " elements; use a smaller input or kernel");
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const QConvolutionParams p = ParseQConvolution(attrs);
    CheckInputCount(kOp, InputCount(p), in_shapes->size());
    const InputLayout layout = LayoutOf(p);
    if ((*in_shapes)[0].size() != 4)
      throw ParamError(std::string(kOp) + ": data must be 4-D NCHW, got shape " + ShapeString((*in_shapes)[0]));
    const std::vector<int64_t> data = JoinedChannelsShape(kOp, *in_shapes, PieceIndices(p, layout));
    FittingShape(kOp, "data", data);
    if (data[1] != kUnknown && data[1] % p.num_group != 0)
      throw ParamError(std::string(kOp) + ": input channels " + std::to_string(data[1]) +
                       " not divisible by num_group=" + std::to_string(p.num_group));
    const int64_t filters = p.num_filter, kh = p.kernel[0], kw = p.kernel[1];
    const int64_t per_group = data[1] == kUnknown ? kUnknown : data[1] / p.num_group;
    if (p.packed_channels > 0 && per_group != kUnknown && per_group != p.packed_channels)
      throw ParamError(std::string(kOp) + ": the packed weight holds " + std::to_string(p.packed_channels) +
                       " input channels per group (packed_channels), the data gives " + std::to_string(per_group) +
                       " (" + std::to_string(data[1]) + " channels, num_group=" + std::to_string(p.num_group) + ")");
    if (p.binarized_weights_only)
      ExpectShape(kOp, "packed weight", &(*in_shapes)[1],
                  FittingShape(kOp, "packed weight", {filters, kh, kw, per_group == kUnknown ? kUnknown : WordsFor(per_group)}));
    else
      ExpectShape(kOp, "weight", &(*in_shapes)[1], FittingShape(kOp, "weight", {filters, per_group, kh, kw}));
    if (layout.scale >= 0) ExpectShape(kOp, "weight scale", &(*in_shapes)[layout.scale], FittingShape(kOp, "weight scale", {filters}));
    if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], FittingShape(kOp, "bias", {filters}));
    if (layout.threshold >= 0)
      ExpectShape(kOp, "data threshold", &(*in_shapes)[layout.threshold], FittingShape(kOp, "data threshold", {2, data[1]}));
    const bool known = data[1] != kUnknown && data[2] != kUnknown && data[3] != kUnknown;
    const kernels::ConvGeometry g = Geometry(p, {std::max<int64_t>(data[0], 1), data[1], data[2], data[3]});
    if (known && (g.OutHeight() < 1 || g.OutWidth() < 1))
      throw ParamError(std::string(kOp) + ": kernel " + ShapeString(p.kernel) + " with dilate " +
                       ShapeString(p.dilate) + " does not fit the padded input " + ShapeString(data));
    const int64_t height = data[2] == kUnknown ? kUnknown : g.OutHeight();
    const int64_t width = data[3] == kUnknown ? kUnknown : g.OutWidth();
    (*out_shapes)[0] = FittingShape(kOp, "output", {data[0], filters, height, width});
    if (known) CheckWorkSizes(p, g);
    if (layout.residual >= 0)
      ExpectShape(kOp, "residual", &(*in_shapes)[layout.residual],
                  FittingShape(kOp, "residual", {data[0], filters + p.residual_offset, height, width}));
  });
}

QuantizedInputs Quantize(const QConvolutionParams& p, const kernels::ConvGeometry& g, ScaleOn scale_on,
                         std::vector<MXTensor>* tensors, size_t data_index, float* scratch) {
  return QuantizeInputs(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                        (*tensors)[data_index].size(), Data(tensors, data_index + 1),
                        g.out_channels, g.PatchSize(), scratch);
}

int64_t ScratchFor(const kernels::ConvGeometry& g) {
  return QuantizeScratchSize(g.batch * g.in_channels * g.in_height * g.in_width, g.out_channels, g.PatchSize());
}

// The geometry of a forward or backward call, checked against the tensors MXNet passed:
// `first` is the data's index, `result` the tensor of the output's shape (the forward
// output, or the backward's output gradient).
kernels::ConvGeometry CheckedGeometry(const QConvolutionParams& p, std::vector<MXTensor>* tensors, size_t first,
                                      const MXTensor& result) {
  const kernels::ConvGeometry g = GeometryOf(p, tensors, first);
  CheckNotEmpty(kOp, "channels", g.in_channels, (*tensors)[first].shape);
  CheckTensorShape(kOp, "output", result, {g.batch, g.out_channels, g.OutHeight(), g.OutWidth()});
  CheckWorkSizes(p, g);
  return g;
}

// Words of packed activations in the pixel-major layout the CUDA kernels read (the CPU
// kernels read the padded one: kernels::PackedInputWords).
int64_t PackedDataWords(const kernels::ConvGeometry& g) {
  return kernels::SaturatingProduct({g.batch, g.in_height, g.in_width, g.groups, WordsFor(g.in_channels / g.groups)});
}

void PackedForward(const QConvolutionParams& p, const kernels::ConvGeometry& g,
                   std::vector<MXTensor>* inputs, float* out, const OpResource& res) {
  const InputLayout layout = LayoutOf(p);
  uint64_t* packed = AllocScratch<uint64_t>(res, kernels::PackedInputWords(g));
  kernels::ChannelThresholds thresholds;
  if (layout.threshold >= 0) {
    thresholds.direction = Data(inputs, layout.threshold);
    thresholds.threshold = thresholds.direction + g.in_channels;
    for (int64_t c = 0; c < g.in_channels; ++c)
      if (thresholds.direction[c] != 1.0f && thresholds.direction[c] != -1.0f)
        throw ParamError(std::string(kOp) + ": data threshold directions (row 0) must be +1 or -1, got " +
                         std::to_string(thresholds.direction[c]) + " for channel " + std::to_string(c));
  }
  kernels::PackAndConvolve(g, DataPieces(p, layout, inputs, 0), thresholds, packed, (*inputs)[1].data<uint64_t>(),
                           OptionalData(inputs, layout.scale), OptionalData(inputs, layout.bias),
                           {OptionalData(inputs, layout.residual), p.residual_offset}, out, kernels::NumThreads());
}

MXReturnValue Forward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QConvolutionParams p = ParseQConvolution(attrs);
    CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
    const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 0, (*outputs)[0]);
    if (p.binarized_weights_only) return PackedForward(p, g, inputs, Data(outputs, 0), res);
    float* scratch = AllocScratch(res, kernels::SaturatingAdd(ScratchFor(g), g.ScratchSize()));
    const QuantizedInputs q = Quantize(p, g, ScaleOn::kOutputs, inputs, 0, scratch);
    const float* bias = p.no_bias ? nullptr : Data(inputs, 2);
    float* out = Data(outputs, 0);
    kernels::ConvForward(g, q.data, q.weight, q.output_scale ? nullptr : bias, out, scratch + ScratchFor(g),
                         kernels::NumThreads());
    if (q.output_scale) ScaleOutputs(q.output_scale, bias, g.batch, g.out_channels, g.OutHeight() * g.OutWidth(), out);
  });
}

// Packed weights are constants: the data gradient uses the unpacked +-1 weights (times the
// scale), the weight and scale get zero gradients.
void PackedBackward(const QConvolutionParams& p, const kernels::ConvGeometry& g,
                    std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                    const OpResource& res) {
  const InputLayout layout = LayoutOf(p);  // input i of the forward is inputs[1 + i] here
  if (layout.threshold >= 0)
    throw ParamError(std::string(kOp) + ": no gradient through data_threshold (a BatchNorm folded for "
                                        "inference); train the float-simulated model instead");
  const int64_t data_size = g.batch * g.in_channels * g.in_height * g.in_width;
  float* weights = AllocScratch(res, kernels::SaturatingAdd(g.out_channels * g.PatchSize() + (p.data_pieces > 1 ? data_size : 0),
                                                            g.ScratchSize()));
  float* scratch = weights + g.out_channels * g.PatchSize();
  // with data pieces the data gradient is worked out whole, then handed out piece by piece
  float* grad_data = p.data_pieces > 1 ? scratch + g.ScratchSize() : Data(outputs, 0);
  kernels::UnpackConvWeights((*inputs)[2].data<uint64_t>(), g.out_channels,
                             g.in_channels / g.groups, g.kernel_h, g.kernel_w, weights);
  if (layout.scale >= 0) {
    ScaleRows(Data(inputs, 1 + layout.scale), g.out_channels, g.PatchSize(), weights);
    std::fill_n(Data(outputs, layout.scale), g.out_channels, 0.0f);
  }
  kernels::ConvBackward(g, nullptr, weights, Data(inputs, 0), grad_data, nullptr, OptionalData(outputs, layout.bias),
                        scratch, kernels::NumThreads());
  if (p.data_pieces > 1) {
    const int64_t spatial = g.in_height * g.in_width;
    int64_t first = 0;
    for (size_t index : PieceIndices(p, layout)) {
      const int64_t channels = (*outputs)[index].shape[1];
      for (int64_t n = 0; n < g.batch; ++n)
        std::copy_n(grad_data + (n * g.in_channels + first) * spatial, channels * spatial,
                    Data(outputs, index) + n * channels * spatial);
      first += channels;
    }
  }
  std::fill_n((*outputs)[1].data<int64_t>(), (*outputs)[1].size(), int64_t(0));
  if (layout.residual >= 0) {  // the output gradient, on the channels the residual adds
    const int64_t output = g.out_channels * g.OutHeight() * g.OutWidth();
    const int64_t skipped = p.residual_offset * g.OutHeight() * g.OutWidth();
    float* grad_residual = Data(outputs, layout.residual);
    for (int64_t n = 0; n < g.batch; ++n) {
      std::fill_n(grad_residual + n * (skipped + output), skipped, 0.0f);
      std::copy_n(Data(inputs, 0) + n * output, output, grad_residual + n * (skipped + output) + skipped);
    }
  }
}

// inputs: [output gradient, forward inputs..., output]; outputs: gradients of the forward inputs
MXReturnValue Backward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QConvolutionParams p = ParseQConvolution(attrs);
    CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
    const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 1, (*inputs)[0]);
    if (p.binarized_weights_only) return PackedBackward(p, g, inputs, outputs, res);
    float* scratch = AllocScratch(res, kernels::SaturatingAdd(ScratchFor(g), g.ScratchSize()));
    const QuantizedInputs q = Quantize(p, g, ScaleOn::kWeights, inputs, 1, scratch);
    float* grad_weight = Data(outputs, 1);
    kernels::ConvBackward(g, q.data, q.weight, Data(inputs, 0), Data(outputs, 0), grad_weight,
                          p.no_bias ? nullptr : Data(outputs, 2), scratch + ScratchFor(g),
                          kernels::NumThreads());
    kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight,
                            grad_weight, g.out_channels, g.PatchSize());
  });
}

#ifdef BMXNET_CUDA
cuda::ConvShape Shape(const kernels::ConvGeometry& g) {
  return {g.batch,    g.in_channels, g.in_height, g.in_width, g.out_channels, g.kernel_h, g.kernel_w, g.stride_h,
          g.stride_w, g.pad_h,       g.pad_w,     g.dilate_h, g.dilate_w,     g.groups,   g.pad_value != 0.0f};
}

int64_t GpuScratchFor(const kernels::ConvGeometry& g) {
  return GpuQuantizeScratchSize(g.batch * g.in_channels * g.in_height * g.in_width, g.out_channels, g.PatchSize());
}

QuantizedInputs QuantizeGpu(const QConvolutionParams& p, const kernels::ConvGeometry& g, ScaleOn scale_on,
                            std::vector<MXTensor>* tensors, size_t data_index, float* scratch, const OpResource& res) {
  return QuantizeInputsGpu(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                           (*tensors)[data_index].size(), Data(tensors, data_index + 1), g.out_channels,
                           g.PatchSize(), scratch, res.get_cuda_stream());
}

// Non-packed layers only: packed models are for inference.
MXReturnValue BackwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QConvolutionParams p = ParseQConvolution(attrs);
    CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
    if (p.binarized_weights_only)
      throw ParamError(std::string(kOp) + " on gpu: packed layers have no backward pass there; use cpu");
    const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 1, (*inputs)[0]);
    float* scratch = AllocGpuScratch(res, GpuScratchFor(g));
    const QuantizedInputs q = QuantizeGpu(p, g, ScaleOn::kWeights, inputs, 1, scratch, res);
    float* grad_weight = Data(outputs, 1);
    cuda::FloatConvBackward(Shape(g), q.data, q.weight, Data(inputs, 0), Data(outputs, 0), grad_weight,
                            p.no_bias ? nullptr : Data(outputs, 2), res.get_cuda_stream());
    // the statistics go after the quantized copies, which are no longer needed
    cuda::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight, grad_weight,
                         g.out_channels, g.PatchSize(), scratch, res.get_cuda_stream());
  });
}

MXReturnValue ForwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs,
                         std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QConvolutionParams p = ParseQConvolution(attrs);
    CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
    const InputLayout layout = LayoutOf(p);
    const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 0, (*outputs)[0]);
    const cuda::ConvShape s = Shape(g);
    if (!p.binarized_weights_only) {
      float* scratch = AllocGpuScratch(res, GpuScratchFor(g));
      const QuantizedInputs q = QuantizeGpu(p, g, ScaleOn::kOutputs, inputs, 0, scratch, res);
      cuda::FloatConvForward(s, q.data, q.weight, q.output_scale, p.no_bias ? nullptr : Data(inputs, 2),
                             Data(outputs, 0), res.get_cuda_stream());
      return;
    }
    uint64_t* packed = AllocGpuScratch<uint64_t>(res, PackedDataWords(g));
    cuda::PackActivations(s, DataPieces(p, layout, inputs, 0), OptionalData(inputs, layout.threshold), packed,
                          res.get_cuda_stream());
    cuda::ConvShape with_residual = s;
    with_residual.residual_skip = p.residual_offset;
    cuda::Convolve(with_residual, packed, (*inputs)[1].data<uint64_t>(), OptionalData(inputs, layout.scale),
                   OptionalData(inputs, layout.bias), OptionalData(inputs, layout.residual), Data(outputs, 0),
                   res.get_cuda_stream());
  });
}
#endif

}  // namespace

REGISTER_OP(QConvolution)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setForward(ForwardGpu, "gpu")
    .setBackward(BackwardGpu, "gpu")
#endif
    .setForward(Forward, "cpu")
    .setBackward(Backward, "cpu");

}  // namespace bmxnet
