// The one place that picks the binary inner loops for an instruction set (binary_kernels.h).
#include "binary_kernels.h"

#include "cpu_features.h"

namespace bmxnet {
namespace kernels {

const BinaryKernels& BinaryKernelsFor(Isa isa) {
  switch (isa) {
#if BMXNET_X86
    case Isa::kAvx512: return avx512::kBinaryKernels;
    case Isa::kAvx2: return avx2::kBinaryKernels;
#endif
#if BMXNET_NEON
    case Isa::kNeon: return neon::kBinaryKernels;
#endif
#if BMXNET_X86
    case Isa::kPortable: return HasScalarPopcount() ? portable_popcnt::kBinaryKernels : portable::kBinaryKernels;
#endif
    default: return portable::kBinaryKernels;
  }
}

}  // namespace kernels
}  // namespace bmxnet
