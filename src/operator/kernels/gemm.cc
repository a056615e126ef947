#include "gemm.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

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

void SgemmOneThread(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) {
  cblas_sgemm(kRowMajor, transpose_a ? kTrans : kNoTrans, transpose_b ? kTrans : kNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace

// The wheel's OpenBLAS (0.3.13, OpenMP build) corrupts the heap when its own threads run
// in a graph next to oneDNN pooling (seen with 37 channels after MaxPool2D). So OpenBLAS
// always runs single-threaded here, and the columns of C are split over our own threads.
void Sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, int threads) {
  if (m == 0 || n == 0) return;
  // CBLAS takes int: a larger matrix would be cut (the operators refuse such layers first)
  for (int64_t size : {m, n, k, lda, ldb, ldc})
    if (size < 0 || size > std::numeric_limits<int>::max())
      throw std::length_error("bmxnet: matrix dimension " + std::to_string(size) + " too large for BLAS");
  if (k == 0) {  // C = beta C; BLAS implementations differ in whether they touch C then
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);  // OpenBLAS sizes its team from the caller's setting
  const int64_t min_columns = 64;
  const int teams = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / min_columns)));
  if (teams > 1) {
#pragma omp parallel num_threads(teams)
    {
      const int64_t id = omp_get_thread_num();
      const int64_t width = (n + teams - 1) / teams;
      const int64_t first = std::min(n, id * width), count = std::min(n, first + width) - first;
      if (count > 0)
        SgemmOneThread(transpose_a, transpose_b, m, count, k, alpha, a, lda,
                       transpose_b ? b + first * ldb : b + first, ldb, beta, c + first, ldc);
    }
  } else {
    SgemmOneThread(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  omp_set_num_threads(saved);
#else
  (void)threads;
  SgemmOneThread(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

}  // namespace kernels
}  // namespace bmxnet
