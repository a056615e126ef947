// PlainBatchNorm: MXNet's BatchNorm in inference (axis 1, moving statistics), value for
// value, on plain float tensors. inputs: data [N, C, ...], gamma, beta, moving_mean,
// moving_var (each [C]). model-converter puts it in place of a BatchNorm whose input a
// packed model hands on as plain NCHW, with blocked=True where the float-simulated model
// gave MXNet a oneDNN-blocked tensor there (MXNet's formula depends on it:
// kernels/batchnorm.h). With channels_last=True it reads (N, H, W, C) data, such as a
// transpose of a oneDNN tensor that is NHWC inside hands on with a plain copy, and writes
// (N, C, H, W). With act_type="relu" a ReLU follows in the same pass (the converter fuses
// the Activation that read it). Its gradient is that of the same function (the moving
// statistics are inputs like the others).
#include <cctype>
#include <cstdlib>
#include <string>

#include "kernels/batchnorm.h"
#include "kernels/cpu_features.h"
#include "op_state.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "PlainBatchNorm";
constexpr const char* kParams[] = {"gamma", "beta", "moving_mean", "moving_var"};

// The inputs these parameters call for.
size_t InputCount(const PlainBatchNormParams&) {
  return 5;  // data, gamma, beta, moving_mean, moving_var
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParsePlainBatchNorm(attrs)); }

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(InputCount(attrs));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, InputCount(attrs), in_types, out_types); });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const PlainBatchNormParams p = ParsePlainBatchNorm(attrs);
    CheckInputCount(kOp, InputCount(p), in_shapes->size());
    const std::vector<unsigned int>& data = (*in_shapes)[0];
    if (p.channels_last && data.size() != 4)
      throw ParamError(std::string(kOp) + ": channels_last data must be 4-D (N, H, W, C), got shape " +
                       ShapeString(data));
    if (data.size() < 2)
      throw ParamError(std::string(kOp) + ": data needs a channel axis (N, C, ...), got shape " + ShapeString(data));
    const std::vector<int64_t> dims = Dims(data);
    const int64_t channels = p.channels_last ? dims[3] : dims[1];
    for (int i = 0; i < 4; ++i) ExpectShape(kOp, kParams[i], &(*in_shapes)[i + 1], FittingShape(kOp, kParams[i], {channels}));
    (*out_shapes)[0] = FittingShape(kOp, "output", p.channels_last ? std::vector<int64_t>{dims[0], dims[3], dims[1], dims[2]} : dims);
  });
}

kernels::BatchNormGeometry GeometryOf(const PlainBatchNormParams& p, const std::vector<int64_t>& shape) {
  kernels::BatchNormGeometry g;
  g.batch = shape[0];
  g.channels_last = p.channels_last;
  g.relu = p.relu;
  g.channels = p.channels_last ? shape[3] : shape[1];
  for (size_t d = 1; d < shape.size(); ++d)
    if (d != (p.channels_last ? 3u : 1u)) g.spatial *= shape[d];
  return g;
}

#if BMXNET_X86
// Whether oneDNN's jit BatchNorm multiplies and adds in one fused step here: it does with
// AVX2 and FMA (also when DNNL_MAX_CPU_ISA holds it to AVX2), not below.
bool OneDnnFuses() {
  static const bool fuses = [] {
    for (const char* name : {"DNNL_MAX_CPU_ISA", "MKLDNN_MAX_CPU_ISA"}) {
      std::string limit = std::getenv(name) ? std::getenv(name) : "";
      for (char& c : limit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (limit == "SSE41" || limit == "AVX") return false;
    }
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return fuses;
}
#endif

// The formula MXNet's BatchNorm used in the float model (kernels/batchnorm.h): on x86 it
// depends on the layout oneDNN handed it and the CPU; MXNet's aarch64 wheel fuses always.
kernels::BatchNormFormula FormulaOf([[maybe_unused]] const PlainBatchNormParams& p) {
#if BMXNET_X86
  if (!MxnetRunsOneDnn()) return kernels::BatchNormFormula::kNative;
  return p.blocked && OneDnnFuses() ? kernels::BatchNormFormula::kOneDnnBlocked
                                    : kernels::BatchNormFormula::kOneDnnPlain;
#else
  return MxnetRunsOneDnn() ? kernels::BatchNormFormula::kOneDnnBlocked : kernels::BatchNormFormula::kNativeFused;
#endif
}

void Forward(const PlainBatchNormParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
             const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  kernels::BatchNormForward(GeometryOf(p, (*inputs)[0].shape), FormulaOf(p), Data(inputs, 0),
                            p.fix_gamma ? nullptr : Data(inputs, 1), Data(inputs, 2), Data(inputs, 3),
                            Data(inputs, 4), p.eps, Data(outputs, 0), kernels::NumThreads(), kernels::ActiveIsa());
}

// inputs: [output gradient, data, gamma, beta, moving_mean, moving_var, output];
// outputs: the gradients of the five inputs.
void Backward(const PlainBatchNormParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
              const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  kernels::BatchNormBackward(GeometryOf(p, (*inputs)[1].shape), FormulaOf(p), Data(inputs, 1),
                             p.fix_gamma ? nullptr : Data(inputs, 2), Data(inputs, 4), Data(inputs, 5), p.eps,
                             Data(inputs, 0), Data(inputs, 6), Data(outputs, 0), Data(outputs, 1),
                             Data(outputs, 2), Data(outputs, 3), Data(outputs, 4), kernels::NumThreads());
}

#ifdef BMXNET_CUDA
void ForwardGpu(const PlainBatchNormParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  cuda::BatchNorm(GeometryOf(p, (*inputs)[0].shape), FormulaOf(p), Data(inputs, 0),
                  p.fix_gamma ? nullptr : Data(inputs, 1), Data(inputs, 2), Data(inputs, 3), Data(inputs, 4), p.eps,
                  Data(outputs, 0), res.get_cuda_stream());
}

void BackwardGpu(const PlainBatchNormParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  cuda::BatchNormGradient(GeometryOf(p, (*inputs)[1].shape), FormulaOf(p), Data(inputs, 1),
                          p.fix_gamma ? nullptr : Data(inputs, 2), Data(inputs, 4), Data(inputs, 5), p.eps,
                          Data(inputs, 0), Data(inputs, 6), Data(outputs, 0), Data(outputs, 1), Data(outputs, 2),
                          Data(outputs, 3), Data(outputs, 4), res.get_cuda_stream());
}
#endif

}  // namespace

REGISTER_OP(PlainBatchNorm)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateState<PlainBatchNormParams, ParsePlainBatchNorm, ForwardGpu, BackwardGpu>, "gpu")
#endif
    .setCreateOpState(CreateState<PlainBatchNormParams, ParsePlainBatchNorm, Forward, Backward>, "cpu");

}  // namespace bmxnet
