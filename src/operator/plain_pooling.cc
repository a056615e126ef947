// PlainPooling: MXNet's 2-D max or average Pooling (same parameters and values) on plain
// NCHW float tensors. model-converter puts it in place of Pooling in packed models, whose
// bmxnet layers hand on plain NCHW: MXNet 1.9 sends such a tensor through oneDNN's
// reference average pooling (simple_nchw, on AVX2) or first reorders it to a blocked
// layout and back, both slower than this op (docs/performance.md).
// With data_pieces=k its k inputs are the data, joined along the channels where they lie
// (the converter's stand-in for a ChannelConcat in front: MeliusNet's transitions). With
// layout="NHWC" data and output are (N, H, W, C), as for MXNet's Pooling (the converter's
// stand-in for a Pooling of a oneDNN convolution's output, which MXNet hands on as NHWC).
#include "kernels/cpu_features.h"
#include "kernels/pooling.h"
#include "op_state.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "PlainPooling";

// The inputs these parameters call for.
size_t InputCount(const PlainPoolingParams& p) {
  return static_cast<size_t>(p.data_pieces);
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParsePlainPooling(attrs)); }

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(InputCount(attrs));
    *num_out = 1;
  });
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, InputCount(attrs), in_types, out_types); });
}

// Outputs along one axis, as MXNet's Pooling counts them.
int64_t Outputs(const PlainPoolingParams& p, int64_t size, int d) {
  const int64_t span = size + 2 * p.pad[d] - p.kernel[d];
  if (span < 0)
    throw ParamError(std::string(kOp) + ": kernel " + ShapeString(p.kernel) + " is larger than the padded input (" +
                     std::to_string(size + 2 * p.pad[d]) + " along dimension " +
                     std::to_string(d + (p.channels_last ? 1 : 2)) + ")");
  return 1 + (p.full_convention ? (span + p.stride[d] - 1) / p.stride[d] : span / p.stride[d]);
}

// A shape in p's layout as (N, C, H, W), and back.
std::vector<int64_t> AsNchw(const PlainPoolingParams& p, const std::vector<int64_t>& shape) {
  if (shape.size() != 4)
    throw ParamError(std::string(kOp) + ": data must be 4-D " + (p.channels_last ? "NHWC" : "NCHW") + ", got " +
                     ShapeString(shape));
  return p.channels_last ? std::vector<int64_t>{shape[0], shape[3], shape[1], shape[2]} : shape;
}

std::vector<int64_t> InLayout(const PlainPoolingParams& p, const std::vector<int64_t>& nchw) {
  return p.channels_last ? std::vector<int64_t>{nchw[0], nchw[2], nchw[3], nchw[1]} : nchw;
}

// The geometry of data of shape (N, C, H, W), whatever p's layout.
kernels::PoolGeometry GeometryOf(const PlainPoolingParams& p, const std::vector<int64_t>& nchw) {
  kernels::PoolGeometry g;
  g.planes = nchw[0] * nchw[1];
  g.channels_last = p.channels_last;
  g.channels = nchw[1];
  g.in_height = nchw[2];
  g.in_width = nchw[3];
  g.max = p.max;
  g.count_include_pad = p.count_include_pad;
  // MXNet's own loop, not oneDNN's, runs pooling_convention='full' when the last windows
  // reach past the padded input, judged by the kernel, stride and pad attributes even for
  // global pooling (which ignores them otherwise).
  const bool overhangs = p.full_convention && ((g.in_height + 2 * p.pad[0] - p.kernel[0]) % p.stride[0] != 0 ||
                                                (g.in_width + 2 * p.pad[1] - p.kernel[1]) % p.stride[1] != 0);
  g.divide_each_tap = !g.max && (overhangs || !MxnetRunsOneDnn());
  if (p.global_pool) {
    g.kernel_h = g.in_height;
    g.kernel_w = g.in_width;
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
  return g;
}

std::vector<size_t> Pieces(const PlainPoolingParams& p) {
  std::vector<size_t> indices(p.data_pieces);
  for (size_t j = 0; j < indices.size(); ++j) indices[j] = j;
  return indices;
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const PlainPoolingParams p = ParsePlainPooling(attrs);
    CheckInputCount(kOp, InputCount(p), in_shapes->size());
    const std::vector<int64_t> in = AsNchw(p, JoinedChannelsShape(kOp, *in_shapes, Pieces(p)));
    if (in[2] == kUnknown || in[3] == kUnknown) {
      (*out_shapes)[0] = FittingShape(kOp, "output", InLayout(p, {in[0], in[1], kUnknown, kUnknown}));
      return;
    }
    const kernels::PoolGeometry g = GeometryOf(p, {std::max<int64_t>(in[0], 1), std::max<int64_t>(in[1], 1), in[2], in[3]});
    (*out_shapes)[0] = FittingShape(kOp, "output", InLayout(p, {in[0], in[1], g.out_height, g.out_width}));
  });
}

// Calls run(geometry, in, piece, at) for each image and data piece: the piece's planes of
// that image start `in` floats into tensors[first + piece], their outputs `at` floats into
// the joined output, of result's shape (pooling is plane by plane). Without pieces, one
// call for the batch, so that small maps of several images still share the threads.
template <typename Run>
void ForEachPiece(const PlainPoolingParams& p, std::vector<MXTensor>* tensors, size_t first, const MXTensor& result,
                  Run run) {
  std::vector<int64_t> joined = AsNchw(p, (*tensors)[first].shape);  // one piece when NHWC
  for (int64_t j = 1; j < p.data_pieces; ++j) joined[1] += (*tensors)[first + j].shape[1];
  kernels::PoolGeometry g = GeometryOf(p, joined);
  CheckTensorShape(kOp, "output", result, InLayout(p, {joined[0], joined[1], g.out_height, g.out_width}));
  if (p.data_pieces == 1) return run(g, 0, first, 0);
  const int64_t in_plane = g.in_height * g.in_width, out_plane = g.out_height * g.out_width;
  for (int64_t n = 0; n < joined[0]; ++n)
    for (int64_t j = 0, channel = 0; j < p.data_pieces; ++j) {
      const int64_t channels = (*tensors)[first + j].shape[1];
      g.planes = channels;
      run(g, n * channels * in_plane, first + j, (n * joined[1] + channel) * out_plane);
      channel += channels;
    }
}

void Forward(const PlainPoolingParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
             const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  ForEachPiece(p, inputs, 0, (*outputs)[0], [&](const kernels::PoolGeometry& g, int64_t in, size_t j, int64_t at) {
    kernels::PoolForward(g, Data(inputs, j) + in, Data(outputs, 0) + at, kernels::NumThreads());
  });
}

// inputs: [output gradient, data pieces..., output]; outputs: [data pieces' gradients]
void Backward(const PlainPoolingParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
              const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  ForEachPiece(p, inputs, 1, (*inputs)[0], [&](const kernels::PoolGeometry& g, int64_t in, size_t j, int64_t at) {
    kernels::PoolBackward(g, Data(inputs, j) + in, Data(inputs, 0) + at, Data(outputs, j - 1) + in,
                          kernels::NumThreads());
  });
}

#ifdef BMXNET_CUDA
void ForwardGpu(const PlainPoolingParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  ForEachPiece(p, inputs, 0, (*outputs)[0], [&](const kernels::PoolGeometry& g, int64_t in, size_t j, int64_t at) {
    cuda::Pool(g, Data(inputs, j) + in, Data(outputs, 0) + at, res.get_cuda_stream());
  });
}

void BackwardGpu(const PlainPoolingParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  ForEachPiece(p, inputs, 1, (*inputs)[0], [&](const kernels::PoolGeometry& g, int64_t in, size_t j, int64_t at) {
    cuda::PoolGradient(g, Data(inputs, j) + in, Data(inputs, 0) + at, Data(outputs, j - 1) + in,
                       res.get_cuda_stream());
  });
}
#endif

}  // namespace

REGISTER_OP(PlainPooling)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateState<PlainPoolingParams, ParsePlainPooling, ForwardGpu, BackwardGpu>, "gpu")
#endif
    .setCreateOpState(CreateState<PlainPoolingParams, ParsePlainPooling, Forward, Backward>, "cpu");

}  // namespace bmxnet
