#include "cpu_features.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <thread>

namespace bmxnet {
namespace kernels {
namespace {

Isa DetectHardwareIsa() {
#if BMXNET_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vpopcntdq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("popcnt"))
    return Isa::kAvx2;
#elif BMXNET_NEON
  return Isa::kNeon;
#endif
  return Isa::kPortable;
}

Isa IsaFromEnvironment(Isa hardware) {
  const char* requested = std::getenv("BMXNET_ISA");
  if (requested == nullptr) return hardware;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512, Isa::kNeon})
    if (std::strcmp(requested, IsaName(isa)) == 0 && RunsWithin(isa, hardware)) return isa;
  return hardware;
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
    case Isa::kNeon: return "neon";
    default: return "portable";
  }
}

bool HasScalarPopcount() {
#if BMXNET_X86
  static const bool popcnt = (__builtin_cpu_init(), __builtin_cpu_supports("popcnt") != 0);
  return popcnt;
#else
  return true;
#endif
}

bool RunsWithin(Isa isa, Isa best) {
  if (isa == Isa::kPortable || isa == best) return true;
  const bool x86 = best == Isa::kAvx2 || best == Isa::kAvx512;
  return x86 && (isa == Isa::kAvx2 || isa == Isa::kAvx512) && static_cast<int>(isa) < static_cast<int>(best);
}

namespace {

// More threads than this is a typo (a pool thread costs a stack and a wake-up per job).
constexpr long kMaxThreads = 1024;

// The cores this process may run on (its affinity: taskset, cgroup cpusets), read once.
int UsableCores() {
  static const int cores = [] {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return cores;
}

// The count an environment variable asks for: a positive integer (OpenMP's "4,2" gives 4),
// or 0 when it is unset or not one.
long RequestedThreads(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return 0;
  char* end = nullptr;
  errno = 0;
  const long count = std::strtol(value, &end, 10);
  if (errno != 0 || end == value || (*end != '\0' && *end != ',') || count < 1) return 0;
  return std::min(count, kMaxThreads);
}

}  // namespace

int NumThreads() {
  // more threads than cores only slow the kernels down, unless asked for on purpose
  const char* oversubscribe = std::getenv("BMXNET_OVERSUBSCRIBE");
  const bool capped = oversubscribe == nullptr || std::strcmp(oversubscribe, "1") != 0;
  for (const char* name : {"BMXNET_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const long requested = RequestedThreads(name);
    if (requested > 0) return static_cast<int>(capped ? std::min<long>(requested, UsableCores()) : requested);
  }
  return UsableCores();
}

}  // namespace kernels
}  // namespace bmxnet
