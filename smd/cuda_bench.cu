// bmxnet-cuda-bench: the binary convolution and xnor GEMM kernels against cuBLAS SGEMM on
// the convolutions of ResNet-18 (224x224), for whoever has a GPU. Each row times, with
// CUDA events (median of --repeat runs after warm-up):
//   sgemm   cuBLAS SGEMM of the layer as a GEMM (M = filters, N = batch * output pixels,
//           K = channels * kernel taps), operands already in place (im2col not counted);
//   binary  packing the float activations + the direct binary convolution (what a packed
//           QConvolution runs, nothing left out);
//   xnor    the xnor-popcount GEMM alone on the same M, N, K, operands packed.
// cuBLAS is loaded at run time (libcublas.so), so the program builds wherever nvcc is.
//
//   build/cmake/bmxnet_cuda_bench [--batch N] [--repeat R]
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/launchers.h"

namespace {

using namespace bmxnet::cuda;

// The few cuBLAS entry points used, by their C ABI (cublas_v2.h is not needed to build).
struct Cublas {
  using Create = int (*)(void**);
  using Destroy = int (*)(void*);
  using Sgemm = int (*)(void*, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
  void* handle = nullptr;
  Create create = nullptr;
  Destroy destroy = nullptr;
  Sgemm sgemm = nullptr;

  Cublas() {
    void* library = nullptr;
    for (const char* name : {"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"})
      if ((library = dlopen(name, RTLD_NOW)) != nullptr) break;
    if (library == nullptr) throw std::runtime_error("cannot load libcublas.so (install cuBLAS)");
    create = reinterpret_cast<Create>(dlsym(library, "cublasCreate_v2"));
    destroy = reinterpret_cast<Destroy>(dlsym(library, "cublasDestroy_v2"));
    sgemm = reinterpret_cast<Sgemm>(dlsym(library, "cublasSgemm_v2"));
    if (!create || !destroy || !sgemm || create(&handle) != 0) throw std::runtime_error("cuBLAS did not start");
  }
  ~Cublas() {
    if (handle) destroy(handle);
  }
};

void Cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

template <typename T>
T* DeviceArray(size_t count, unsigned seed) {
  std::vector<T> host(count);
  srand(seed);
  for (T& v : host) {
    if constexpr (std::is_same<T, float>::value) v = static_cast<float>(rand()) / RAND_MAX * 2.0f - 1.0f;
    else v = (static_cast<uint64_t>(rand()) << 33) ^ (static_cast<uint64_t>(rand()) << 2) ^ rand();
  }
  T* device = nullptr;
  Cuda(cudaMalloc(&device, count * sizeof(T)), "cudaMalloc");
  Cuda(cudaMemcpy(device, host.data(), count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

float MedianMs(const std::function<void()>& run, int repeat) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 3; ++i) run();
  std::vector<float> times;
  for (int i = 0; i < repeat; ++i) {
    cudaEventRecord(start);
    run();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Layer {
  const char* name;
  int64_t channels, size, filters, kernel, stride;
};

// The convolutions of ResNet-18 at 224x224 (the stem and one of each repeated 3x3 conv).
const Layer kLayers[] = {
    {"conv1 7x7/2 3->64 @224", 3, 224, 64, 7, 2},
    {"3x3 64->64 @56", 64, 56, 64, 3, 1},
    {"3x3/2 64->128 @56", 64, 56, 128, 3, 2},
    {"3x3 128->128 @28", 128, 28, 128, 3, 1},
    {"3x3/2 128->256 @28", 128, 28, 256, 3, 2},
    {"3x3 256->256 @14", 256, 14, 256, 3, 1},
    {"3x3/2 256->512 @14", 256, 14, 512, 3, 2},
    {"3x3 512->512 @7", 512, 7, 512, 3, 1},
    {"1x1/2 256->512 @14", 256, 14, 512, 1, 2},
};

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 1;
  int repeat = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::atoi(argv[i + 1]);
  }
  try {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::printf("no CUDA device: nothing to time (the kernels' logic is tested on the CPU by test_cuda_logic)\n");
      return 0;
    }
    cudaDeviceProp properties;
    Cuda(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
    std::printf("%s (sm_%d%d), batch %ld, median of %d runs\n", properties.name, properties.major, properties.minor,
                static_cast<long>(batch), repeat);
    std::printf("%-24s %10s %10s %10s %8s %8s\n", "layer", "sgemm ms", "binary ms", "xnor ms", "binary", "xnor");
    Cublas cublas;
    for (const Layer& l : kLayers) {
      const ConvShape s{batch, l.channels, l.size, l.size, l.filters, l.kernel, l.kernel, l.stride, l.stride,
                         l.kernel / 2, l.kernel / 2, 1, 1, 1, false};
      const int64_t m = l.filters, n = batch * s.OutSpatial(), k = l.channels * s.Taps();
      float* a = DeviceArray<float>(m * k, 1);
      float* b = DeviceArray<float>(k * n, 2);
      float* c = DeviceArray<float>(m * n, 3);
      float* x = DeviceArray<float>(batch * l.channels * s.InSpatial(), 4);
      float* y = DeviceArray<float>(batch * l.filters * s.OutSpatial(), 5);
      uint64_t* packed_x = DeviceArray<uint64_t>(batch * s.InSpatial() * s.Words(), 6);
      uint64_t* packed_w = DeviceArray<uint64_t>(l.filters * s.Depth(), 7);
      const int64_t gemm_words = (k + 63) / 64;
      uint64_t* rows = DeviceArray<uint64_t>(n * gemm_words, 8);
      uint64_t* columns = DeviceArray<uint64_t>(m * gemm_words, 9);
      const float one = 1.0f, zero = 0.0f;
      const float sgemm = MedianMs([&] {
        cublas.sgemm(cublas.handle, 0, 0, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one, b,
                     static_cast<int>(n), a, static_cast<int>(k), &zero, c, static_cast<int>(n));
      }, repeat);
      const float binary = MedianMs([&] {
        PackActivations(s, bmxnet::kernels::ChannelPieces::Whole(x, l.channels, s.InSpatial()), nullptr, packed_x,
                        nullptr);
        Convolve(s, packed_x, packed_w, nullptr, nullptr, nullptr, y, nullptr);
      }, repeat);
      const float xnor = MedianMs([&] { Dense(rows, columns, nullptr, nullptr, n, k, m, c, nullptr); }, repeat);
      std::printf("%-24s %10.4f %10.4f %10.4f %7.2fx %7.2fx\n", l.name, sgemm, binary, xnor, sgemm / binary,
                  sgemm / xnor);
      for (void* p : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(x),
                      static_cast<void*>(y), static_cast<void*>(packed_x), static_cast<void*>(packed_w),
                      static_cast<void*>(rows), static_cast<void*>(columns)})
        cudaFree(p);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bmxnet-cuda-bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
