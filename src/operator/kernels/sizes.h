// Size arithmetic that cannot overflow: products saturate at INT64_MAX, so a size too large
// for memory stays too large (and is refused where it is allocated) instead of wrapping
// around to a small one that loops then overrun.
#ifndef BMXNET_KERNELS_SIZES_H_
#define BMXNET_KERNELS_SIZES_H_

#include <cstdint>
#include <initializer_list>
#include <limits>

namespace bmxnet {
namespace kernels {

constexpr int64_t kSaturated = std::numeric_limits<int64_t>::max();

// a * b for a, b >= 0, or kSaturated.
inline int64_t SaturatingMultiply(int64_t a, int64_t b) {
  int64_t product;
  return __builtin_mul_overflow(a, b, &product) ? kSaturated : product;
}

// a + b for a, b >= 0, or kSaturated.
inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? kSaturated : sum;
}

inline int64_t SaturatingProduct(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t factor : factors) product = SaturatingMultiply(product, factor);
  return product;
}

}  // namespace kernels
}  // namespace bmxnet

#endif  // BMXNET_KERNELS_SIZES_H_
