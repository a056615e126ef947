"""Finds and loads the compiled operator library (libbmxnet.so) exactly once."""
import ctypes
import os

import mxnet as mx

LIBRARY_NAME = "libbmxnet.so"
REBUILD_HINT = ("rebuild it with `make build` (or `pip install --no-build-isolation -e .` "
                "inside the environment that holds mxnet)")

_loaded_path = None


def library_path():
    """Path of the compiled library: $BMXNET_LIBRARY, else the one inside the package."""
    return os.environ.get("BMXNET_LIBRARY") or os.path.join(os.path.dirname(__file__), LIBRARY_NAME)


def _check_built_for_this_mxnet(path):
    try:
        handle = ctypes.CDLL(path)
    except OSError as error:
        raise ImportError("bmxnet: cannot open %s (%s); %s" % (path, error, REBUILD_HINT)) from None
    try:
        handle.bmxnet_built_for_mxnet.restype = ctypes.c_char_p
        built_for = handle.bmxnet_built_for_mxnet().decode()
    except AttributeError:
        raise ImportError("bmxnet: %s is not a bmxnet library; %s" % (path, REBUILD_HINT)) from None
    if built_for != mx.__version__:
        raise ImportError("bmxnet: %s was built for MXNet %s but MXNet %s is installed; %s"
                          % (path, built_for, mx.__version__, REBUILD_HINT))
    return handle


def load():
    """Registers QActivation, QConvolution and QFullyConnected with MXNet (once per process)."""
    global _loaded_path
    if _loaded_path is not None:
        return _loaded_path
    path = os.path.abspath(library_path())
    if not os.path.isfile(path):
        raise ImportError("bmxnet: compiled library not found at %s; %s" % (path, REBUILD_HINT))
    _check_built_for_this_mxnet(path)
    try:
        mx.library.load(path, verbose=False)
    except mx.base.MXNetError as error:
        raise ImportError("bmxnet: MXNet refused %s (%s); %s"
                          % (path, str(error).strip().splitlines()[-1], REBUILD_HINT)) from None
    _loaded_path = path
    return path


def active_isa():
    """Instruction set the kernels use on this CPU: 'avx512', 'avx2' or 'portable'."""
    handle = ctypes.CDLL(load())
    handle.bmxnet_active_isa.restype = ctypes.c_char_p
    return handle.bmxnet_active_isa().decode()


def refresh_isa():
    """Re-reads $BMXNET_ISA (tests use it to force a kernel path)."""
    ctypes.CDLL(load()).bmxnet_refresh_isa()
