// QFullyConnected: dense layer on act_bit-quantized data and weight_bit-quantized weights.
// Like QConvolution, the data quantizer passes gradients straight through, and with
// binarized_weights_only=True the weight is packed int64 [O, words] run by xnor-popcount.
#include "kernels/bitpack.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/quantize.h"
#include "kernels/xnor_conv.h"
#include "op_common.h"
#include "op_quantize.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "QFullyConnected";

// (rows, in_features) of the data as the layer sees it.
std::pair<int64_t, int64_t> Flattened(bool flatten, const std::vector<int64_t>& shape) {
  const size_t split = flatten ? 1 : shape.size() - 1;  // rows: the dimensions before, features: from there
  int64_t rows = 1, features = 1;
  for (size_t d = 0; d < shape.size(); ++d) (d < split ? rows : features) *= shape[d];
  return {rows, features};
}

// The inputs these parameters call for.
size_t InputCount(const QFullyConnectedParams& p) {
  return static_cast<size_t>(LayoutOf(p).count);
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParseQFullyConnected(attrs)); }

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
    if (ParseQFullyConnected(attrs).binarized_weights_only) expected[1] = mxnet::ext::kInt64;
    InferTypes(kOp, expected, in_types, out_types);
  });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    CheckInputCount(kOp, InputCount(p), in_shapes->size());
    const std::vector<unsigned int>& data = (*in_shapes)[0];
    if (data.size() < (p.flatten ? 2u : 1u))
      throw ParamError(std::string(kOp) + ": data shape " + ShapeString(data) +
                       (p.flatten ? " needs at least 2 dimensions" : " needs at least 1 dimension"));
    FittingShape(kOp, "data", Dims(data));  // also bounds the features
    // features: the last dimension, or (flatten) all but the first
    int64_t features = Dim(data.back());
    for (size_t d = 1; p.flatten && d + 1 < data.size(); ++d)
      features = features == kUnknown || Dim(data[d]) == kUnknown ? kUnknown
                                                                  : kernels::SaturatingMultiply(features, Dim(data[d]));
    if (p.packed_features > 0 && features != kUnknown && features != p.packed_features)
      throw ParamError(std::string(kOp) + ": the packed weight holds " + std::to_string(p.packed_features) +
                       " features (packed_features), the data gives " + std::to_string(features) + " (shape " +
                       ShapeString(data) + ", flatten=" + (p.flatten ? "True" : "False") + ")");
    const int64_t hidden = p.num_hidden;
    const InputLayout layout = LayoutOf(p);
    if (p.binarized_weights_only)
      ExpectShape(kOp, "packed weight", &(*in_shapes)[1],
                  FittingShape(kOp, "packed weight", {hidden, features == kUnknown ? kUnknown : kernels::WordsFor(features)}));
    else
      ExpectShape(kOp, "weight", &(*in_shapes)[1], FittingShape(kOp, "weight", {hidden, features}));
    if (layout.scale >= 0) ExpectShape(kOp, "weight scale", &(*in_shapes)[layout.scale], FittingShape(kOp, "weight scale", {hidden}));
    if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], FittingShape(kOp, "bias", {hidden}));
    std::vector<int64_t> out;
    for (size_t d = 0; d < (p.flatten ? 1 : data.size() - 1); ++d) out.push_back(Dim(data[d]));
    out.push_back(hidden);
    (*out_shapes)[0] = FittingShape(kOp, "output", out);
  });
}

QuantizedInputs Quantize(const QFullyConnectedParams& p, ScaleOn scale_on, std::vector<MXTensor>* tensors,
                         size_t data_index, int64_t features, float* scratch) {
  return QuantizeInputs(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                        (*tensors)[data_index].size(), Data(tensors, data_index + 1),
                        p.num_hidden, features, scratch);
}

// (rows, features) of a forward or backward call, checked against the tensors MXNet passed:
// `data` is the data tensor, `result` the tensor of the output's shape.
std::pair<int64_t, int64_t> CheckedRows(const QFullyConnectedParams& p, const MXTensor& data, const MXTensor& result) {
  const auto rows_features = Flattened(p.flatten, data.shape);
  CheckNotEmpty(kOp, "features", rows_features.second, data.shape);
  std::vector<int64_t> out = p.flatten ? std::vector<int64_t>{data.shape[0]} : data.shape;
  if (p.flatten) out.push_back(p.num_hidden); else out.back() = p.num_hidden;
  CheckTensorShape(kOp, "output", result, out);
  return rows_features;
}

void PackedForward(const QFullyConnectedParams& p, int64_t rows, int64_t features,
                   std::vector<MXTensor>* inputs, float* out, const OpResource& res) {
  const InputLayout layout = LayoutOf(p);
  const int threads = kernels::NumThreads();
  uint64_t* packed = AllocScratch<uint64_t>(res, rows * kernels::WordsFor(features));
  kernels::PackRows(Data(inputs, 0), rows, features, packed, threads);
  kernels::BinaryDenseForward(rows, features, p.num_hidden, packed, (*inputs)[1].data<uint64_t>(),
                              OptionalData(inputs, layout.scale),
                              OptionalData(inputs, layout.bias), out, threads);
}

MXReturnValue Forward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
    const auto rows_features = CheckedRows(p, (*inputs)[0], (*outputs)[0]);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (p.binarized_weights_only) return PackedForward(p, rows, features, inputs, Data(outputs, 0), res);
    float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[0].size(), p.num_hidden, features));
    const auto q = Quantize(p, ScaleOn::kOutputs, inputs, 0, features, scratch);
    const float* bias = p.no_bias ? nullptr : Data(inputs, 2);
    float* out = Data(outputs, 0);
    kernels::DenseForward(rows, features, p.num_hidden, q.data, q.weight, q.output_scale ? nullptr : bias, out,
                          kernels::NumThreads());
    if (q.output_scale) ScaleOutputs(q.output_scale, bias, rows, p.num_hidden, 1, out);
  });
}

// Packed weights are constants: the data gradient uses the unpacked +-1 weights (times the
// scale), the weight and scale get zero gradients.
void PackedBackward(const QFullyConnectedParams& p, int64_t rows, int64_t features,
                    std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                    const OpResource& res) {
  const InputLayout layout = LayoutOf(p);  // input i of the forward is inputs[1 + i] here
  float* weights = AllocScratch(res, p.num_hidden * features);
  kernels::UnpackConvWeights((*inputs)[2].data<uint64_t>(), p.num_hidden, features, 1, 1, weights);
  if (layout.scale >= 0) {
    ScaleRows(Data(inputs, 1 + layout.scale), p.num_hidden, features, weights);
    std::fill_n(Data(outputs, layout.scale), p.num_hidden, 0.0f);
  }
  kernels::DenseBackward(rows, features, p.num_hidden, nullptr, weights, Data(inputs, 0),
                         Data(outputs, 0), nullptr,
                         OptionalData(outputs, layout.bias),
                         kernels::NumThreads());
  std::fill_n((*outputs)[1].data<int64_t>(), (*outputs)[1].size(), int64_t(0));
}

// inputs: [output gradient, forward inputs..., output]; outputs: gradients of the forward inputs
MXReturnValue Backward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
    const auto rows_features = CheckedRows(p, (*inputs)[1], (*inputs)[0]);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (p.binarized_weights_only) return PackedBackward(p, rows, features, inputs, outputs, res);
    float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[1].size(), p.num_hidden, features));
    const auto q = Quantize(p, ScaleOn::kWeights, inputs, 1, features, scratch);
    float* grad_weight = Data(outputs, 1);
    kernels::DenseBackward(rows, features, p.num_hidden, q.data, q.weight, Data(inputs, 0),
                           Data(outputs, 0), grad_weight, p.no_bias ? nullptr : Data(outputs, 2),
                           kernels::NumThreads());
    kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight,
                            grad_weight, p.num_hidden, features);
  });
}

#ifdef BMXNET_CUDA
QuantizedInputs QuantizeGpu(const QFullyConnectedParams& p, ScaleOn scale_on, std::vector<MXTensor>* tensors,
                            size_t data_index, int64_t features, float* scratch, const OpResource& res) {
  return QuantizeInputsGpu(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                           (*tensors)[data_index].size(), Data(tensors, data_index + 1), p.num_hidden, features,
                           scratch, res.get_cuda_stream());
}

// Non-packed layers only: packed models are for inference.
MXReturnValue BackwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
    if (p.binarized_weights_only)
      throw ParamError(std::string(kOp) + " on gpu: packed layers have no backward pass there; use cpu");
    const auto rows_features = CheckedRows(p, (*inputs)[1], (*inputs)[0]);
    const int64_t rows = rows_features.first, features = rows_features.second;
    float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[1].size(), p.num_hidden, features));
    const QuantizedInputs q = QuantizeGpu(p, ScaleOn::kWeights, inputs, 1, features, scratch, res);
    float* grad_weight = Data(outputs, 1);
    cuda::FloatDenseBackward(q.data, q.weight, Data(inputs, 0), rows, features, p.num_hidden, Data(outputs, 0),
                             grad_weight, p.no_bias ? nullptr : Data(outputs, 2), res.get_cuda_stream());
    cuda::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight, grad_weight,
                         p.num_hidden, features, scratch, res.get_cuda_stream());
  });
}

MXReturnValue ForwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs,
                         std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
    const InputLayout layout = LayoutOf(p);
    const auto rows_features = CheckedRows(p, (*inputs)[0], (*outputs)[0]);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (!p.binarized_weights_only) {
      float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[0].size(), p.num_hidden, features));
      const QuantizedInputs q = QuantizeGpu(p, ScaleOn::kOutputs, inputs, 0, features, scratch, res);
      cuda::FloatDenseForward(q.data, q.weight, q.output_scale, p.no_bias ? nullptr : Data(inputs, 2), rows, features,
                              p.num_hidden, Data(outputs, 0), res.get_cuda_stream());
      return;
    }
    uint64_t* packed = AllocGpuScratch<uint64_t>(res, rows * kernels::WordsFor(features));
    cuda::PackRows(Data(inputs, 0), rows, features, packed, res.get_cuda_stream());
    cuda::Dense(packed, (*inputs)[1].data<uint64_t>(), OptionalData(inputs, layout.scale),
                OptionalData(inputs, layout.bias), rows, features, p.num_hidden,
                Data(outputs, 0), res.get_cuda_stream());
  });
}
#endif

}  // namespace

REGISTER_OP(QFullyConnected)
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
