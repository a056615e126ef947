// The portable binary kernels compiled with -mpopcnt: __builtin_popcountll becomes one
// POPCNT instead of a dozen shifts and adds (x86 only; chosen where the CPU reports POPCNT).
#define BMXNET_PORTABLE_NAMESPACE portable_popcnt
#include "binary_portable.cc"
