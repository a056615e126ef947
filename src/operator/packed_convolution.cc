// The packed QConvolution (binarized_weights_only=True): the weight is the converter's
// int64 tensor [O, KH, KW, words] and the forward pass runs the xnor-popcount kernel,
// with the optional inputs model-converter folds in (scale, bias, BatchNorm thresholds on
// the data, a residual added to the output, data in channel pieces). Each node keeps its
// padding masks and prepared weights (kernels::ConvMemory).
#include "packed_convolution.h"

#include "convolution_common.h"
#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "kernels/xnor_conv.h"
#include "op_quantize.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace packed_convolution {
namespace {

constexpr const char* kOp = kConvolutionOp;
using kernels::WordsFor;

// What a node keeps: its parameters and what its calls worked out.
struct Node {
  PackedConvolutionParams params;
  kernels::ConvMemory memory;
};

// The inputs holding the data's pieces, counted from the data: input 0, the rest from
// layout.pieces on.
std::vector<size_t> PieceIndices(const PackedConvolutionParams& p, const InputLayout& layout) {
  std::vector<size_t> indices = {0};
  for (int64_t j = 1; j < p.data_pieces; ++j) indices.push_back(layout.pieces + j - 1);
  return indices;
}

// The data's tensors from `first` on (input `first` and the pieces after layout.pieces).
kernels::ChannelPieces DataPieces(const PackedConvolutionParams& p, const InputLayout& layout,
                                  std::vector<MXTensor>* tensors, size_t first) {
  kernels::ChannelPieces pieces;
  const std::vector<int64_t>& shape = (*tensors)[first].shape;
  pieces.spatial = shape[2] * shape[3];
  for (size_t index : PieceIndices(p, layout)) pieces.Add(Data(tensors, first + index), (*tensors)[first + index].shape[1]);
  return pieces;
}

// The geometry of a forward or backward call, checked against the tensors MXNet passed:
// the data starts at tensors[first], `result` is the tensor of the output's shape (the
// forward output, or the backward's output gradient).
kernels::ConvGeometry CheckedGeometry(const PackedConvolutionParams& p, std::vector<MXTensor>* tensors, size_t first,
                                      const MXTensor& result) {
  std::vector<int64_t> data = (*tensors)[first].shape;
  data[1] = 0;
  for (size_t index : PieceIndices(p, LayoutOf(p))) data[1] += (*tensors)[first + index].shape[1];
  const kernels::ConvGeometry g = Geometry(p, data);
  CheckNotEmpty(kOp, "channels", g.in_channels, (*tensors)[first].shape);
  CheckTensorShape(kOp, "output", result, {g.batch, g.out_channels, g.OutHeight(), g.OutWidth()});
  return g;
}

void Forward(Node& node, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  const PackedConvolutionParams& p = node.params;
  const InputLayout layout = LayoutOf(p);
  CheckTensorCounts(kOp, layout.count, false, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 0, (*outputs)[0]);
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
  MXTensor& weight = (*inputs)[1];
  kernels::PackAndConvolve(g, DataPieces(p, layout, inputs, 0), thresholds, packed, weight.data<uint64_t>(),
                           OptionalData(inputs, layout.scale), OptionalData(inputs, layout.bias),
                           {OptionalData(inputs, layout.residual), p.residual_offset}, Data(outputs, 0),
                           kernels::NumThreads(), kernels::ActiveIsa(), &node.memory, weight.verID);
}

// Packed weights are constants: the data gradient uses the unpacked +-1 weights (times the
// scale), the weight and scale get zero gradients.
void Backward(Node& node, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  const PackedConvolutionParams& p = node.params;
  const InputLayout layout = LayoutOf(p);  // input i of the forward is inputs[1 + i] here
  CheckTensorCounts(kOp, layout.count, true, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 1, (*inputs)[0]);
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

#ifdef BMXNET_CUDA
void ForwardGpu(Node& node, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  const PackedConvolutionParams& p = node.params;
  const InputLayout layout = LayoutOf(p);
  CheckTensorCounts(kOp, layout.count, false, inputs->size(), outputs->size());
  const kernels::ConvGeometry g = CheckedGeometry(p, inputs, 0, (*outputs)[0]);
  cuda::ConvShape s = {g.batch,    g.in_channels, g.in_height, g.in_width, g.out_channels, g.kernel_h, g.kernel_w,
                       g.stride_h, g.stride_w,    g.pad_h,     g.pad_w,    g.dilate_h,     g.dilate_w, g.groups,
                       g.pad_value != 0.0f};
  // words of packed activations in the pixel-major layout the CUDA kernels read
  uint64_t* packed = AllocGpuScratch<uint64_t>(
      res, kernels::SaturatingProduct({g.batch, g.in_height, g.in_width, g.groups, WordsFor(g.in_channels / g.groups)}));
  cuda::PackActivations(s, DataPieces(p, layout, inputs, 0), OptionalData(inputs, layout.threshold), packed,
                        res.get_cuda_stream());
  s.residual_skip = p.residual_offset;
  cuda::Convolve(s, packed, (*inputs)[1].data<uint64_t>(), OptionalData(inputs, layout.scale),
                 OptionalData(inputs, layout.bias), OptionalData(inputs, layout.residual), Data(outputs, 0),
                 res.get_cuda_stream());
}

void BackwardGpu(Node&, std::vector<MXTensor>*, std::vector<MXTensor>*, const OpResource&) {
  throw ParamError(std::string(kOp) + " on gpu: packed layers have no backward pass there; use cpu");
}
#endif

}  // namespace

size_t InputCount(const Attributes& attrs) { return static_cast<size_t>(LayoutOf(ParsePackedConvolution(attrs)).count); }

void InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  InferPackedTypes(kOp, InputCount(attrs), in_types, out_types);
}

void InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  const PackedConvolutionParams p = ParsePackedConvolution(attrs);
  const InputLayout layout = LayoutOf(p);
  CheckInputCount(kOp, layout.count, in_shapes->size());
  if ((*in_shapes)[0].size() != 4)
    throw ParamError(std::string(kOp) + ": data must be 4-D NCHW, got shape " + ShapeString((*in_shapes)[0]));
  const std::vector<int64_t> data = JoinedChannelsShape(kOp, *in_shapes, PieceIndices(p, layout));
  const std::vector<int64_t> output = ConvolutionOutput(p, data);
  const int64_t filters = p.num_filter, per_group = ChannelsPerGroup(p, data[1]);
  if (p.packed_channels > 0 && per_group != kUnknown && per_group != p.packed_channels)
    throw ParamError(std::string(kOp) + ": the packed weight holds " + std::to_string(p.packed_channels) +
                     " input channels per group (packed_channels), the data gives " + std::to_string(per_group) +
                     " (" + std::to_string(data[1]) + " channels, num_group=" + std::to_string(p.num_group) + ")");
  ExpectShape(kOp, "packed weight", &(*in_shapes)[1],
              FittingShape(kOp, "packed weight",
                           {filters, p.kernel[0], p.kernel[1], per_group == kUnknown ? kUnknown : WordsFor(per_group)}));
  if (layout.scale >= 0) ExpectShape(kOp, "weight scale", &(*in_shapes)[layout.scale], FittingShape(kOp, "weight scale", {filters}));
  if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], FittingShape(kOp, "bias", {filters}));
  if (layout.threshold >= 0)
    ExpectShape(kOp, "data threshold", &(*in_shapes)[layout.threshold], FittingShape(kOp, "data threshold", {2, data[1]}));
  (*out_shapes)[0] = FittingShape(kOp, "output", output);
  if (layout.residual >= 0)
    ExpectShape(kOp, "residual", &(*in_shapes)[layout.residual],
                FittingShape(kOp, "residual", {output[0], filters + p.residual_offset, output[2], output[3]}));
}

CustomStatefulOp* CreateState(const Attributes& attrs, bool gpu) {
  Node node = {ParsePackedConvolution(attrs), {}};
#ifdef BMXNET_CUDA
  if (gpu) return MakeState<Node>(std::move(node), ForwardGpu, BackwardGpu);
#endif
  if (gpu) throw ParamError(std::string(kOp) + ": this build of bmxnet has no CUDA kernels");
  return MakeState<Node>(std::move(node), Forward, Backward);
}

}  // namespace packed_convolution
}  // namespace bmxnet
