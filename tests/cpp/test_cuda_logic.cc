// Host harness of the CUDA kernels' logic: the per-thread functions of
// src/operator/cuda/binary_logic.h run here over the grid/block decomposition the kernels
// launch (loops over blockIdx and threadIdx, the weight tile staged as the kernel stages it
// in shared memory) and are compared with the CPU kernels, which test_kernels checks
// against float references. Runs without nvcc or a GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cuda/binary_logic.h"
#include "cuda/float_logic.h"
#include "kernels/batchnorm.h"
#include "kernels/bitpack.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/pooling.h"
#include "kernels/quantize.h"
#include "kernels/xnor_conv.h"

using namespace bmxnet;
using cuda::Dim3;
using cuda::ConvShape;

namespace {

template <typename Body>
void ForEachBlock(const Dim3& grid, Body body) {
  for (int64_t z = 0; z < grid.z; ++z)
    for (int64_t y = 0; y < grid.y; ++y)
      for (int64_t x = 0; x < grid.x; ++x) body(x, y, z);
}

kernels::ConvGeometry CpuGeometry(const ConvShape& s) {
  kernels::ConvGeometry g;
  g.batch = s.batch;
  g.in_channels = s.channels;
  g.in_height = s.height;
  g.in_width = s.width;
  g.out_channels = s.filters;
  g.kernel_h = s.kernel_h;
  g.kernel_w = s.kernel_w;
  g.stride_h = s.stride_h;
  g.stride_w = s.stride_w;
  g.pad_h = s.pad_h;
  g.pad_w = s.pad_w;
  g.dilate_h = s.dilate_h;
  g.dilate_w = s.dilate_w;
  g.groups = s.groups;
  g.pad_value = s.minus_one_padding ? -1.0f : 0.0f;
  return g;
}

std::string Name(const ConvShape& s) {
  char text[200];
  std::snprintf(text, sizeof(text), "n%ld c%ld %ldx%ld o%ld k%ldx%ld s%ld p%ld d%ld g%ld pad%s",
                long(s.batch), long(s.channels), long(s.height), long(s.width), long(s.filters),
                long(s.kernel_h), long(s.kernel_w), long(s.stride_h), long(s.pad_h), long(s.dilate_h),
                long(s.groups), s.minus_one_padding ? "-1" : "0");
  return text;
}

// Packing, weight packing and the convolution of one shape, with scale, bias, residual
// and (for the packing) per-channel thresholds.
void TestConvolution(const ConvShape& s, std::mt19937* rng) {
  const kernels::ConvGeometry g = CpuGeometry(s);
  const std::string name = Name(s);
  const auto x = Random(s.batch * s.channels * s.InSpatial(), rng);
  const auto w = Random(s.filters * s.PerGroup() * s.Taps(), rng);
  const auto scale = Random(s.filters, rng), bias = Random(s.filters, rng);
  const int64_t out_size = s.batch * s.filters * s.OutSpatial();
  const auto residual = Random(out_size, rng);

  // activations: every thread of every block writes its word
  const int64_t packed_words = s.batch * s.InSpatial() * s.groups * s.Words();
  std::vector<uint64_t> expected_x(packed_words), packed_x(packed_words, 0xdeadbeef);
  kernels::PackActivationsNCHW(x.data(), s.batch, s.channels, s.height, s.width, s.groups, expected_x.data(), 1,
                               kernels::Isa::kPortable);
  const kernels::ChannelPieces whole = kernels::ChannelPieces::Whole(x.data(), s.channels, s.InSpatial());
  ForEachBlock(cuda::PackGrid(s), [&](int64_t bx, int64_t by, int64_t) {
    for (int t = 0; t < cuda::kPackThreads; ++t)
      cuda::PackActivationThread(s, whole, nullptr, nullptr, bx, by, t, packed_x.data());
  });
  Check(packed_x == expected_x, name + ": activation packing");
  // the same channels from two tensors cut at 2C/3 + 1 (inside a word once C > 64)
  const int64_t cut = std::min<int64_t>(s.channels - 1, 2 * s.channels / 3 + 1);
  if (cut > 0) {
    std::vector<float> head(s.batch * cut * s.InSpatial()), tail(s.batch * (s.channels - cut) * s.InSpatial());
    for (int64_t n = 0; n < s.batch; ++n) {
      const auto image = x.begin() + n * s.channels * s.InSpatial();
      std::copy(image, image + cut * s.InSpatial(), head.begin() + n * cut * s.InSpatial());
      std::copy(image + cut * s.InSpatial(), image + s.channels * s.InSpatial(),
                tail.begin() + n * (s.channels - cut) * s.InSpatial());
    }
    kernels::ChannelPieces pieces = kernels::ChannelPieces::Whole(head.data(), cut, s.InSpatial());
    pieces.Add(tail.data(), s.channels - cut);
    std::vector<uint64_t> from_pieces(packed_words, 0xdeadbeef);
    ForEachBlock(cuda::PackGrid(s), [&](int64_t bx, int64_t by, int64_t) {
      for (int t = 0; t < cuda::kPackThreads; ++t)
        cuda::PackActivationThread(s, pieces, nullptr, nullptr, bx, by, t, from_pieces.data());
    });
    Check(from_pieces == expected_x, name + ": activation packing from two channel pieces");
  }

  std::vector<float> thresholds(2 * s.channels);
  for (int64_t c = 0; c < s.channels; ++c) {
    thresholds[c] = c % 3 ? 1.0f : -1.0f;
    thresholds[s.channels + c] = 0.1f * static_cast<float>(c % 7) - 0.3f;
  }
  std::vector<uint64_t> expected_t(packed_words), packed_t(packed_words);
  kernels::PackActivationsNCHW(x.data(), s.batch, s.channels, s.height, s.width, s.groups, expected_t.data(), 1,
                               kernels::Isa::kPortable, {thresholds.data(), thresholds.data() + s.channels});
  ForEachBlock(cuda::PackGrid(s), [&](int64_t bx, int64_t by, int64_t) {
    for (int t = 0; t < cuda::kPackThreads; ++t)
      cuda::PackActivationThread(s, whole, thresholds.data(), thresholds.data() + s.channels, bx, by, t,
                                 packed_t.data());
  });
  Check(packed_t == expected_t, name + ": packing against thresholds");

  // weights come packed (by the converter, or kernels::PackConvWeights)
  std::vector<uint64_t> expected_w(s.filters * s.Depth());
  kernels::PackConvWeights(w.data(), s.filters, s.PerGroup(), s.kernel_h, s.kernel_w, expected_w.data());

  // convolution: each block stages its weight tile, then every thread computes its pixel
  std::vector<float> expected(out_size), y(out_size, -7.0f);
  std::vector<uint64_t> padded(kernels::PackedInputWords(g));
  kernels::PackAndConvolve(g, whole, {}, padded.data(), expected_w.data(), scale.data(), bias.data(), residual.data(),
                           expected.data(), 1, kernels::Isa::kPortable);
  std::vector<uint64_t> shared_tile(cuda::kConvFilters * s.Depth());
  const auto convolve = [&](const ConvShape& shape, const float* with) {
    ForEachBlock(cuda::ConvGrid(shape), [&](int64_t bx, int64_t by, int64_t bz) {
      const uint64_t* tile = expected_w.data() + cuda::ConvTileFirstFilter(shape, by, bz) * shape.Depth();
      std::copy(tile, tile + cuda::ConvTileFilters(shape, by) * shape.Depth(), shared_tile.begin());
      for (int t = 0; t < cuda::kConvThreads; ++t)
        cuda::ConvThread(shape, expected_x.data(), shared_tile.data(), scale.data(), bias.data(), with, bx, by, bz,
                         t, y.data());
    });
  };
  convolve(s, residual.data());
  Check(y == expected, name + ": convolution");

  // the residual as the last channels of a wider tensor (ConvShape::residual_skip)
  ConvShape skipping = s;
  skipping.residual_skip = 2;
  const auto wider = Random(s.batch * (s.filters + skipping.residual_skip) * s.OutSpatial(), rng);
  kernels::PackAndConvolve(g, whole, {}, padded.data(), expected_w.data(), scale.data(), bias.data(),
                           {wider.data(), skipping.residual_skip}, expected.data(), 1, kernels::Isa::kPortable);
  convolve(skipping, wider.data());
  Check(y == expected, name + ": convolution with a residual skipping channels");
}

void TestConvolutions() {
  std::mt19937 rng(17);
  // channel counts below, at and above word and warp sizes; spatial sizes leaving ragged
  // pixel blocks; filter counts leaving ragged filter tiles
  const ConvShape cases[] = {
      {1, 1, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},
      {2, 37, 9, 7, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},
      {1, 64, 12, 13, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, false},
      {1, 65, 8, 8, 33, 3, 3, 1, 1, 2, 2, 2, 2, 1, false},
      {2, 96, 6, 11, 24, 3, 1, 1, 1, 1, 0, 1, 1, 3, false},
      {1, 129, 15, 15, 20, 5, 5, 2, 1, 2, 2, 1, 1, 1, true},
      {1, 200, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, 1, 4, true},
      {1, 31, 12, 12, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},
      {1, 256, 14, 14, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},
  };
  for (const ConvShape& s : cases) TestConvolution(s, &rng);
  // random shapes
  std::uniform_int_distribution<int> pick(0, 1000);
  for (int i = 0; i < 12; ++i) {
    const int64_t groups = 1 + pick(rng) % 3;
    const int64_t k = 1 + 2 * (pick(rng) % 2);
    ConvShape s{1 + pick(rng) % 2, groups * (1 + pick(rng) % 90), 3 + pick(rng) % 14, 3 + pick(rng) % 14,
                 groups * (1 + pick(rng) % 40), k, k, 1 + pick(rng) % 2, 1 + pick(rng) % 2, pick(rng) % 2,
                 pick(rng) % 2, 1 + pick(rng) % 2, 1, groups, pick(rng) % 2 == 0};
    s.pad_w = s.pad_h;
    s.dilate_w = s.dilate_h;
    if (s.OutHeight() < 1 || s.OutWidth() < 1) continue;
    TestConvolution(s, &rng);
  }
}

void TestDense() {
  std::mt19937 rng(23);
  for (int64_t features : {1, 63, 64, 65, 300}) {
    const int64_t rows = 19, outputs = 21;  // neither a multiple of the 16 x 16 tile
    const auto x = Random(rows * features, &rng), w = Random(outputs * features, &rng);
    const auto scale = Random(outputs, &rng), bias = Random(outputs, &rng);
    const int64_t words = (features + 63) / 64;
    std::vector<uint64_t> px(rows * words), pw(outputs * words), gx(rows * words, 7);
    kernels::PackRows(x.data(), rows, features, px.data(), 1);
    kernels::PackRows(w.data(), outputs, features, pw.data(), 1);
    // rows packed as [N, C, 1, 1] images, as the CUDA PackRows launches them
    const ConvShape rows_as_images{rows, features, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, false};
    ForEachBlock(cuda::PackGrid(rows_as_images), [&](int64_t bx, int64_t by, int64_t) {
      for (int t = 0; t < cuda::kPackThreads; ++t)
        cuda::PackActivationThread(rows_as_images, kernels::ChannelPieces::Whole(x.data(), features, 1), nullptr,
                                   nullptr, bx, by, t, gx.data());
    });
    Check(gx == px, "dense row packing k=" + std::to_string(features));
    std::vector<float> expected(rows * outputs), y(rows * outputs, -7.0f);
    kernels::BinaryDenseForward(rows, features, outputs, px.data(), pw.data(), scale.data(), bias.data(),
                                expected.data(), 1, kernels::Isa::kPortable);
    ForEachBlock(cuda::DenseGrid(rows, outputs), [&](int64_t bx, int64_t by, int64_t) {
      for (int ty = 0; ty < cuda::kDenseTile; ++ty)
        for (int tx = 0; tx < cuda::kDenseTile; ++tx)
          cuda::DenseThread(px.data(), pw.data(), scale.data(), bias.data(), rows, features, outputs, bx, by, tx, ty,
                            y.data());
    });
    Check(y == expected, "dense k=" + std::to_string(features));
  }
}

void TestActivations() {
  std::mt19937 rng(29);
  const auto x = Random(1001, &rng, false, 2.0f), dy = Random(1001, &rng);
  for (int bits : {1, 2, 4, 32})
    for (auto method : {kernels::Estimator::kSte, kernels::Estimator::kApproxSign, kernels::Estimator::kSwishSign}) {
      const kernels::ActivationSpec spec{bits, method, 1.3f, 5.0f};
      std::vector<float> ey(x.size()), edx(x.size()), y(x.size()), dx(x.size());
      kernels::QuantizeActivation(spec, x.data(), ey.data(), x.size());
      kernels::ActivationGradient(spec, x.data(), dy.data(), edx.data(), x.size());
      for (size_t i = 0; i < x.size(); ++i) {  // one grid-stride thread per value
        y[i] = kernels::QuantizeActivationValue(bits, x[i]);
        dx[i] = kernels::ActivationGradientValue(bits, method, spec.clip, spec.beta, x[i], dy[i]);
      }
      const std::string name = "activation bits=" + std::to_string(bits) + " method=" + std::to_string(int(method));
      Check(y == ey, name + " forward");
      Check(dx == edx, name + " backward");
    }
}

double RelativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, scale = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return a.size() == b.size() ? m / scale : 1e30;
}

// The float layers (non-packed Q layers on a GPU): one thread per value, summing directly,
// against im2col + GEMM; the orders of summation differ, so within float rounding.
void TestFloatLayers() {
  std::mt19937 rng(37);
  const ConvShape cases[] = {
      {2, 5, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},
      {1, 6, 9, 9, 4, 3, 3, 2, 2, 1, 1, 2, 2, 2, true},
      {2, 9, 5, 8, 6, 1, 3, 1, 2, 0, 1, 1, 1, 3, false},
  };
  for (const ConvShape& s : cases) {
    const kernels::ConvGeometry g = CpuGeometry(s);
    const std::string name = "float " + Name(s);
    const auto x = Random(s.batch * s.channels * s.InSpatial(), &rng);
    const auto w = Random(s.filters * s.PerGroup() * s.Taps(), &rng), bias = Random(s.filters, &rng);
    const int64_t out_size = s.batch * s.filters * s.OutSpatial();
    const auto dy = Random(out_size, &rng);
    std::vector<float> scratch(g.ScratchSize()), ey(out_size), edx(x.size()), edw(w.size()), edb(s.filters);
    kernels::ConvForward(g, x.data(), w.data(), bias.data(), ey.data(), scratch.data(), 1);
    kernels::ConvBackward(g, x.data(), w.data(), dy.data(), edx.data(), edw.data(), edb.data(), scratch.data(), 1);
    std::vector<float> y(out_size), dx(x.size()), dw(w.size()), db(s.filters);
    for (int64_t i = 0; i < out_size; ++i) y[i] = cuda::ConvForwardValue(s, x.data(), w.data(), nullptr, bias.data(), i);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] = cuda::ConvDataGradValue(s, w.data(), dy.data(), i);
    for (size_t i = 0; i < dw.size(); ++i) dw[i] = cuda::ConvWeightGradValue(s, x.data(), dy.data(), i);
    for (int64_t o = 0; o < s.filters; ++o) db[o] = cuda::ConvBiasGradValue(s, dy.data(), o);
    Check(RelativeDiff(y, ey) < 1e-5, name + " forward");
    Check(RelativeDiff(dx, edx) < 1e-5, name + " data gradient");
    Check(RelativeDiff(dw, edw) < 1e-5, name + " weight gradient");
    Check(RelativeDiff(db, edb) < 1e-5, name + " bias gradient");
    // xnor scaling on +-1 values: the exact sum times the scale, plus the bias, rounded as
    // the packed layers finish it (FinishValue)
    std::vector<float> signs_x(x.size()), signs_w(w.size()), scale = Random(s.filters, &rng, false, 2.0f);
    for (size_t i = 0; i < x.size(); ++i) signs_x[i] = x[i] >= 0 ? 1.0f : -1.0f;
    for (size_t i = 0; i < w.size(); ++i) signs_w[i] = w[i] >= 0 ? 1.0f : -1.0f;
    bool finished = true;
    for (int64_t i = 0; i < out_size; ++i) {
      const int64_t o = i / s.OutSpatial() % s.filters;
      const float sum = cuda::ConvForwardValue(s, signs_x.data(), signs_w.data(), nullptr, nullptr, i);
      const float expected = kernels::FinishValue(static_cast<int32_t>(sum), scale.data(), bias.data(), nullptr, o, i);
      finished = finished && cuda::ConvForwardValue(s, signs_x.data(), signs_w.data(), scale.data(), bias.data(), i) == expected;
    }
    Check(finished, name + " forward with xnor scale as the packed layers finish it");
  }
  const int64_t rows = 7, features = 70, outputs = 9;
  const auto x = Random(rows * features, &rng), w = Random(outputs * features, &rng);
  const auto bias = Random(outputs, &rng), dy = Random(rows * outputs, &rng);
  std::vector<float> ey(rows * outputs), edx(x.size()), edw(w.size()), edb(outputs);
  kernels::DenseForward(rows, features, outputs, x.data(), w.data(), bias.data(), ey.data(), 1);
  kernels::DenseBackward(rows, features, outputs, x.data(), w.data(), dy.data(), edx.data(), edw.data(), edb.data(), 1);
  std::vector<float> y(ey.size()), dx(x.size()), dw(w.size()), db(outputs);
  for (size_t i = 0; i < y.size(); ++i)
    y[i] = cuda::DenseForwardValue(x.data(), w.data(), nullptr, bias.data(), features, outputs, i);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] = cuda::DenseDataGradValue(w.data(), dy.data(), features, outputs, i);
  for (size_t i = 0; i < dw.size(); ++i)
    dw[i] = cuda::DenseWeightGradValue(x.data(), dy.data(), rows, features, outputs, i);
  for (int64_t o = 0; o < outputs; ++o) db[o] = cuda::DenseBiasGradValue(dy.data(), rows, outputs, o);
  Check(RelativeDiff(y, ey) < 1e-5 && RelativeDiff(dx, edx) < 1e-5 && RelativeDiff(dw, edw) < 1e-5 &&
            RelativeDiff(db, edb) < 1e-5,
        "float dense forward and gradients");
}

// The reductions as the kernels run them: grid-stride partials per thread, then per block.
void TestWeightQuantizers() {
  std::mt19937 rng(31);
  const int64_t num_out = 13, per_out = 70, n = num_out * per_out;
  const auto w = Random(n, &rng, false, 2.0f);
  const int64_t blocks = cuda::CeilDiv(n, cuda::kReduceThreads), stride = blocks * cuda::kReduceThreads;
  float max_tanh = 0.0f;
  for (int64_t b = 0; b < blocks; ++b)
    for (int t = 0; t < cuda::kReduceThreads; ++t)
      max_tanh = std::max(max_tanh, cuda::MaxAbsTanhPartial(w.data(), n, b * cuda::kReduceThreads + t, stride));
  std::vector<float> means(num_out), cpu_means(num_out);  // one thread per row, as the kernel runs it
  for (int64_t row = 0; row < num_out; ++row) means[row] = kernels::RowMeanAbs(w.data(), per_out, row);
  kernels::XnorScales(w.data(), num_out, per_out, cpu_means.data());
  Check(means == cpu_means, "xnor scales bit for bit");
  for (int bits : {1, 2, 4, 32})
    for (bool xnor : {false, true}) {
      std::vector<float> expected(n), q(n);
      kernels::QuantizeWeights(bits, xnor, w.data(), expected.data(), num_out, per_out);
      for (int64_t i = 0; i < n; ++i)
        q[i] = cuda::QuantizeWeightValue(bits, w[i], max_tanh, xnor ? means.data() : nullptr, i / per_out);
      Check(q == expected, "weight quantization bits=" + std::to_string(bits) + (xnor ? " xnor" : ""));
      const auto dwq = Random(n, &rng);
      std::vector<float> expected_dw(n), dw(n);
      kernels::WeightGradient(bits, xnor, w.data(), dwq.data(), expected_dw.data(), num_out, per_out);
      for (int64_t i = 0; i < n; ++i)
        dw[i] = cuda::WeightGradValue(bits, w[i], dwq[i], max_tanh, xnor ? means.data() : nullptr, i / per_out);
      Check(RelativeDiff(dw, expected_dw) < 1e-5,
            "weight gradient bits=" + std::to_string(bits) + (xnor ? " xnor" : ""));
    }
}

// (N, H, W, C) -> (N, C, H, W) of n images of c channels of h x w.
std::vector<float> ToNchw(const std::vector<float>& nhwc, int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<float> nchw(nhwc.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t pixel = 0; pixel < h * w; ++pixel)
        nchw[(i * c + ch) * h * w + pixel] = nhwc[(i * h * w + pixel) * c + ch];
  return nchw;
}

// PoolValue, one output per thread as the CUDA kernel runs it, against PoolForward on every
// kernel path (whose vector blocks cover the inner windows), over strides 1-3, padding,
// partial vectors, both count modes and the division at each tap, in both layouts (5
// channels fill no vector of channels, 45 several and a remainder); channels-last values
// also against the NCHW ones of the same tensor.
void TestPooling() {
  std::mt19937 rng(11);
  struct Case { int64_t h, w, k, s, p; } cases[] = {{7, 7, 3, 2, 1}, {9, 30, 2, 2, 0}, {12, 40, 3, 1, 1},
                                                    {5, 11, 3, 3, 1}, {14, 14, 2, 1, 0}, {6, 6, 6, 1, 0}};
  for (const Case& c : cases)
    for (int mode = 0; mode < 4; ++mode)
      for (int64_t channels : {5, 45})
        for (bool channels_last : {false, true}) {
          kernels::PoolGeometry g;
          g.planes = 2 * channels;  // 2 images
          g.channels = channels;
          g.channels_last = channels_last;
          g.in_height = c.h;
          g.in_width = c.w;
          g.kernel_h = g.kernel_w = c.k;
          g.stride_h = g.stride_w = c.s;
          g.pad_h = g.pad_w = c.p;
          g.out_height = (c.h + 2 * c.p - c.k) / c.s + 1;
          g.out_width = (c.w + 2 * c.p - c.k) / c.s + 1;
          g.max = mode == 0;
          g.count_include_pad = mode == 1;
          g.divide_each_tap = mode == 3;
          std::vector<float> x = Random(g.planes * c.h * c.w, &rng);
          AddSpecialValues(&x);
          std::vector<float> expected(g.planes * g.out_height * g.out_width), y(expected.size());
          for (size_t i = 0; i < expected.size(); ++i) expected[i] = kernels::PoolValue(g, x.data(), i);
          const std::string name = "pooling " + std::to_string(c.h) + "x" + std::to_string(c.w) + " k" +
                                   std::to_string(c.k) + " s" + std::to_string(c.s) + " p" + std::to_string(c.p) +
                                   (g.max ? " max" : g.count_include_pad ? " avg" : " avg excluding padding") +
                                   (g.divide_each_tap ? " dividing each tap" : "") + " " +
                                   std::to_string(channels) + " channels" + (channels_last ? " NHWC" : "");
          for (kernels::Isa isa : {kernels::Isa::kPortable, kernels::Isa::kAvx2, kernels::Isa::kAvx512, kernels::Isa::kNeon}) {
            if (!kernels::RunsWithin(isa, kernels::ActiveIsa())) continue;
            std::fill(y.begin(), y.end(), 12345.0f);  // no path passes on an earlier path's values
            kernels::PoolForward(g, x.data(), y.data(), 2, isa);
            Check(SameValues(y, expected), name + " on " + kernels::IsaName(isa));
          }
          if (!channels_last) continue;
          kernels::PoolGeometry planar = g;
          planar.channels_last = false;
          const std::vector<float> x_nchw = ToNchw(x, 2, channels, c.h, c.w);
          std::vector<float> y_nchw(expected.size());
          for (size_t i = 0; i < y_nchw.size(); ++i) y_nchw[i] = kernels::PoolValue(planar, x_nchw.data(), i);
          Check(SameBits(ToNchw(expected, 2, channels, g.out_height, g.out_width), y_nchw), name + " against NCHW");
        }
}

// BatchNormElement, one value per thread as the CUDA kernel runs it, against
// BatchNormForward on every kernel path (vector body and scalar tail), for the three
// formulas, with and without gamma and the fused ReLU (which must give max(0, value)); and
// the gradient functions the CUDA kernels run against BatchNormBackward.
void TestBatchNorm() {
  std::mt19937 rng(12);
  const kernels::BatchNormFormula formulas[] = {kernels::BatchNormFormula::kOneDnnPlain,
                                                kernels::BatchNormFormula::kOneDnnBlocked,
                                                kernels::BatchNormFormula::kNative,
                                                kernels::BatchNormFormula::kNativeFused};
  for (kernels::BatchNormGeometry g :
       {kernels::BatchNormGeometry{2, 5, 13, false}, kernels::BatchNormGeometry{1, 3, 64, false},
        kernels::BatchNormGeometry{3, 7, 1, false}, kernels::BatchNormGeometry{2, 21, 30, true},
        kernels::BatchNormGeometry{1, 64, 16, true}, kernels::BatchNormGeometry{2, 3, 5, true},
        kernels::BatchNormGeometry{1, 70, 195, true}})
    for (kernels::BatchNormFormula formula : formulas)
      for (int variant = 0; variant < 4; ++variant) {
        const bool with_gamma = variant % 2 == 0;
        g.relu = variant >= 2;
        const int64_t n = g.batch * g.channels * g.spatial;
        const std::vector<float> x = Random(n, &rng), dy = Random(n, &rng), gamma = Random(g.channels, &rng),
                                 beta = Random(g.channels, &rng), mean = Random(g.channels, &rng);
        std::vector<float> variance = Random(g.channels, &rng);
        for (float& v : variance) v = v * v + 0.1f;
        const float* scale = with_gamma ? gamma.data() : nullptr;
        std::vector<float> negative_first_gamma = gamma;
        negative_first_gamma[0] = -std::fabs(gamma[0]) - 0.5f;
        std::vector<float> expected(n), y(n);
        kernels::BatchNormGeometry without_relu = g;
        without_relu.relu = false;
        bool relu_applied = true;
        for (int64_t i = 0; i < n; ++i) {
          expected[i] = kernels::BatchNormElement(g, formula, x.data(), scale, beta.data(), mean.data(),
                                                  variance.data(), 1e-5f, i);
          const float value = kernels::BatchNormElement(without_relu, formula, x.data(), scale, beta.data(),
                                                        mean.data(), variance.data(), 1e-5f, i);
          relu_applied &= expected[i] == (g.relu ? std::max(0.0f, value) : value);
        }
        const std::string name = "batch norm formula " + std::to_string(static_cast<int>(formula)) +
                                 (with_gamma ? "" : " fix_gamma") + " spatial " + std::to_string(g.spatial) +
                                 (g.channels_last ? " channels last" : "") + (g.relu ? " relu" : "");
        Check(relu_applied, name + ": the ReLU");
        for (kernels::Isa isa : {kernels::Isa::kPortable, kernels::Isa::kAvx2, kernels::Isa::kAvx512, kernels::Isa::kNeon}) {
          if (!kernels::RunsWithin(isa, kernels::ActiveIsa())) continue;
          std::fill(y.begin(), y.end(), 12345.0f);  // no path passes on an earlier path's values
          kernels::BatchNormForward(g, formula, x.data(), scale, beta.data(), mean.data(), variance.data(), 1e-5f,
                                    y.data(), 2, isa);
          Check(y == expected, name + " on " + kernels::IsaName(isa));
          // NaN, signed zeros and infinities go through every path as through the scalar one
          std::vector<float> special_x = x, special_expected(n), special_y(n), special_beta = beta;
          AddSpecialValues(&special_x);
          // channel 0 of image 0 gives -0 where x == mean: (+0 * negative factor) + -0
          special_beta[0] = -0.0f;
          const float* special_scale = scale ? negative_first_gamma.data() : nullptr;
          for (int64_t s = 0; s < g.spatial; s += 2) special_x[kernels::BatchNormInputIndex(g, s)] = mean[0];
          for (int64_t i = 0; i < n; ++i)
            special_expected[i] = kernels::BatchNormElement(g, formula, special_x.data(), special_scale,
                                                            special_beta.data(), mean.data(), variance.data(), 1e-5f, i);
          kernels::BatchNormForward(g, formula, special_x.data(), special_scale, special_beta.data(), mean.data(),
                                    variance.data(), 1e-5f, special_y.data(), 2, isa);
          Check(SameBits(special_y, special_expected), name + " with NaN, signed zeros, infinities on " +
                                                           kernels::IsaName(isa));
        }
        std::vector<float> dx(n), dgamma(g.channels), dbeta(g.channels), dmean(g.channels), dvar(g.channels);
        kernels::BatchNormBackward(g, formula, x.data(), scale, mean.data(), variance.data(), 1e-5f, dy.data(),
                                   expected.data(), dx.data(), dgamma.data(), dbeta.data(), dmean.data(), dvar.data(), 2);
        // against the calculus of y = (x - mean) * gamma / sqrt(var + eps) + beta in double
        // (then the ReLU's mask), written out here independently of batchnorm.h
        bool close = true;
        const auto near = [](double got, double want) { return std::fabs(got - want) <= 1e-4 * (1.0 + std::fabs(want)); };
        for (int64_t c = 0; c < g.channels; ++c) {
          const double gam = scale ? scale[c] : 1.0, root = std::sqrt(double(variance[c]) + double(1e-5f));
          double sum_dy = 0, sum_dy_centered = 0;
          for (int64_t b = 0; b < g.batch; ++b)
            for (int64_t sp = 0; sp < g.spatial; ++sp) {
              const int64_t out = (b * g.channels + c) * g.spatial + sp;
              const int64_t in = g.channels_last ? (b * g.spatial + sp) * g.channels + c : out;
              const double grad = g.relu && !(expected[out] > 0.0f) ? 0.0 : dy[out];
              sum_dy += grad;
              sum_dy_centered += grad * (double(x[in]) - mean[c]);
              close &= near(dx[in], grad * gam / root);
            }
          close &= near(dbeta[c], sum_dy) && near(dmean[c], -sum_dy * gam / root) &&
                   near(dgamma[c], scale ? sum_dy_centered / root : 0.0) &&
                   near(dvar[c], -0.5 * sum_dy_centered * gam / (root * root * root));
        }
        const bool same = close;
        Check(same, name + " gradients");
      }
}

}  // namespace

int main() {
  TestConvolutions();
  TestDense();
  TestActivations();
  TestWeightQuantizers();
  TestFloatLayers();
  TestPooling();
  TestBatchNorm();
  std::printf("cuda logic on the host: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
