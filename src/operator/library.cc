// Library entry points: MXNet's version handshake and what the Python loader checks.
#include "kernels/cpu_features.h"
#include "lib_api.h"

#ifndef BMXNET_MXNET_VERSION
#error "BMXNET_MXNET_VERSION must name the MXNet release the library is built against"
#endif

extern "C" {

// The Python loader compares this with mxnet.__version__ before loading the operators.
const char* bmxnet_built_for_mxnet() { return BMXNET_MXNET_VERSION; }

const char* bmxnet_active_isa() {
  return bmxnet::kernels::IsaName(bmxnet::kernels::ActiveIsa());
}

void bmxnet_refresh_isa() { bmxnet::kernels::RefreshIsa(); }

}  // extern "C"

mxnet::ext::MXReturnValue initialize(int version) {
  if (version < 10900) {
    MX_ERROR_MSG << "bmxnet needs MXNet >= 1.9.0, found version code " << version;
    return mxnet::ext::MX_FAIL;
  }
  return mxnet::ext::MX_SUCCESS;
}
