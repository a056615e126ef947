// ChannelConcat: inputs [N, C_i, ...] -> [N, sum C_i, ...], a copy per image and input.
// model-converter puts it in place of Concat(dim=1) in packed models: the same values,
// while MXNet 1.9's oneDNN Concat took 5-10x longer (MeliusNet's dense blocks concatenate
// the growing feature map once per layer). take_channels[i] > 0 takes only the first
// take_channels[i] channels of input i: the converter's stand-in for a slice_axis(begin=0)
// in front (MeliusNet's improvement blocks), which copied them once more.
#include <algorithm>
#include <cstring>

#include "kernels/cpu_features.h"
#include "kernels/thread_pool.h"
#include "op_state.h"
#ifdef BMXNET_CUDA
#include "cuda/launchers.h"
#endif

namespace bmxnet {
namespace {

constexpr const char* kOp = "ChannelConcat";

// The inputs these parameters call for.
size_t InputCount(const ChannelConcatParams& p) {
  return static_cast<size_t>(p.count);
}

size_t InputCount(const Attributes& attrs) { return InputCount(ParseChannelConcat(attrs)); }

MXReturnValue ParseAttrs(const Attributes& attrs, int* num_in, int* num_out) {
  return Guard([&] {
    *num_in = static_cast<int>(InputCount(attrs));
    *num_out = 1;
  });
}

// Channels input i contributes, of its `channels`.
int64_t Taken(const ChannelConcatParams& p, size_t i, int64_t channels) {
  return p.take_channels[i] > 0 ? p.take_channels[i] : channels;
}

MXReturnValue InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types) {
  return Guard([&] { InferFloat32(kOp, InputCount(attrs), in_types, out_types); });
}

MXReturnValue InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes) {
  return Guard([&] {
    const ChannelConcatParams p = ParseChannelConcat(attrs);
    CheckInputCount(kOp, InputCount(p), in_shapes->size());
    const std::vector<unsigned int>& first = (*in_shapes)[0];
    if (first.size() < 2) throw ParamError(std::string(kOp) + ": inputs need at least 2 dimensions, got " + ShapeString(first));
    std::vector<int64_t> out = Dims(first);
    out[1] = 0;
    for (size_t i = 0; i < in_shapes->size(); ++i) {
      const std::vector<unsigned int>& shape = (*in_shapes)[i];
      bool fits = shape.size() == first.size();
      for (size_t d = 0; fits && d < shape.size(); ++d) fits = d == 1 || shape[d] == first[d];
      if (!fits)
        throw ParamError(std::string(kOp) + ": input " + std::to_string(i) + " has shape " + ShapeString(shape) +
                         ", which differs from input 0 " + ShapeString(first) + " outside dimension 1");
      const int64_t channels = Dim(shape[1]);
      if (channels != kUnknown && p.take_channels[i] > channels)
        throw ParamError(std::string(kOp) + ": take_channels[" + std::to_string(i) + "]=" +
                         std::to_string(p.take_channels[i]) + " exceeds the " + std::to_string(channels) +
                         " channels of input " + std::to_string(i));
      const int64_t taken = p.take_channels[i] > 0 ? p.take_channels[i] : channels;
      out[1] = out[1] == kUnknown || taken == kUnknown ? kUnknown : out[1] + taken;
    }
    (*out_shapes)[0] = FittingShape(kOp, "output", out);
  });
}

// Floats per channel (the dimensions after 1).
int64_t Inner(const std::vector<int64_t>& shape) {
  int64_t inner = 1;
  for (size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  return inner;
}

// Copies between the pieces and the whole (to_whole: forward): piece i gives, per image,
// one run of its first taken * inner floats, at its offset in the image's run of C * inner;
// backward, the rest of a piece it did not give is zero (zero_rows).
template <typename CopyRows, typename ZeroRows>
void Move(const ChannelConcatParams& p, std::vector<MXTensor>* pieces, MXTensor* whole, bool to_whole,
          CopyRows copy_rows, ZeroRows zero_rows) {
  const int64_t batch = whole->shape[0], inner = Inner(whole->shape), total = whole->shape[1] * inner;
  float* all = whole->data<float>();
  int64_t offset = 0;
  for (size_t i = 0; i < pieces->size(); ++i) {
    MXTensor& piece_tensor = (*pieces)[i];
    const int64_t pitch = piece_tensor.shape[1] * inner, size = Taken(p, i, piece_tensor.shape[1]) * inner;
    float* piece = piece_tensor.data<float>();
    if (to_whole) {
      copy_rows(piece, pitch, all + offset, total, size, batch);
    } else {
      copy_rows(all + offset, total, piece, pitch, size, batch);
      if (size < pitch) zero_rows(piece + size, pitch, pitch - size, batch);
    }
    offset += size;
  }
}

// rows of `floats` floats, `pitch` floats apart, in pieces of up to kPiece floats that the
// pool's threads share (one core copies about half the bytes per second that two do).
void CopyRowsCpu(const float* source, int64_t source_pitch, float* destination, int64_t destination_pitch,
                 int64_t floats, int64_t rows) {
  constexpr int64_t kPiece = 16384;  // 64 KB
  const int64_t pieces = (floats + kPiece - 1) / kPiece;
  const int threads = rows * floats < 4 * kPiece ? 1 : kernels::NumThreads();
  kernels::ParallelFor(rows * pieces, threads, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / pieces, first = task % pieces * kPiece;
      std::memcpy(destination + r * destination_pitch + first, source + r * source_pitch + first,
                  std::min(kPiece, floats - first) * sizeof(float));
    }
  });
}

void ZeroRowsCpu(float* destination, int64_t pitch, int64_t floats, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(destination + r * pitch, floats, 0.0f);
}

void Forward(const ChannelConcatParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
             const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  Move(p, inputs, &(*outputs)[0], true, CopyRowsCpu, ZeroRowsCpu);
}

// inputs: [output gradient, forward inputs..., output]; outputs: the inputs' gradients
void Backward(const ChannelConcatParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
              const OpResource&) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  Move(p, outputs, &(*inputs)[0], false, CopyRowsCpu, ZeroRowsCpu);
}

#ifdef BMXNET_CUDA
auto GpuRows(const OpResource& res) {
  return [&res](const float* source, int64_t source_pitch, float* destination, int64_t destination_pitch,
                int64_t floats, int64_t rows) {
    const int64_t bytes = static_cast<int64_t>(sizeof(float));
    cuda::CopyRows(source, source_pitch * bytes, destination, destination_pitch * bytes, floats * bytes, rows,
                   res.get_cuda_stream());
  };
}

auto GpuZeros(const OpResource& res) {
  return [&res](float* destination, int64_t pitch, int64_t floats, int64_t rows) {
    const int64_t bytes = static_cast<int64_t>(sizeof(float));
    cuda::ZeroRows(destination, pitch * bytes, floats * bytes, rows, res.get_cuda_stream());
  };
}

void ForwardGpu(const ChannelConcatParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), false, inputs->size(), outputs->size());
  Move(p, inputs, &(*outputs)[0], true, GpuRows(res), GpuZeros(res));
}

void BackwardGpu(const ChannelConcatParams& p, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                 const OpResource& res) {
  CheckTensorCounts(kOp, InputCount(p), true, inputs->size(), outputs->size());
  Move(p, outputs, &(*inputs)[0], false, GpuRows(res), GpuZeros(res));
}
#endif

}  // namespace

REGISTER_OP(ChannelConcat)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
#ifdef BMXNET_CUDA
    .setCreateOpState(CreateState<ChannelConcatParams, ParseChannelConcat, ForwardGpu, BackwardGpu>, "gpu")
#endif
    .setCreateOpState(CreateState<ChannelConcatParams, ParseChannelConcat, Forward, Backward>, "cpu");

}  // namespace bmxnet
