// Kernel tests without MXNet: im2col + GEMM convolution and dense layers against direct
// loops, the AVX2 quantizers against the portable ones, weight quantizers on known values,
// packed layers on every instruction set against the float ones, the kernels' thread pool.
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "kernels/binary_kernels.h"
#include "kernels/bitpack.h"
#include "kernels/conv_float.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/padded_input.h"
#include "kernels/quantize.h"
#include "kernels/sizes.h"
#include "kernels/thread_pool.h"
#include "kernels/xnor_conv.h"

using namespace bmxnet::kernels;

namespace {

// Every instruction set this CPU can run (BMXNET_ISA lowers the top one).
std::vector<Isa> AvailableIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512, Isa::kNeon})
    if (RunsWithin(isa, ActiveIsa())) isas.push_back(isa);
  return isas;
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return a.size() == b.size() ? m : 1e30;
}

// Direct convolution; reads padded positions as g.pad_value.
float InputAt(const ConvGeometry& g, const std::vector<float>& x, int64_t n, int64_t c, int64_t h,
              int64_t w) {
  if (h < 0 || h >= g.in_height || w < 0 || w >= g.in_width) return g.pad_value;
  return x[((n * g.in_channels + c) * g.in_height + h) * g.in_width + w];
}

template <typename Visit>
void ForEachTap(const ConvGeometry& g, Visit visit) {
  const int64_t cg = g.in_channels / g.groups, og = g.out_channels / g.groups;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t o = 0; o < g.out_channels; ++o)
      for (int64_t oh = 0; oh < g.OutHeight(); ++oh)
        for (int64_t ow = 0; ow < g.OutWidth(); ++ow)
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t i = 0; i < g.kernel_h; ++i)
              for (int64_t j = 0; j < g.kernel_w; ++j) {
                const int64_t channel = (o / og) * cg + c;
                const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilate_h;
                const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilate_w;
                const int64_t out = ((n * g.out_channels + o) * g.OutHeight() + oh) * g.OutWidth() + ow;
                const int64_t weight = ((o * cg + c) * g.kernel_h + i) * g.kernel_w + j;
                visit(n, channel, h, w, out, weight);
              }
}

void TestConvolution(const ConvGeometry& g, std::mt19937* rng, const std::string& name) {
  const int64_t out_size = g.batch * g.out_channels * g.OutHeight() * g.OutWidth();
  const auto x = Random(g.batch * g.in_channels * g.in_height * g.in_width, rng, true);
  const auto w = Random(g.out_channels * g.PatchSize(), rng, true);
  const auto bias = Random(g.out_channels, rng, false);
  const auto dy = Random(out_size, rng, false);

  std::vector<float> expected(out_size, 0.0f), expected_dx(x.size(), 0.0f), expected_dw(w.size(), 0.0f);
  ForEachTap(g, [&](int64_t n, int64_t c, int64_t h, int64_t wi, int64_t out, int64_t weight) {
    expected[out] += w[weight] * InputAt(g, x, n, c, h, wi);
    expected_dw[weight] += dy[out] * InputAt(g, x, n, c, h, wi);
    if (h >= 0 && h < g.in_height && wi >= 0 && wi < g.in_width)
      expected_dx[((n * g.in_channels + c) * g.in_height + h) * g.in_width + wi] += dy[out] * w[weight];
  });
  const int64_t spatial = g.OutHeight() * g.OutWidth();
  for (int64_t i = 0; i < out_size; ++i) expected[i] += bias[(i / spatial) % g.out_channels];

  std::vector<float> scratch(g.ScratchSize()), y(out_size), dx(x.size()), dw(w.size()),
      dbias(g.out_channels);
  ConvForward(g, x.data(), w.data(), bias.data(), y.data(), scratch.data(), 2);
  ConvBackward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), dbias.data(), scratch.data(), 2);
  std::vector<float> expected_dbias(g.out_channels, 0.0f);
  for (int64_t i = 0; i < out_size; ++i) expected_dbias[(i / spatial) % g.out_channels] += dy[i];

  // ±1 inputs: the forward sums are exact integers plus the bias
  Check(MaxDiff(y, expected) < 1e-4, name + " forward");
  Check(MaxDiff(dx, expected_dx) < 1e-3, name + " data gradient");
  Check(MaxDiff(dw, expected_dw) < 1e-3, name + " weight gradient");
  Check(MaxDiff(dbias, expected_dbias) < 1e-3, name + " bias gradient");
}

// A square-kernel convolution of 2 images of hw x (hw + 1) pixels.
struct Case {
  int64_t c, o, hw, k, stride, pad, dilate, groups;
  float pad_value;

  ConvGeometry Geometry() const {
    ConvGeometry g;
    g.batch = 2;
    g.in_channels = c;
    g.out_channels = o;
    g.in_height = hw;
    g.in_width = hw + 1;
    g.kernel_h = g.kernel_w = k;
    g.stride_h = g.stride_w = stride;
    g.pad_h = g.pad_w = pad;
    g.dilate_h = g.dilate_w = dilate;
    g.groups = groups;
    g.pad_value = pad_value;
    return g;
  }
  std::string Name() const {
    return "c=" + std::to_string(c) + " o=" + std::to_string(o) + " " + std::to_string(hw) + "x" +
           std::to_string(hw + 1) + " k=" + std::to_string(k) + " s=" + std::to_string(stride) +
           " g=" + std::to_string(groups);
  }
};

void TestConvolutions() {
  std::mt19937 rng(7);
  const std::vector<Case> cases = {
      {1, 1, 5, 1, 1, 0, 1, 1, 0.f},   {3, 5, 7, 3, 1, 1, 1, 1, 0.f},  {37, 8, 6, 3, 2, 1, 1, 1, -1.f},
      {65, 3, 9, 5, 1, 2, 1, 1, 0.f},  {4, 6, 9, 3, 1, 2, 2, 2, -1.f}, {6, 6, 8, 3, 2, 1, 1, 3, 0.f},
      {64, 64, 4, 1, 2, 0, 1, 1, 0.f}, {8, 4, 5, 1, 1, 0, 1, 2, 0.f}};
  for (const Case& c : cases) TestConvolution(c.Geometry(), &rng, "conv " + c.Name());
}

void TestDense() {
  std::mt19937 rng(11);
  const int64_t batch = 3, in = 37, out = 5;
  const auto x = Random(batch * in, &rng, false), w = Random(out * in, &rng, false);
  const auto bias = Random(out, &rng, false), dy = Random(batch * out, &rng, false);
  std::vector<float> y(batch * out), dx(x.size()), dw(w.size()), db(out);
  DenseForward(batch, in, out, x.data(), w.data(), bias.data(), y.data(), 2);
  DenseBackward(batch, in, out, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), 2);
  std::vector<float> ey(batch * out), edx(x.size(), 0.f), edw(w.size(), 0.f), edb(out, 0.f);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double sum = bias[o];
      for (int64_t k = 0; k < in; ++k) {
        sum += double(x[n * in + k]) * w[o * in + k];
        edx[n * in + k] += dy[n * out + o] * w[o * in + k];
        edw[o * in + k] += dy[n * out + o] * x[n * in + k];
      }
      ey[n * out + o] = float(sum);
      edb[o] += dy[n * out + o];
    }
  Check(MaxDiff(y, ey) < 1e-4 && MaxDiff(dx, edx) < 1e-4 && MaxDiff(dw, edw) < 1e-4 &&
            MaxDiff(db, edb) < 1e-4,
        "dense forward and backward");
}

void TestVectorQuantizersMatchPortable() {
  std::mt19937 rng(3);
  for (int64_t n : {1, 7, 8, 9, 31, 64, 1001}) {
    auto x = Random(n, &rng, false);
    x[0] = 0.0f;  // sign(0) = +1
    if (n > 2) x[1] = -0.0f;
    if (n > 3) x[2] = std::numeric_limits<float>::quiet_NaN();  // sign(NaN) = -1, no gradient
    if (n > 4) x[3] = -1.0f;  // on the clip: the gradient passes
    const auto dy = Random(n, &rng, false);
    std::vector<float> a(n), b(n), ga(n), gb(n);
    portable::SignActivation(x.data(), a.data(), n);
    portable::SteGradient(1.0f, x.data(), dy.data(), ga.data(), n);
    const ActivationSpec sign;  // 1 bit, ste, clip 1: the vectorised path of the active instruction set
    QuantizeActivation(sign, x.data(), b.data(), n);
    ActivationGradient(sign, x.data(), dy.data(), gb.data(), n);
    Check(a == b && ga == gb, std::string(IsaName(ActiveIsa())) + " sign/ste equal portable, n=" + std::to_string(n));
    Check(a[0] == 1.0f && (n <= 2 || a[1] == 1.0f), "sign(0) is +1, n=" + std::to_string(n));
    Check(n <= 3 || (a[2] == -1.0f && ga[2] == 0.0f), "sign(NaN) is -1 with no gradient, n=" + std::to_string(n));
  }
}

void TestWeightQuantizers() {
  // DoReFa 2 bits on tanh-normalised values: levels -1, -1/3, 1/3, 1
  const std::vector<float> w = {-3.0f, -0.1f, 0.1f, 3.0f};
  std::vector<float> q(4);
  QuantizeWeights(2, false, w.data(), q.data(), 1, 4);
  Check(std::fabs(q[0] + 1) < 1e-6 && std::fabs(q[1] + 1.f / 3) < 1e-6 &&
            std::fabs(q[2] - 1.f / 3) < 1e-6 && std::fabs(q[3] - 1) < 1e-6,
        "dorefa 2-bit levels");
  QuantizeWeights(1, true, w.data(), q.data(), 2, 2);  // rows (-3,-0.1), (0.1, 3)
  Check(std::fabs(q[0] + 1.55f) < 1e-6 && std::fabs(q[1] + 1.55f) < 1e-6 &&
            std::fabs(q[3] - 1.55f) < 1e-6,
        "xnor scaling is the row mean of |w|");
  std::vector<float> in_place = w;
  QuantizeWeights(1, true, in_place.data(), in_place.data(), 2, 2);
  Check(in_place == q, "weight quantization in place");
}

// x [N, C, H, W] copied into up to 3 tensors along the channels, cut at C/3 + 1 and 2C/3 + 2
// (inside 64-channel words, and inside groups, once there are enough channels).
struct SplitChannels {
  std::vector<std::vector<float>> copies;
  ChannelPieces pieces;

  SplitChannels(const std::vector<float>& x, const ConvGeometry& g) {
    const int64_t spatial = g.in_height * g.in_width;
    std::vector<int64_t> cuts = {0};
    for (int64_t cut : {g.in_channels / 3 + 1, 2 * g.in_channels / 3 + 2})
      if (cut > cuts.back() && cut < g.in_channels) cuts.push_back(cut);
    cuts.push_back(g.in_channels);
    pieces.spatial = spatial;
    for (size_t p = 0; p + 1 < cuts.size(); ++p) {
      const int64_t channels = cuts[p + 1] - cuts[p];
      copies.emplace_back(g.batch * channels * spatial);
      for (int64_t n = 0; n < g.batch; ++n)
        std::copy_n(x.begin() + (n * g.in_channels + cuts[p]) * spatial, channels * spatial,
                    copies.back().begin() + n * channels * spatial);
    }
    for (size_t p = 0; p < copies.size(); ++p) pieces.Add(copies[p].data(), cuts[p + 1] - cuts[p]);
  }
};

// Packed xnor convolution == float convolution of the signs, exactly, on each ISA build.
// all_signs_differ: inputs all +1 and weights all -1, so every bit mismatches and the
// kernels' narrow per-word counters fill as fast as they can.
void TestPackedConvolution(const ConvGeometry& g, std::mt19937* rng, const std::string& name,
                           bool all_signs_differ = false) {
  auto x = Random(g.batch * g.in_channels * g.in_height * g.in_width, rng, true);
  auto w = Random(g.out_channels * g.PatchSize(), rng, true);
  if (all_signs_differ) {
    for (float& v : x) v = 1.0f;
    for (float& v : w) v = -1.0f;
  }
  const auto scale = Random(g.out_channels, rng, false), bias = Random(g.out_channels, rng, false);
  const int64_t out_size = g.batch * g.out_channels * g.OutHeight() * g.OutWidth();
  const int64_t spatial = g.OutHeight() * g.OutWidth();

  std::vector<float> expected(out_size), scratch(g.ScratchSize());
  ConvForward(g, x.data(), w.data(), nullptr, expected.data(), scratch.data(), 2);
  for (int64_t i = 0; i < out_size; ++i) {
    const int64_t o = (i / spatial) % g.out_channels;
    expected[i] = expected[i] * scale[o] + bias[o];
  }
  const auto residual = Random(out_size, rng, false);
  std::vector<float> with_residual(out_size);
  for (int64_t i = 0; i < out_size; ++i) with_residual[i] = expected[i] + residual[i];
  // the same residual as the last channels of a wider tensor (ResidualInput::skipped_channels)
  constexpr int64_t kSkipped = 3;
  auto wider = Random(g.batch * (kSkipped + g.out_channels) * spatial, rng, false);
  for (int64_t i = 0; i < out_size; ++i) {
    const int64_t n = i / (g.out_channels * spatial);
    wider[i + (n + 1) * kSkipped * spatial] = residual[i];
  }
  const SplitChannels pieces(x, g);
  const int64_t words = WordsFor(g.in_channels / g.groups);
  std::vector<uint64_t> packed_x(g.batch * g.in_height * g.in_width * g.groups * words);
  std::vector<uint64_t> packed_w(g.out_channels * g.kernel_h * g.kernel_w * words);
  PackActivationsNCHW(x.data(), g.batch, g.in_channels, g.in_height, g.in_width, g.groups,
                      packed_x.data(), 2);
  PackConvWeights(w.data(), g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w,
                  packed_w.data());
  for (Isa isa : AvailableIsas()) {
    std::vector<uint64_t> isa_x(packed_x.size(), ~uint64_t(0));
    PackActivationsNCHW(x.data(), g.batch, g.in_channels, g.in_height, g.in_width, g.groups,
                        isa_x.data(), 2, isa);
    Check(isa_x == packed_x, name + " activation packing " + IsaName(isa));
    std::vector<float> y(out_size, -7.0f);
    std::vector<uint64_t> scratch_bits(PackedInputWords(g));
    PackAndConvolve(g, x.data(), {}, scratch_bits.data(), packed_w.data(), scale.data(), bias.data(), nullptr,
                    y.data(), 2, isa);
    Check(y == expected, name + " packed " + IsaName(isa));
    std::vector<float> fused(out_size, -7.0f);
    PackAndConvolve(g, x.data(), {}, scratch_bits.data(), packed_w.data(), scale.data(), bias.data(),
                    residual.data(), fused.data(), 3, isa);
    Check(fused == with_residual, name + " pack, convolve and add " + IsaName(isa));
    std::vector<float> skipping(out_size, -7.0f);
    PackAndConvolve(g, x.data(), {}, scratch_bits.data(), packed_w.data(), scale.data(), bias.data(),
                    {wider.data(), kSkipped}, skipping.data(), 3, isa);
    Check(skipping == with_residual, name + " pack, convolve and add skipping channels " + IsaName(isa));
    std::vector<float> from_pieces(out_size, -7.0f);
    PackAndConvolve(g, pieces.pieces, {}, scratch_bits.data(), packed_w.data(), scale.data(), bias.data(),
                    residual.data(), from_pieces.data(), 3, isa);
    Check(from_pieces == with_residual, name + " pack from channel pieces " + IsaName(isa));
  }
}

void TestPackedConvolutions() {
  std::mt19937 rng(5);
  int cases = 0;
  for (int64_t channels : {1, 3, 63, 64, 65, 129, 200}) {
    for (int64_t kernel : {1, 3, 5, 7}) {
      for (int64_t stride : {1, 2}) {
        ConvGeometry g;
        g.batch = 2;
        g.in_channels = channels;
        g.out_channels = 3 + (cases % 5);
        g.in_height = 5 + cases % 4 + (kernel == 7 ? 3 : 0);
        g.in_width = 6 + cases % 3;
        g.kernel_h = g.kernel_w = kernel;
        g.stride_h = g.stride_w = stride;
        g.pad_h = g.pad_w = kernel / 2 + (cases % 2);
        g.dilate_h = g.dilate_w = (cases % 3 == 0 && kernel > 1) ? 2 : 1;
        g.groups = (channels % 2 == 0 && cases % 2 == 0) ? 2 : 1;
        g.out_channels *= g.groups;
        g.pad_value = (cases % 4 < 2) ? 0.0f : -1.0f;
        if (g.OutHeight() < 1 || g.OutWidth() < 1) continue;
        TestPackedConvolution(g, &rng, "packed conv c=" + std::to_string(channels) + " k=" +
                                           std::to_string(kernel) + " s=" + std::to_string(stride) +
                                           " d=" + std::to_string(g.dilate_h) + " g=" +
                                           std::to_string(g.groups) + " pad_value=" +
                                           std::to_string(int(g.pad_value)));
        ++cases;
      }
    }
  }
  // Ragged tiles (spatial not a multiple of 16), several filter chunks of 64 with a
  // ragged last one, long rows of words; a depth of 1000 words (AVX2 byte counts flush
  // every 31 words); 1x1 layers large enough for
  // several threads, whose filter blocks pack the input each for itself (3 uneven
  // blocks; 2 blocks per group of 2).
  for (const Case& c : {Case{64, 130, 13, 3, 1, 1, 1, 1, 0.0f}, Case{512, 72, 7, 3, 1, 1, 1, 1, 0.0f},
                        Case{96, 66, 9, 3, 2, 1, 1, 3, -1.0f}, Case{256, 9, 5, 1, 1, 0, 1, 1, 0.0f},
                        Case{130, 17, 6, 5, 1, 2, 1, 1, 0.0f},
                        Case{2500, 5, 6, 5, 1, 0, 1, 1, 0.0f},
                        Case{256, 200, 20, 1, 1, 0, 1, 1, 0.0f}, Case{256, 256, 15, 1, 1, 0, 1, 2, -1.0f}})
    TestPackedConvolution(c.Geometry(), &rng, "packed conv " + c.Name());
  for (const Case& c : {Case{2500, 5, 6, 5, 1, 0, 1, 1, 0.0f}, Case{1000, 3, 5, 3, 1, 1, 1, 1, 0.0f}})
    TestPackedConvolution(c.Geometry(), &rng, "packed conv, all signs differ, " + c.Name(), true);
  // The padding masks of a geometry are worked out once and kept: the same geometry at
  // other batch sizes, and one that differs only in its padding, reuse or rebuild them.
  for (int64_t batch : {1, 3}) {
    ConvGeometry g = Case{64, 130, 13, 3, 1, 1, 1, 1, 0.0f}.Geometry();
    g.batch = batch;
    TestPackedConvolution(g, &rng, "packed conv, masks kept, batch " + std::to_string(batch));
    g.pad_h = 2;
    TestPackedConvolution(g, &rng, "packed conv, masks kept, pad_h 2, batch " + std::to_string(batch));
  }
  // Kernels of one column: no left or right border, so the packed rows of a plane follow
  // each other and tiles across rows read in place, with and without rows of padding.
  for (int64_t pad_h : {0, 1}) {
    ConvGeometry g;
    g.batch = 2;
    g.in_channels = 70;
    g.out_channels = 9;
    g.in_height = 6;
    g.in_width = 5;
    g.kernel_h = 3;
    g.pad_h = pad_h;
    TestPackedConvolution(g, &rng, "packed conv 3x1 pad_h=" + std::to_string(pad_h));
  }
}

// The portable kernels as built with POPCNT (x86, the portable path wherever the CPU has it)
// against the plain build: a ragged tile with and without zero padding, and xor-popcount.
// A ConvMemory kept across calls gives what a call without one gives, when the weights
// change under a new version (or version 0) and when the geometry changes.
void TestConvMemory() {
  std::mt19937 rng(11);
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = 70;
  g.out_channels = 130;
  g.in_height = g.in_width = 9;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  ConvGeometry other = g;
  other.in_height = 5;
  other.in_width = 12;
  const int64_t words = g.out_channels * g.kernel_h * g.kernel_w * WordsFor(g.in_channels);
  auto random_words = [&] {
    std::vector<uint64_t> v(words);
    for (uint64_t& word : v) word = (uint64_t(rng()) << 32) | rng();
    return v;
  };
  const std::vector<uint64_t> first = random_words(), second = random_words();
  const auto x = Random(g.in_channels * 12 * 12, &rng);
  for (Isa isa : AvailableIsas()) {
    ConvMemory memory;
    std::vector<uint64_t> w = first;  // one buffer, rewritten in place like a bound weight
    auto run = [&](const ConvGeometry& shape, ConvMemory* kept, uint64_t version) {
      std::vector<uint64_t> bits(PackedInputWords(shape));
      std::vector<float> y(shape.out_channels * shape.OutHeight() * shape.OutWidth());
      PackAndConvolve(shape, x.data(), {}, bits.data(), w.data(), nullptr, nullptr, nullptr, y.data(), 2, isa, kept,
                      version);
      return y;
    };
    const std::string name = std::string("conv memory ") + IsaName(isa);
    Check(run(g, &memory, 1) == run(g, nullptr, 0), name + ": first call");
    Check(run(g, &memory, 1) == run(g, nullptr, 0), name + ": kept weights");
    w = second;
    Check(run(g, &memory, 2) == run(g, nullptr, 0), name + ": weights of a new version");
    Check(run(other, &memory, 2) == run(other, nullptr, 0), name + ": a new geometry");
    Check(run(g, &memory, 2) == run(g, nullptr, 0), name + ": the first geometry again");
    for (const std::vector<uint64_t>* weights : {&first, &second}) {
      w = *weights;
      Check(run(g, &memory, 0) == run(g, nullptr, 0), name + ": weights of unknown version");
    }
  }
}

void TestPortableBuildsAgree() {
#if BMXNET_X86
  const BinaryKernels& plain = portable::kBinaryKernels;
  const BinaryKernels& popcnt = portable_popcnt::kBinaryKernels;
  std::mt19937_64 rng(11);
  constexpr int64_t kDepth = 70, kFilters = 11;
  std::vector<uint64_t> words(kDepth * kTilePixels), weights(kFilters * kDepth);
  for (auto& w : words) w = rng();
  for (auto& w : weights) w = rng();
  std::vector<const uint64_t*> rows(kDepth);
  std::vector<uint16_t> valid(kDepth);
  std::vector<int32_t> counted(kTilePixels);
  for (int64_t k = 0; k < kDepth; ++k) {
    rows[k] = words.data() + k * kTilePixels;
    valid[k] = static_cast<uint16_t>(rng());
  }
  for (int p = 0; p < kTilePixels; ++p) counted[p] = static_cast<int32_t>(rng() % 5000);
  std::vector<float> scale(kFilters, 0.37f), bias(kFilters, -1.25f), residual(kFilters * kTilePixels, 0.5f);
  for (const uint16_t* masks : std::initializer_list<const uint16_t*>{nullptr, valid.data()}) {
    const TilePanel panel = {rows.data(), masks, counted.data(), kTilePixels - 3};
    std::vector<float> a(kFilters * kTilePixels, -7.0f), b = a;
    plain.conv_tile(panel, weights.data(), kDepth, kFilters, {scale.data(), bias.data(), residual.data(), a.data(), kTilePixels});
    popcnt.conv_tile(panel, weights.data(), kDepth, kFilters, {scale.data(), bias.data(), residual.data(), b.data(), kTilePixels});
    Check(a == b, std::string("portable tile with POPCNT equals the plain build, ") + (masks ? "masked" : "unmasked"));
  }
  int64_t naive = 0;
  for (int64_t k = 0; k < kDepth; ++k)
    for (int bit = 0; bit < 64; ++bit) naive += ((words[k] ^ weights[k]) >> bit) & 1;
  Check(plain.xor_popcount(words.data(), weights.data(), kDepth) == naive &&
            popcnt.xor_popcount(words.data(), weights.data(), kDepth) == naive,
        "portable xor-popcount, both builds, equals a bit-by-bit count");
#endif
}

// Packed dense == float dense of the signs; the last case has every bit mismatching over
// 79 words (it fills narrow per-word counters as fast as they can fill).
void TestPackedDense() {
  std::mt19937 rng(9);
  for (int64_t features : {1, 3, 63, 64, 65, 129, 200, 1000, 5000, -5000}) {
    const bool all_differ = features < 0;
    features = std::abs(features);
    const int64_t batch = 3, out = 7;
    auto x = Random(batch * features, &rng, true), w = Random(out * features, &rng, true);
    if (all_differ) {
      std::fill(x.begin(), x.end(), 1.0f);
      std::fill(w.begin(), w.end(), -1.0f);
    }
    const auto bias = Random(out, &rng, false);
    std::vector<float> expected(batch * out), y(batch * out);
    DenseForward(batch, features, out, x.data(), w.data(), bias.data(), expected.data(), 2);
    std::vector<uint64_t> px(batch * WordsFor(features)), pw(out * WordsFor(features));
    PackRows(x.data(), batch, features, px.data(), 2);
    PackRows(w.data(), out, features, pw.data(), 2);
    for (Isa isa : AvailableIsas()) {
      std::fill(y.begin(), y.end(), -7.0f);
      BinaryDenseForward(batch, features, out, px.data(), pw.data(), nullptr, bias.data(), y.data(), 2, isa);
      Check(y == expected, "packed dense k=" + std::to_string(features) + (all_differ ? " all differ " : " ") +
                               IsaName(isa));
    }
  }
}

void TestPackingLayout() {
  // channel c -> word c / 64, bit c % 64; negative -> 1; tails zero
  std::vector<float> x(70, 1.0f);
  x[0] = -1.0f;
  x[65] = -0.5f;
  std::vector<uint64_t> packed(2);
  PackRows(x.data(), 1, 70, packed.data(), 1);
  Check(packed[0] == 1u && packed[1] == 2u, "packing is LSB first with zero tails");

  // Every ISA packs activations like the portable code: NaN is -1, -0.0 and 0 are +1,
  // ragged pixel blocks and channel counts.
  std::mt19937 rng(11);
  const int64_t batch = 2, channels = 131, height = 5, width = 7, groups = 1;
  std::vector<float> values = Random(batch * channels * height * width, &rng, false);
  for (size_t i = 0; i < values.size(); i += 7) values[i] = (i % 3 == 0) ? std::nanf("") : (i % 3 == 1 ? -0.0f : 0.0f);
  std::vector<uint64_t> reference(batch * height * width * WordsFor(channels));
  PackActivationsNCHW(values.data(), batch, channels, height, width, groups, reference.data(), 2, Isa::kPortable);
  Check(reference[0] & 1u, "NaN packs as -1");
  for (Isa isa : AvailableIsas()) {
    std::vector<uint64_t> other(reference.size(), 12345);
    PackActivationsNCHW(values.data(), batch, channels, height, width, groups, other.data(), 2, isa);
    Check(other == reference, std::string("activation packing with NaN and signed zeros ") + IsaName(isa));
  }

  // Per-channel thresholds: bit = !(direction * x >= threshold), values placed on, just
  // below and just above each threshold, infinities and NaN included.
  std::vector<float> direction(channels), threshold(channels);
  for (int64_t c = 0; c < channels; ++c) {
    direction[c] = c % 3 == 0 ? -1.0f : 1.0f;
    threshold[c] = c % 5 == 0 ? 0.0f : std::ldexp(static_cast<float>(c) - 60.0f, -4);
  }
  const int64_t spatial = height * width;
  for (int64_t i = 0; i < batch * channels * spatial; ++i) {
    const int64_t c = i / spatial % channels;
    const float t = direction[c] * threshold[c];  // the x whose direction * x is the threshold
    switch (i % 6) {
      case 0: values[i] = t; break;
      case 1: values[i] = std::nextafter(t, -INFINITY); break;
      case 2: values[i] = std::nextafter(t, INFINITY); break;
      case 3: values[i] = i % 12 == 3 ? INFINITY : -INFINITY; break;
      case 4: values[i] = std::nanf(""); break;
      default: break;
    }
  }
  std::fill(reference.begin(), reference.end(), 0);
  const int64_t words = WordsFor(channels);
  for (int64_t i = 0; i < batch * channels * spatial; ++i) {
    const int64_t n = i / (channels * spatial), c = i / spatial % channels, s = i % spatial;
    if (!(direction[c] * values[i] >= threshold[c])) reference[(n * spatial + s) * words + c / 64] |= uint64_t(1) << (c % 64);
  }
  for (Isa isa : AvailableIsas()) {
    std::vector<uint64_t> other(reference.size(), 12345);
    PackActivationsNCHW(values.data(), batch, channels, height, width, groups, other.data(), 2, isa,
                        {direction.data(), threshold.data()});
    Check(other == reference, std::string("activation packing against thresholds ") + IsaName(isa));
  }
}

}  // namespace

// Every task exactly once, for any split; several callers at once take turns.
void TestThreadPool() {
  bool covered = true;
  for (int threads = 1; threads <= 5; ++threads)
    for (int64_t tasks : {0, 1, 2, 7, 64, 1001}) {
      std::vector<std::atomic<int>> seen(tasks);
      ParallelFor(tasks, threads, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) seen[t]++;
      });
      for (auto& count : seen) covered &= count.load() == 1;
    }
  Check(covered, "thread pool runs every task once");
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int round = 0; round < 200; ++round)
        ParallelFor(10, 2, [&](int64_t begin, int64_t end) { total += end - begin; });
    });
  for (auto& caller : callers) caller.join();
  Check(total == 3 * 200 * 10, "thread pool with concurrent callers");
  // A worker runs beside the caller, and moving it off the caller's CPU (thread_pool.cc)
  // leaves it free to run on any CPU the process may use.
  cpu_set_t callers_cpus, workers_cpus;
  sched_getaffinity(0, sizeof(callers_cpus), &callers_cpus);
  bool beside = true, free_to_move = true;
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> started{false};
    std::thread::id worker;
    const std::thread::id caller = std::this_thread::get_id();
    ParallelFor(2, 2, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        if (t == 1) {
          worker = std::this_thread::get_id();
          sched_getaffinity(0, sizeof(workers_cpus), &workers_cpus);
          started = true;
          continue;
        }
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (!started && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
      }
    });
    beside &= started && worker != caller;
    free_to_move &= started && CPU_EQUAL(&callers_cpus, &workers_cpus);
  }
  Check(beside, "thread pool worker runs beside the caller");
  Check(free_to_move, "thread pool worker keeps the process's CPUs");
  // A forked child (a DataLoader worker, say) has none of the parent's pool threads.
  const pid_t child = fork();
  if (child == 0) {
    alarm(10);
    std::atomic<int64_t> sum{0};
    ParallelFor(100, 2, [&](int64_t begin, int64_t end) { sum += end - begin; });
    _exit(sum == 100 ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  Check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "thread pool in a forked child");
}

// Sizes of absurd layers saturate instead of wrapping to small ones that loops then overrun;
// BLAS calls past its int dimensions are refused; an empty sum writes zeros.
void TestSizeLimits() {
  Check(SaturatingMultiply(int64_t(1) << 40, int64_t(1) << 30) == kSaturated &&
            SaturatingProduct({3, 5, 7}) == 105 && SaturatingAdd(kSaturated, 1) == kSaturated,
        "saturating arithmetic");
  ConvGeometry g;
  g.in_channels = 64;
  g.in_height = g.in_width = 1;
  g.pad_h = g.pad_w = g.stride_h = g.stride_w = 0x7fffffff;
  Check(PackedInputWords(g) == kSaturated, "padded input of a 2^32 x 2^32 plane saturates");
  g.pad_h = g.pad_w = 0;
  g.kernel_h = g.kernel_w = g.in_height = g.in_width = 0x40000000;
  Check(g.ScratchSize() == kSaturated && g.PatchSize() == kSaturated, "column matrix of a 2^30 x 2^30 kernel saturates");
  float c[6] = {7, 7, 7, 7, 7, 7};
  bool refused = false;
  try {
    Sgemm(false, false, 2, int64_t(1) << 31, 1, 1.0f, c, 1, c, 1, 0.0f, c, 1, 1);
  } catch (const std::length_error&) {
    refused = true;
  }
  Check(refused && c[0] == 7, "BLAS call past int refused before it runs");
  Sgemm(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.0f, c, 3, 1);
  Check(std::count(c, c + 6, 0.0f) == 6, "GEMM over no values writes zeros");
}

int main() {
  std::printf("kernels: active ISA %s\n", IsaName(ActiveIsa()));
  TestConvolutions();
  TestDense();
  TestVectorQuantizersMatchPortable();
  TestWeightQuantizers();
  TestPackingLayout();
  TestPackedConvolutions();
  TestConvMemory();
  TestPackedDense();
  TestPortableBuildsAgree();
  TestThreadPool();
  TestSizeLimits();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
