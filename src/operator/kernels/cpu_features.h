// Runtime choice of the instruction set; kernels never depend on build-time -march flags.
#ifndef BMXNET_KERNELS_CPU_FEATURES_H_
#define BMXNET_KERNELS_CPU_FEATURES_H_

namespace bmxnet {
namespace kernels {

// x86: portable < AVX2 < AVX-512; aarch64: portable < NEON.
enum class Isa { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kNeon = 3 };

// The AVX2 and AVX-512 kernels (files *_avx2.cc, *_avx512.cc) are built on x86 only; elsewhere
// the dispatch never names them.
#if defined(__x86_64__) || defined(__i386__)
#define BMXNET_X86 1
#else
#define BMXNET_X86 0
#endif
// The NEON kernels (*_neon.cc) are built on aarch64, where every CPU has NEON.
#if defined(__aarch64__)
#define BMXNET_NEON 1
#else
#define BMXNET_NEON 0
#endif

// Builds with a vector version of the float kernels (quantizers, pooling, BatchNorm:
// namespace simd, AVX2 on x86 and NEON on aarch64); it runs whenever the ISA is not portable.
#define BMXNET_SIMD (BMXNET_X86 || BMXNET_NEON)

// Best instruction set this CPU supports, lowered by the environment variable
// BMXNET_ISA=portable|avx2|avx512|neon (used by tests to force each path; it never raises
// it, and a set of another CPU family is ignored).
Isa ActiveIsa();

// Whether kernels of `isa` run where `best` is the best instruction set: the same family
// (x86 or ARM) and not above it; portable runs everywhere.
bool RunsWithin(Isa isa, Isa best);

// Reads BMXNET_ISA again; tests call it after changing the variable.
void RefreshIsa();

const char* IsaName(Isa isa);

// Whether the portable kernels may use the CPU's scalar popcount instruction (x86: POPCNT,
// which the baseline x86-64 target lacks; aarch64's `cnt` is always there).
bool HasScalarPopcount();

// Threads for OpenMP regions inside operators. MXNet's engine threads see
// omp_get_max_threads() == 1, so the count is asked for explicitly:
// BMXNET_NUM_THREADS, else OMP_NUM_THREADS, else all cores the process may use; at most
// those cores unless BMXNET_OVERSUBSCRIBE=1 (then at most 1024).
int NumThreads();

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_CPU_FEATURES_H_
