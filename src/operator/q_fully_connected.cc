// QFullyConnected: dense layer on act_bit-quantized data and weight_bit-quantized weights.
// Like QConvolution, the data quantizer passes gradients straight through. A node with
// binarized_weights_only=True is the packed layer model-converter writes
// (packed_fully_connected.cc); the registration at the end hands such nodes on to it.
#include "fully_connected_common.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/quantize.h"
#include "op_quantize.h"
#include "packed_fully_connected.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = kFullyConnectedOp;
using Params = QFullyConnectedParams;

size_t InputCount(const Params& p) { return static_cast<size_t>(LayoutOf(p).count); }

void InferTrainableShape(const Params& p, Shapes* in_shapes, Shapes* out_shapes) {
  CheckInputCount(kOp, InputCount(p), in_shapes->size());
  const std::vector<unsigned int>& data = (*in_shapes)[0];
  const int64_t features = FeaturesOf(p.flatten, data), hidden = p.num_hidden;
  ExpectShape(kOp, "weight", &(*in_shapes)[1], FittingShape(kOp, "weight", {hidden, features}));
  if (!p.no_bias) ExpectShape(kOp, "bias", &(*in_shapes)[LayoutOf(p).bias], FittingShape(kOp, "bias", {hidden}));
  (*out_shapes)[0] = DenseOutput(p.flatten, hidden, data);
}

QuantizedInputs Quantize(const Params& p, ScaleOn scale_on, std::vector<MXTensor>* tensors, size_t data_index,
                         int64_t features, float* scratch) {
  return QuantizeInputs(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                        (*tensors)[data_index].size(), Data(tensors, data_index + 1), p.num_hidden, features, scratch);
}

void Forward(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[0], (*outputs)[0]);
  float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[0].size(), p.num_hidden, features));
  const auto q = Quantize(p, ScaleOn::kOutputs, inputs, 0, features, scratch);
  const float* bias = p.no_bias ? nullptr : Data(inputs, 2);
  float* out = Data(outputs, 0);
  kernels::DenseForward(rows, features, p.num_hidden, q.data, q.weight, q.output_scale ? nullptr : bias, out,
                        kernels::NumThreads());
  if (q.output_scale) ScaleOutputs(q.output_scale, bias, rows, p.num_hidden, 1, out);
}

// inputs: [output gradient, forward inputs..., output]; outputs: gradients of the forward inputs
void Backward(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[1], (*inputs)[0]);
  float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[1].size(), p.num_hidden, features));
  const auto q = Quantize(p, ScaleOn::kWeights, inputs, 1, features, scratch);
  float* grad_weight = Data(outputs, 1);
  kernels::DenseBackward(rows, features, p.num_hidden, q.data, q.weight, Data(inputs, 0), Data(outputs, 0),
                         grad_weight, p.no_bias ? nullptr : Data(outputs, 2), kernels::NumThreads());
  kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight, grad_weight,
                          p.num_hidden, features);
}

#ifdef BMXNET_CUDA
QuantizedInputs QuantizeGpu(const Params& p, ScaleOn scale_on, std::vector<MXTensor>* tensors, size_t data_index,
                            int64_t features, float* scratch, const OpResource& res) {
  return QuantizeInputsGpu(p.act_bit, p.weight_bit, p.scaling, scale_on, Data(tensors, data_index),
                           (*tensors)[data_index].size(), Data(tensors, data_index + 1), p.num_hidden, features,
                           scratch, res.get_cuda_stream());
}

void ForwardGpu(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[0], (*outputs)[0]);
  float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[0].size(), p.num_hidden, features));
  const QuantizedInputs q = QuantizeGpu(p, ScaleOn::kOutputs, inputs, 0, features, scratch, res);
  cuda::FloatDenseForward(q.data, q.weight, q.output_scale, p.no_bias ? nullptr : Data(inputs, 2), rows, features,
                          p.num_hidden, Data(outputs, 0), res.get_cuda_stream());
}

void BackwardGpu(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[1], (*inputs)[0]);
  float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[1].size(), p.num_hidden, features));
  const QuantizedInputs q = QuantizeGpu(p, ScaleOn::kWeights, inputs, 1, features, scratch, res);
  float* grad_weight = Data(outputs, 1);
  cuda::FloatDenseBackward(q.data, q.weight, Data(inputs, 0), rows, features, p.num_hidden, Data(outputs, 0),
                           grad_weight, p.no_bias ? nullptr : Data(outputs, 2), res.get_cuda_stream());
  cuda::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight, grad_weight,
                       p.num_hidden, features, scratch, res.get_cuda_stream());
}
#endif

// lib_api's entry points: packed nodes go to packed_fully_connected.cc.
MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(IsPackedLayer(kOp, attrs) ? packed_fully_connected::InputCount(attrs)
                                                         : InputCount(ParseQFullyConnected(attrs)));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) return packed_fully_connected::InferType(attrs, in_types, out_types);
    InferFloat32(kOp, InputCount(ParseQFullyConnected(attrs)), in_types, out_types);
  });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) return packed_fully_connected::InferShape(attrs, in_shapes, out_shapes);
    InferTrainableShape(ParseQFullyConnected(attrs), in_shapes, out_shapes);
  });
}

template <bool gpu>
MXReturnValue CreateNodeState(const Attributes& attrs, const MXContext&, const Shapes&, const std::vector<int>,
                              CustomStatefulOp** state) {
  return Guard([&] {
    if (IsPackedLayer(kOp, attrs)) {
      *state = packed_fully_connected::CreateState(attrs, gpu);
      return;
    }
#ifdef BMXNET_CUDA
    if (gpu) {
      *state = MakeState<const Params>(ParseQFullyConnected(attrs), ForwardGpu, BackwardGpu);
      return;
    }
#endif
    *state = MakeState<const Params>(ParseQFullyConnected(attrs), Forward, Backward);
  });
}

}  // namespace

REGISTER_OP(QFullyConnected)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateNodeState<true>, "gpu")
#endif
    .setCreateOpState(CreateNodeState<false>, "cpu");

}  // namespace bmxnet
