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
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  const int64_t features = flatten ? total / shape[0] : shape.back();
  return {features > 0 ? total / features : 0, features};
}

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = LayoutOf(ParseQFullyConnected(attrs)).count;
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types,
                        std::vector<int>* out_types) {
  return Guard([&] {
    std::vector<int> expected(in_types->size(), mxnet::ext::kFloat32);
    if (ParseQFullyConnected(attrs).binarized_weights_only) expected[1] = mxnet::ext::kInt64;
    InferTypes(kOp, expected, in_types, out_types);
  });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    const std::vector<unsigned int>& data = (*in_shapes)[0];
    if (data.size() < (p.flatten ? 2u : 1u))
      throw ParamError(std::string(kOp) + ": data shape " + ShapeString(data) +
                       (p.flatten ? " needs at least 2 dimensions" : " needs at least 1 dimension"));
    const std::vector<int64_t> dims(data.begin(), data.end());
    const unsigned int hidden = static_cast<unsigned int>(p.num_hidden);
    const unsigned int features = static_cast<unsigned int>(Flattened(p.flatten, dims).second);
    const InputLayout layout = LayoutOf(p);
    if (p.binarized_weights_only)
      ExpectShape(kOp, "packed weight", &(*in_shapes)[1],
                  {hidden, static_cast<unsigned int>(kernels::WordsFor(features))});
    else
      ExpectShape(kOp, "weight", &(*in_shapes)[1], {hidden, features});
    if (layout.scale >= 0) ExpectShape(kOp, "weight scale", &(*in_shapes)[layout.scale], {hidden});
    if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], {hidden});
    std::vector<unsigned int> out = p.flatten ? std::vector<unsigned int>{data[0]} : data;
    if (p.flatten) out.push_back(hidden); else out.back() = hidden;
    (*out_shapes)[0] = out;
  });
}

QuantizedInputs Quantize(const QFullyConnectedParams& p, std::vector<MXTensor>* tensors,
                         size_t data_index, int64_t features, float* scratch) {
  return QuantizeInputs(p.act_bit, p.weight_bit, p.scaling, Data(tensors, data_index),
                        (*tensors)[data_index].size(), Data(tensors, data_index + 1),
                        p.num_hidden, features, scratch);
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
    const auto rows_features = Flattened(p.flatten, (*inputs)[0].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (p.binarized_weights_only) return PackedForward(p, rows, features, inputs, Data(outputs, 0), res);
    float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[0].size(), p.num_hidden * features));
    const auto q = Quantize(p, inputs, 0, features, scratch);
    kernels::DenseForward(rows, features, p.num_hidden, q.data, q.weight,
                          p.no_bias ? nullptr : Data(inputs, 2), Data(outputs, 0),
                          kernels::NumThreads());
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
    const auto rows_features = Flattened(p.flatten, (*inputs)[1].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (p.binarized_weights_only) return PackedBackward(p, rows, features, inputs, outputs, res);
    float* scratch = AllocScratch(res, QuantizeScratchSize((*inputs)[1].size(), p.num_hidden * features));
    const auto q = Quantize(p, inputs, 1, features, scratch);
    float* grad_weight = Data(outputs, 1);
    kernels::DenseBackward(rows, features, p.num_hidden, q.data, q.weight, Data(inputs, 0),
                           Data(outputs, 0), grad_weight, p.no_bias ? nullptr : Data(outputs, 2),
                           kernels::NumThreads());
    kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight,
                            grad_weight, p.num_hidden, features);
  });
}

#ifdef BMXNET_CUDA
QuantizedInputs QuantizeGpu(const QFullyConnectedParams& p, std::vector<MXTensor>* tensors, size_t data_index,
                            int64_t features, float* scratch, const OpResource& res) {
  return QuantizeInputsGpu(p.act_bit, p.weight_bit, p.scaling, Data(tensors, data_index),
                           (*tensors)[data_index].size(), Data(tensors, data_index + 1), p.num_hidden, features,
                           scratch, res.get_cuda_stream());
}

// Non-packed layers only: packed models are for inference.
MXReturnValue BackwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    if (p.binarized_weights_only)
      throw ParamError(std::string(kOp) + " on gpu: packed layers have no backward pass there; use cpu");
    const auto rows_features = Flattened(p.flatten, (*inputs)[1].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[1].size(), p.num_hidden, features));
    const QuantizedInputs q = QuantizeGpu(p, inputs, 1, features, scratch, res);
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
    const InputLayout layout = LayoutOf(p);
    const auto rows_features = Flattened(p.flatten, (*inputs)[0].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    if (!p.binarized_weights_only) {
      float* scratch = AllocGpuScratch(res, GpuQuantizeScratchSize((*inputs)[0].size(), p.num_hidden, features));
      const QuantizedInputs q = QuantizeGpu(p, inputs, 0, features, scratch, res);
      cuda::FloatDenseForward(q.data, q.weight, p.no_bias ? nullptr : Data(inputs, 2), rows, features, p.num_hidden,
                              Data(outputs, 0), res.get_cuda_stream());
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
