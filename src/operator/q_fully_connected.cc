// QFullyConnected: dense layer on act_bit-quantized data and weight_bit-quantized weights.
// Like QConvolution, the data quantizer passes gradients straight through.
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/quantize.h"
#include "op_common.h"

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
    *num_in = ParseQFullyConnected(attrs).no_bias ? 2 : 3;
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes&, std::vector<int>* in_types,
                        std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, in_types, out_types); });
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
    ExpectShape(kOp, "weight", &(*in_shapes)[1], {hidden, features});
    if (!p.no_bias) ExpectShape(kOp, "bias", &(*in_shapes)[2], {hidden});
    std::vector<unsigned int> out = p.flatten ? std::vector<unsigned int>{data[0]} : data;
    if (p.flatten) out.push_back(hidden); else out.back() = hidden;
    (*out_shapes)[0] = out;
  });
}

// Quantized data and weight in scratch (full-precision inputs are used as they are).
std::pair<const float*, const float*> Quantize(const QFullyConnectedParams& p,
                                               std::vector<MXTensor>* tensors, size_t data_index,
                                               int64_t features, float* scratch) {
  const float* data = Data(tensors, data_index);
  const float* weight = Data(tensors, data_index + 1);
  const int64_t data_size = (*tensors)[data_index].size();
  if (p.act_bit < 32) {
    kernels::ActivationSpec spec;
    spec.bits = p.act_bit;
    kernels::QuantizeActivation(spec, data, scratch, data_size);
    data = scratch;
    scratch += data_size;
  }
  if (p.weight_bit < 32 || p.scaling == Scaling::kXnor) {
    kernels::QuantizeWeights(p.weight_bit, p.scaling == Scaling::kXnor, weight, scratch,
                             p.num_hidden, features);
    weight = scratch;
  }
  return {data, weight};
}

MXReturnValue Forward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    const auto rows_features = Flattened(p.flatten, (*inputs)[0].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    float* scratch = AllocScratch(res, (*inputs)[0].size() + p.num_hidden * features);
    const auto q = Quantize(p, inputs, 0, features, scratch);
    kernels::DenseForward(rows, features, p.num_hidden, q.first, q.second,
                          p.no_bias ? nullptr : Data(inputs, 2), Data(outputs, 0),
                          kernels::NumThreads());
  });
}

// inputs: [output gradient, data, weight, (bias), output]; outputs: [d data, d weight, (d bias)]
MXReturnValue Backward(const Attributes& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  return Guard([&] {
    const QFullyConnectedParams p = ParseQFullyConnected(attrs);
    const auto rows_features = Flattened(p.flatten, (*inputs)[1].shape);
    const int64_t rows = rows_features.first, features = rows_features.second;
    float* scratch = AllocScratch(res, (*inputs)[1].size() + p.num_hidden * features);
    const auto q = Quantize(p, inputs, 1, features, scratch);
    float* grad_weight = Data(outputs, 1);
    kernels::DenseBackward(rows, features, p.num_hidden, q.first, q.second, Data(inputs, 0),
                           Data(outputs, 0), grad_weight, p.no_bias ? nullptr : Data(outputs, 2),
                           kernels::NumThreads());
    kernels::WeightGradient(p.weight_bit, p.scaling == Scaling::kXnor, Data(inputs, 2), grad_weight,
                            grad_weight, p.num_hidden, features);
  });
}

}  // namespace

REGISTER_OP(QFullyConnected)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
    .setForward(Forward, "cpu")
    .setBackward(Backward, "cpu");

}  // namespace bmxnet
