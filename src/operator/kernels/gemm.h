// Single-precision GEMM on row-major matrices, backed by the OpenBLAS that ships in the
// MXNet wheel. C = alpha * op(A) * op(B) + beta * C.
#ifndef BMXNET_KERNELS_GEMM_H_
#define BMXNET_KERNELS_GEMM_H_

#include <cstdint>

namespace bmxnet {
namespace kernels {

void Sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, int threads);

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_GEMM_H_
