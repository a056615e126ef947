// The C++ tests' bookkeeping: Check() counts and reports, Random() and AddSpecialValues()
// make test data.
#ifndef BMXNET_TESTS_CPP_CHECK_H_
#define BMXNET_TESTS_CPP_CHECK_H_

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

int passed = 0, failed = 0;

void Check(bool ok, const std::string& name) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAILED: %s\n", name.c_str());
  }
}

// Uniform in (-scale, scale), or its signs (+-1) when binary.
std::vector<float> Random(size_t n, std::mt19937* rng, bool binary = false, float scale = 1.5f) {
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = binary ? (uniform(*rng) >= 0 ? 1.0f : -1.0f) : uniform(*rng);
  return v;
}

// Equal bit for bit (NaN equals NaN, -0 differs from +0).
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// SameBits, except that any two NaNs are equal: of two NaNs, an add keeps the one in its
// first operand, and compilers order an add's operands as they like.
bool SameValues(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  return true;
}

// Every 7th value replaced by NaN, -0, +0, +inf or -inf in turn.
void AddSpecialValues(std::vector<float>* v) {
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), -0.0f, 0.0f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (size_t i = 3, s = 0; i < v->size(); i += 7, ++s) (*v)[i] = specials[s % 5];
}

}  // namespace

#endif  // BMXNET_TESTS_CPP_CHECK_H_
