// QActivation: quantize activations to act_bit bits (sign for 1 bit) with a chosen
// gradient estimator. Formulas: docs/operators.md.
#include "kernels/quantize.h"
#include "op_state.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "QActivation";

// The inputs these parameters call for.
size_t InputCount(const QActivationParams&) {
  return 1;
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParseQActivation(attrs)); }

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(InputCount(attrs));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types,
                        std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, InputCount(attrs), in_types, out_types); });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    CheckInputCount(kOp, InputCount(attrs), in_shapes->size());
    (*out_shapes)[0] = FittingShape(kOp, "output", Dims((*in_shapes)[0]));
  });
}

void Forward(const QActivationParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
             const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  kernels::ActivationSpec spec = p.spec;
  if (p.backward_only) spec.bits = 32;  // identity forward
  kernels::QuantizeActivation(spec, Data(inputs, 0), Data(outputs, 0), (*inputs)[0].size());
}

// inputs: [output gradient, data, output]; outputs: [data gradient]
void Backward(const QActivationParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
              const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  kernels::ActivationGradient(p.spec, Data(inputs, 1), Data(inputs, 0), Data(outputs, 0),
                              (*inputs)[1].size());
}

#ifdef BMXNET_CUDA
void ForwardGpu(const QActivationParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  kernels::ActivationSpec spec = p.spec;
  if (p.backward_only) spec.bits = 32;
  cuda::QuantizeActivation(spec, Data(inputs, 0), Data(outputs, 0), (*inputs)[0].size(), res.get_cuda_stream());
}

void BackwardGpu(const QActivationParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  cuda::ActivationGradient(p.spec, Data(inputs, 1), Data(inputs, 0), Data(outputs, 0), (*inputs)[1].size(),
                           res.get_cuda_stream());
}
#endif

}  // namespace

REGISTER_OP(QActivation)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateState<QActivationParams, ParseQActivation, ForwardGpu, BackwardGpu>, "gpu")
#endif
    .setCreateOpState(CreateState<QActivationParams, ParseQActivation, Forward, Backward>, "cpu");

}  // namespace bmxnet
