// The C++ tests' bookkeeping: Check() counts and reports, Random() makes test data.
#ifndef BMXNET_TESTS_CPP_CHECK_H_
#define BMXNET_TESTS_CPP_CHECK_H_

#include <cstdio>
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

}  // namespace

#endif  // BMXNET_TESTS_CPP_CHECK_H_
