// bmxnet_kernel_bench: the packed convolution kernels alone, without MXNet, on the layer
// shapes of bmxnet-bench (ResNet-18's binary layers, batch 1), so that a change to a
// kernel can be timed without the engine's hand-overs and the Python around it.
//
//   build/cmake/bmxnet_kernel_bench [--threads N] [--blocks B] [--calls C]
//
// Each row: PackAndConvolve from float NCHW input (packing included) with the node's
// memory kept, as a graph node calls it; plain sign, or BatchNorm thresholds and a residual
// add (as in ResNetE's blocks). Time per call: the median of B blocks of C calls after a
// warm-up. BMXNET_ISA picks a lower instruction set, as for the library.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/xnor_conv.h"

namespace {

using bmxnet::kernels::ChannelThresholds;
using bmxnet::kernels::ConvGeometry;

struct Layer {
  const char* name;
  int64_t in_channels, out_channels, size, kernel, stride;
};

const Layer kLayers[] = {{"3x3 64ch 56x56", 64, 64, 56, 3, 1},    {"3x3 128ch 28x28", 128, 128, 28, 3, 1},
                         {"3x3 256ch 14x14", 256, 256, 14, 3, 1}, {"3x3 512ch 7x7", 512, 512, 7, 3, 1},
                         {"3x3 s2 128->256ch 28x28", 128, 256, 28, 3, 2}, {"1x1 256ch 14x14", 256, 256, 14, 1, 1}};

int Option(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::max(1, std::atoi(argv[i + 1]));
  return fallback;
}

ConvGeometry GeometryOf(const Layer& layer) {
  ConvGeometry g;
  g.in_channels = layer.in_channels;
  g.out_channels = layer.out_channels;
  g.in_height = g.in_width = layer.size;
  g.kernel_h = g.kernel_w = layer.kernel;
  g.stride_h = g.stride_w = layer.stride;
  g.pad_h = g.pad_w = layer.kernel / 2;
  return g;
}

// Microseconds per call of one layer, with (`block_like`) or without thresholds and residual.
double MicrosecondsPerCall(const Layer& layer, bool block_like, int threads, int blocks, int calls) {
  const ConvGeometry g = GeometryOf(layer);
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(g.in_channels * g.in_height * g.in_width);
  for (float& v : x) v = uniform(rng);
  std::vector<uint64_t> w(g.out_channels * g.kernel_h * g.kernel_w * ((g.in_channels + 63) / 64));
  for (uint64_t& v : w) v = rng();
  std::vector<uint64_t> packed(bmxnet::kernels::PackedInputWords(g));
  std::vector<float> y(g.out_channels * g.OutHeight() * g.OutWidth()), residual(y.size(), 0.5f);
  std::vector<float> direction(g.in_channels, 1.0f), threshold(g.in_channels, 0.1f);
  const ChannelThresholds thresholds = block_like ? ChannelThresholds{direction.data(), threshold.data()}
                                                  : ChannelThresholds{};
  bmxnet::kernels::ConvMemory memory;
  auto call = [&] {
    bmxnet::kernels::PackAndConvolve(g, x.data(), thresholds, packed.data(), w.data(), nullptr, nullptr,
                                     block_like ? residual.data() : nullptr, y.data(), threads,
                                     bmxnet::kernels::ActiveIsa(), &memory, 1);
  };
  for (int i = 0; i < calls; ++i) call();
  std::vector<double> seconds;
  for (int b = 0; b < blocks; ++b) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  std::nth_element(seconds.begin(), seconds.begin() + blocks / 2, seconds.end());
  return seconds[blocks / 2] * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = Option(argc, argv, "--threads", bmxnet::kernels::NumThreads());
  const int blocks = Option(argc, argv, "--blocks", 11), calls = Option(argc, argv, "--calls", 50);
  std::printf("isa %s, %d threads; microseconds per call (median of %d blocks of %d calls)\n",
              bmxnet::kernels::IsaName(bmxnet::kernels::ActiveIsa()), threads, blocks, calls);
  std::printf("%-26s %10s %10s %24s\n", "layer", "sign", "G MACs/s", "thresholds + residual");
  for (const Layer& layer : kLayers) {
    const ConvGeometry g = GeometryOf(layer);
    const double macs = static_cast<double>(g.out_channels * g.OutHeight() * g.OutWidth() * g.PatchSize());
    const double sign = MicrosecondsPerCall(layer, false, threads, blocks, calls);
    const double block_like = MicrosecondsPerCall(layer, true, threads, blocks, calls);
    std::printf("%-26s %10.1f %10.0f %24.1f\n", layer.name, sign, macs / sign * 1e-3, block_like);
  }
  return 0;
}
