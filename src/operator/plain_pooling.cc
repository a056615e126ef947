// PlainPooling: MXNet's 2-D max or average Pooling (same parameters and values) on plain
// NCHW float tensors. model-converter puts it in place of Pooling in packed models, whose
// bmxnet layers hand on plain NCHW: MXNet 1.9 sends such a tensor through oneDNN's
// reference average pooling (simple_nchw, on AVX2) or first reorders it to a blocked
// layout and back (packed ResNetE-18 with AVX2: 7.7 -> 6.8 ms per image with this op).
#include "kernels/cpu_features.h"
#include "kernels/pooling.h"
#include "op_common.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "PlainPooling";

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    ParsePlainPooling(attrs);
    *num_in = 1;
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes&, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, in_types, out_types); });
}

// Outputs along one axis, as MXNet's Pooling counts them.
int64_t Outputs(const PlainPoolingParams& p, int64_t size, int d) {
  const int64_t span = size + 2 * p.pad[d] - p.kernel[d];
  if (span < 0)
    throw ParamError(std::string(kOp) + ": kernel " + ShapeString(p.kernel) + " is larger than the padded input (" +
                     std::to_string(size + 2 * p.pad[d]) + " along dimension " + std::to_string(d + 2) + ")");
  return 1 + (p.full_convention ? (span + p.stride[d] - 1) / p.stride[d] : span / p.stride[d]);
}

kernels::PoolGeometry GeometryOf(const PlainPoolingParams& p, const std::vector<int64_t>& shape) {
  if (shape.size() != 4) throw ParamError(std::string(kOp) + ": data must be 4-D NCHW, got " + ShapeString(shape));
  kernels::PoolGeometry g;
  g.planes = shape[0] * shape[1];
  g.in_height = shape[2];
  g.in_width = shape[3];
  g.max = p.max;
  g.count_include_pad = p.count_include_pad;
  if (p.global_pool) {
    g.kernel_h = g.in_height;
    g.kernel_w = g.in_width;
    g.divide_each_tap = !g.max && !MxnetRunsOneDnn();
    return g;  // one output, stride 1, no padding
  }
  g.kernel_h = p.kernel[0];
  g.kernel_w = p.kernel[1];
  g.stride_h = p.stride[0];
  g.stride_w = p.stride[1];
  g.pad_h = p.pad[0];
  g.pad_w = p.pad[1];
  g.out_height = Outputs(p, g.in_height, 0);
  g.out_width = Outputs(p, g.in_width, 1);
  const bool overhangs = p.full_convention && ((g.in_height + 2 * g.pad_h - g.kernel_h) % g.stride_h != 0 ||
                                                (g.in_width + 2 * g.pad_w - g.kernel_w) % g.stride_w != 0);
  g.divide_each_tap = !g.max && (overhangs || !MxnetRunsOneDnn());
  return g;
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const std::vector<unsigned int>& in = (*in_shapes)[0];
    const kernels::PoolGeometry g = GeometryOf(ParsePlainPooling(attrs), std::vector<int64_t>(in.begin(), in.end()));
    (*out_shapes)[0] = {in[0], in[1], static_cast<unsigned int>(g.out_height), static_cast<unsigned int>(g.out_width)};
  });
}

MXReturnValue Forward(const Attributes& attrs, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                      const OpResource&) {
  return Guard([&] {
    const kernels::PoolGeometry g = GeometryOf(ParsePlainPooling(attrs), (*inputs)[0].shape);
    kernels::PoolForward(g, Data(inputs, 0), Data(outputs, 0), kernels::NumThreads());
  });
}

// inputs: [output gradient, data, output]; outputs: [data gradient]
MXReturnValue Backward(const Attributes& attrs, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                       const OpResource&) {
  return Guard([&] {
    const kernels::PoolGeometry g = GeometryOf(ParsePlainPooling(attrs), (*inputs)[1].shape);
    kernels::PoolBackward(g, Data(inputs, 1), Data(inputs, 0), Data(outputs, 0), kernels::NumThreads());
  });
}

#ifdef BMXNET_CUDA
MXReturnValue ForwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) {
  return Guard([&] {
    const kernels::PoolGeometry g = GeometryOf(ParsePlainPooling(attrs), (*inputs)[0].shape);
    cuda::Pool(g, Data(inputs, 0), Data(outputs, 0), res.get_cuda_stream());
  });
}

MXReturnValue BackwardGpu(const Attributes& attrs, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  return Guard([&] {
    const kernels::PoolGeometry g = GeometryOf(ParsePlainPooling(attrs), (*inputs)[1].shape);
    cuda::PoolGradient(g, Data(inputs, 1), Data(inputs, 0), Data(outputs, 0), res.get_cuda_stream());
  });
}
#endif

}  // namespace

REGISTER_OP(PlainPooling)
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
