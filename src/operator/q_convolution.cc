// QConvolution: 2-D convolution of act_bit-quantized data with weight_bit-quantized weights
// (NCHW). The data quantizer passes gradients straight through; gradient clipping belongs
// to the QActivation that precedes the layer (bmxnet.nn.QConv2D adds it).
// A node with binarized_weights_only=True is the packed layer model-converter writes
// (packed_convolution.cc); the registration at the end hands such nodes on to it.
#include "convolution_common.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/quantize.h"
#include "kernels/sizes.h"
#include "op_quantize.h"
#include "packed_convolution.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = kConvolutionOp;

size_t InputCount(const QConvolutionParams& p) { return static_cast<size_t>(LayoutOf(p).count); }

// Sizes the kernels will work with, beyond the tensors MXNet checks: the column matrix of
// one image goes to BLAS, which takes int.
void CheckWorkSizes(const kernels::ConvGeometry& g) {
  if (kernels::SaturatingProduct({g.PatchSize(), g.OutHeight(), g.OutWidth()}) > kMaxElements)
    throw ParamError(std::string(kOp) + ": the column matrix of one image (" + std::to_string(g.PatchSize()) +
                     " x " + std::to_string(g.OutHeight() * g.OutWidth()) + ") exceeds " +
                     std::to_string(kMaxElements) + " elements; use a smaller input or kernel");
}

void InferTrainableShape(const QConvolutionParams& p, Shapes* in_shapes, Shapes* out_shapes) {
  const InputLayout layout = LayoutOf(p);
  CheckInputCount(kOp, InputCount(p), in_shapes->size());
  if ((*in_shapes)[0].size() != 4)
    throw ParamError(std::string(kOp) + ": data must be 4-D NCHW, got shape " + ShapeString((*in_shapes)[0]));
  const std::vector<int64_t> data = Dims((*in_shapes)[0]);
  const std::vector<int64_t> output = ConvolutionOutput(p, data);
  const int64_t filters = p.num_filter;
  ExpectShape(kOp, "weight", &(*in_shapes)[1],
              FittingShape(kOp, "weight", {filters, ChannelsPerGroup(p, data[1]), p.kernel[0], p.kernel[1]}));
  if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], FittingShape(kOp, "bias", {filters}));
  (*out_shapes)[0] = FittingShape(kOp, "output", output);
  if (data[1] != kUnknown && data[2] != kUnknown && data[3] != kUnknown) CheckWorkSizes(Geometry(p, {1, data[1], data[2], data[3]}));
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
// `data` is the data tensor, `result` the tensor of the output's shape (the forward
// output, or the backward's output gradient).
kernels::ConvGeometry CheckedGeometry(const QConvolutionParams& p, const MXTensor& data, const MXTensor& result) {
  const kernels::ConvGeometry g = Geometry(p, data.shape);
  CheckNotEmpty(kOp, "channels", g.in_channels, data.shape);
  CheckTensorShape(kOp, "output", result, {g.batch, g.out_channels, g.OutHeight(), g.OutWidth()});
  CheckWorkSizes(g);
  return g;
}

void Forward(const QConvolutionParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
             const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, (*inputs)[0], (*outputs)[0]);
  float* scratch = AllocScratch(res, kernels::SaturatingAdd(ScratchFor(g), g.ScratchSize()));
  const QuantizedInputs q = Quantize(p, g, ScaleOn::kOutputs, inputs, 0, scratch);
  const float* bias = p.no_bias ? nullptr : Data(inputs, 2);
  float* out = Data(outputs, 0);
  kernels::ConvForward(g, q.data, q.weight, q.output_scale ? nullptr : bias, out, scratch + ScratchFor(g),
                       kernels::NumThreads());
  if (q.output_scale) ScaleOutputs(q.output_scale, bias, g.batch, g.out_channels, g.OutHeight() * g.OutWidth(), out);
}

// inputs: [output gradient, forward inputs..., output]; outputs: gradients of the forward inputs
void Backward(const QConvolutionParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
              const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, (*inputs)[1], (*inputs)[0]);
  float* scratch = AllocScratch(res, kernels::SaturatingAdd(ScratchFor(g), g.ScratchSize()));
  const QuantizedInputs q = Quantize(p, g, ScaleOn::kWeights, inputs, 1, scratch);
  float* grad_weight = Data(outputs, 1);
  kernels::ConvBackward(g, q.data, q.weight, Data(inputs, 0), Data(outputs, 0), grad_weight,
                        p.no_bias ? nullptr : Data(outputs, 2), scratch + ScratchFor(g), kernels::NumThreads());
  kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight,
                          grad_weight, g.out_channels, g.PatchSize());
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

void ForwardGpu(const QConvolutionParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, (*inputs)[0], (*outputs)[0]);
  float* scratch = AllocGpuScratch(res, GpuScratchFor(g));
  const QuantizedInputs q = QuantizeGpu(p, g, ScaleOn::kOutputs, inputs, 0, scratch, res);
  cuda::FloatConvForward(Shape(g), q.data, q.weight, q.output_scale, p.no_bias ? nullptr : Data(inputs, 2),
                         Data(outputs, 0), res.get_cuda_stream());
}

void BackwardGpu(const QConvolutionParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, (*inputs)[1], (*inputs)[0]);
  float* scratch = AllocGpuScratch(res, GpuScratchFor(g));
  const QuantizedInputs q = QuantizeGpu(p, g, ScaleOn::kWeights, inputs, 1, scratch, res);
  float* grad_weight = Data(outputs, 1);
  cuda::FloatConvBackward(Shape(g), q.data, q.weight, Data(inputs, 0), Data(outputs, 0), grad_weight,
                          p.no_bias ? nullptr : Data(outputs, 2), res.get_cuda_stream());
  // the statistics go after the quantized copies, which are no longer needed
  cuda::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight, grad_weight,
                       g.out_channels, g.PatchSize(), scratch, res.get_cuda_stream());
}
#endif

// lib_api's entry points: packed nodes go to packed_convolution.cc.
MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(IsPackedLayer(kOp, attrs) ? packed_convolution::InputCount(attrs)
                                                         : InputCount(ParseQConvolution(attrs)));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) return packed_convolution::InferType(attrs, in_types, out_types);
    InferFloat32(kOp, InputCount(ParseQConvolution(attrs)), in_types, out_types);
  });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) return packed_convolution::InferShape(attrs, in_shapes, out_shapes);
    InferTrainableShape(ParseQConvolution(attrs), in_shapes, out_shapes);
  });
}

template <bool gpu>
MXReturnValue CreateNodeState(const Attributes& attrs, const MXContext&, const Shapes&, const std::vector<int>,
                              CustomStatefulOp** state) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) {
      *state = packed_convolution::CreateState(attrs, gpu);
      return;
    }
#ifdef BMXNET_CUDA
    if (gpu) {
      *state = MakeState<const QConvolutionParams>(ParseQConvolution(attrs), ForwardGpu, BackwardGpu);
      return;
    }
#endif
    *state = MakeState<const QConvolutionParams>(ParseQConvolution(attrs), Forward, Backward);
  });
}

}  // namespace

REGISTER_OP(QConvolution)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateNodeState<true>, "gpu")
#endif
    .setCreateOpState(CreateNodeState<false>, "cpu");

}  // namespace bmxnet
