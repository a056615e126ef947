#include "cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <thread>

namespace bmxnet {
namespace kernels {
namespace {

Isa DetectHardwareIsa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vpopcntdq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("popcnt"))
    return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

Isa IsaFromEnvironment(Isa hardware) {
  const char* requested = std::getenv("BMXNET_ISA");
  if (requested == nullptr) return hardware;
  Isa wanted = hardware;
  if (std::strcmp(requested, "portable") == 0) wanted = Isa::kPortable;
  if (std::strcmp(requested, "avx2") == 0) wanted = Isa::kAvx2;
  if (std::strcmp(requested, "avx512") == 0) wanted = Isa::kAvx512;
  return static_cast<int>(wanted) < static_cast<int>(hardware) ? wanted : hardware;
}

std::atomic<int> active_isa{-1};

}  // namespace

void RefreshIsa() { active_isa = static_cast<int>(IsaFromEnvironment(DetectHardwareIsa())); }

Isa ActiveIsa() {
  if (active_isa < 0) RefreshIsa();
  return static_cast<Isa>(active_isa.load());
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "portable";
  }
}

int NumThreads() {
  for (const char* name : {"BMXNET_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && std::atoi(value) > 0) return std::atoi(value);
  }
  // hardware_concurrency reads /sys on every call: once is enough
  static const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return cores;
}

}  // namespace kernels
}  // namespace bmxnet
