// Library entry points: MXNet's version handshake and what the Python loader checks.
#include "kernels/cpu_features.h"
#include "lib_api.h"

#ifndef BMXNET_MXNET_VERSION
#error "BMXNET_MXNET_VERSION must name the MXNet release the library is built against"
#endif

extern "C" {

// Read from the file by the Python loader (bmxnet/library_check.py) before anything opens
// it, and compared with mxnet.__version__.
__attribute__((visibility("default"), used)) extern const char bmxnet_build_record[] =
    "bmxnet library for MXNet " BMXNET_MXNET_VERSION;

const char* bmxnet_active_isa() {
  return bmxnet::kernels::IsaName(bmxnet::kernels::ActiveIsa());
}

void bmxnet_refresh_isa() { bmxnet::kernels::RefreshIsa(); }

int bmxnet_num_threads() { return bmxnet::kernels::NumThreads(); }

// Whether the operators have gpu kernels (the library was built with nvcc).
int bmxnet_cuda_kernels() {
#ifdef BMXNET_CUDA
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"

mxnet::ext::MXReturnValue initialize(int version) {
  if (version < 10900) {
    MX_ERROR_MSG << "bmxnet needs MXNet >= 1.9.0, found version code " << version;
    return mxnet::ext::MX_FAIL;
  }
  return mxnet::ext::MX_SUCCESS;
}
