// Stand-in for the Arm Performance Libraries that MXNet's aarch64 wheel names (NEEDED entries
// libarmpl_lp64_mp.so, libamath.so, libastring.so): the libraries are built from this file,
// and libarmpl_lp64_mp.so's own NEEDED entries pull in the system's OpenBLAS and LAPACKE,
// which export the standard BLAS / LAPACK symbols MXNet takes from ArmPL. The marker tells
// bmxnet-arm-setup its own stand-ins from a real ArmPL.
extern "C" const char bmxnet_armpl_stand_in[] = "bmxnet ArmPL stand-in";
