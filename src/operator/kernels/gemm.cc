#include "gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// The wheel ships libopenblas.so.0 without cblas.h; the CBLAS ABI is stable.
extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta, float* c,
                            int ldc);

namespace bmxnet {
namespace kernels {
namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
}

void Sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, int threads) {
  if (m == 0 || n == 0) return;
#ifdef _OPENMP
  // The wheel's OpenBLAS is an OpenMP build: it sizes its team from this thread's setting,
  // which is 1 inside MXNet's engine workers.
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  cblas_sgemm(kRowMajor, transpose_a ? kTrans : kNoTrans, transpose_b ? kTrans : kNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace kernels
}  // namespace bmxnet
