// Compiled with -mavx2 -mpopcnt; called only after ActiveIsa() reported AVX2 support.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "bitpack.h"
#include "xnor_conv.h"

namespace bmxnet {
namespace kernels {
namespace avx2 {
namespace {

// Popcount of 4 words per step with the nibble-table shuffle (Mula et al.); a scalar
// popcnt finishes the tail and short rows.
inline int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words) {
  int64_t k = 0, count = 0;
  if (words >= 8) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low_nibbles = _mm256_set1_epi8(0x0f);
    __m256i total = _mm256_setzero_si256();
    for (; k + 4 <= words; k += 4) {
      const __m256i v = _mm256_xor_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k)));
      const __m256i bytes = _mm256_add_epi8(
          _mm256_shuffle_epi8(table, _mm256_and_si256(v, low_nibbles)),
          _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles)));
      total = _mm256_add_epi64(total, _mm256_sad_epu8(bytes, _mm256_setzero_si256()));
    }
    count = _mm256_extract_epi64(total, 0) + _mm256_extract_epi64(total, 1) +
            _mm256_extract_epi64(total, 2) + _mm256_extract_epi64(total, 3);
  }
  for (; k < words; ++k) count += _mm_popcnt_u64(a[k] ^ b[k]);
  return count;
}

#include "xnor_conv_impl.h"

}  // namespace

void BinaryConvForward(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                       const float* scale, const float* bias, float* y, int threads) {
  ConvForwardImpl(g, x, w, scale, bias, y, threads);
}

void BinaryDenseForward(int64_t batch, int64_t features, int64_t out_features, const uint64_t* x,
                        const uint64_t* w, const float* scale, const float* bias, float* y,
                        int threads) {
  DenseForwardImpl(batch, features, out_features, x, w, scale, bias, y, threads);
}

}  // namespace avx2
}  // namespace kernels
}  // namespace bmxnet
