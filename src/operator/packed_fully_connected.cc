// The packed QFullyConnected (binarized_weights_only=True): the weight is int64 [O, words]
// and the forward pass runs xnor-popcount, with the converter's optional scale and bias.
#include "packed_fully_connected.h"

#include "fully_connected_common.h"
#include "kernels/bitpack.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/xnor_conv.h"
#include "op_quantize.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace packed_fully_connected {
namespace {

constexpr const char* kOp = kFullyConnectedOp;
using Params = PackedFullyConnectedParams;

void Forward(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  const InputLayout layout = LayoutOf(p);
  CheckTensorCounts(kOp, layout.count, false, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[0], (*outputs)[0]);
  const int threads = kernels::NumThreads();
  uint64_t* packed = AllocScratch<uint64_t>(res, rows * kernels::WordsFor(features));
  kernels::PackRows(Data(inputs, 0), rows, features, packed, threads);
  kernels::BinaryDenseForward(rows, features, p.num_hidden, packed, (*inputs)[1].data<uint64_t>(),
                              OptionalData(inputs, layout.scale), OptionalData(inputs, layout.bias),
                              Data(outputs, 0), threads);
}

// Packed weights are constants: the data gradient uses the unpacked +-1 weights (times the
// scale), the weight and scale get zero gradients.
void Backward(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs, const OpResource& res) {
  const InputLayout layout = LayoutOf(p);  // input i of the forward is inputs[1 + i] here
  CheckTensorCounts(kOp, layout.count, true, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[1], (*inputs)[0]);
  float* weights = AllocScratch(res, p.num_hidden * features);
  kernels::UnpackConvWeights((*inputs)[2].data<uint64_t>(), p.num_hidden, features, 1, 1, weights);
  if (layout.scale >= 0) {
    ScaleRows(Data(inputs, 1 + layout.scale), p.num_hidden, features, weights);
    std::fill_n(Data(outputs, layout.scale), p.num_hidden, 0.0f);
  }
  kernels::DenseBackward(rows, features, p.num_hidden, nullptr, weights, Data(inputs, 0), Data(outputs, 0), nullptr,
                         OptionalData(outputs, layout.bias), kernels::NumThreads());
  std::fill_n((*outputs)[1].data<int64_t>(), (*outputs)[1].size(), int64_t(0));
}

#ifdef BMXNET_CUDA
void ForwardGpu(const Params& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  const InputLayout layout = LayoutOf(p);
  CheckTensorCounts(kOp, layout.count, false, inputs->size(), outputs->size());
  const auto [rows, features] = CheckedRows(p.flatten, p.num_hidden, (*inputs)[0], (*outputs)[0]);
  uint64_t* packed = AllocGpuScratch<uint64_t>(res, rows * kernels::WordsFor(features));
  cuda::PackRows(Data(inputs, 0), rows, features, packed, res.get_cuda_stream());
  cuda::Dense(packed, (*inputs)[1].data<uint64_t>(), OptionalData(inputs, layout.scale),
              OptionalData(inputs, layout.bias), rows, features, p.num_hidden, Data(outputs, 0),
              res.get_cuda_stream());
}

void BackwardGpu(const Params&, std::vector<MXTensor>*, std::vector<MXTensor>*, const OpResource&) {
  throw ParamError(std::string(kOp) + " on gpu: packed layers have no backward pass there; use cpu");
}
#endif

}  // namespace

size_t InputCount(const Attributes& attrs) { return static_cast<size_t>(LayoutOf(ParsePackedFullyConnected(attrs)).count); }

void InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  InferPackedTypes(kOp, InputCount(attrs), in_types, out_types);
}

void InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  const Params p = ParsePackedFullyConnected(attrs);
  const InputLayout layout = LayoutOf(p);
  CheckInputCount(kOp, layout.count, in_shapes->size());
  const std::vector<unsigned int>& data = (*in_shapes)[0];
  const int64_t features = FeaturesOf(p.flatten, data), hidden = p.num_hidden;
  if (p.packed_features > 0 && features != kUnknown && features != p.packed_features)
    throw ParamError(std::string(kOp) + ": the packed weight holds " + std::to_string(p.packed_features) +
                     " features (packed_features), the data gives " + std::to_string(features) + " (shape " +
                     ShapeString(data) + ", flatten=" + (p.flatten ? "True" : "False") + ")");
  ExpectShape(kOp, "packed weight", &(*in_shapes)[1],
              FittingShape(kOp, "packed weight", {hidden, features == kUnknown ? kUnknown : kernels::WordsFor(features)}));
  if (layout.scale >= 0) ExpectShape(kOp, "weight scale", &(*in_shapes)[layout.scale], FittingShape(kOp, "weight scale", {hidden}));
  if (layout.bias >= 0) ExpectShape(kOp, "bias", &(*in_shapes)[layout.bias], FittingShape(kOp, "bias", {hidden}));
  (*out_shapes)[0] = DenseOutput(p.flatten, hidden, data);
}

CustomStatefulOp* CreateState(const Attributes& attrs, bool gpu) {
#ifdef BMXNET_CUDA
  if (gpu) return MakeState<const Params>(ParsePackedFullyConnected(attrs), ForwardGpu, BackwardGpu);
#endif
  if (gpu) throw ParamError(std::string(kOp) + ": this build of bmxnet has no CUDA kernels");
  return MakeState<const Params>(ParsePackedFullyConnected(attrs), Forward, Backward);
}

}  // namespace packed_fully_connected
}  // namespace bmxnet
