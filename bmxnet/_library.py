"""Finds, checks and loads the compiled operator library (libbmxnet.so) exactly once.

Loading a library runs its code. The library inside the package is the one loaded; the
environment variable BMXNET_LIBRARY names another (a build of your own). Either is first
read as a file (library_check.py): an ELF library for this machine, exporting bmxnet's build
record for the installed MXNet, not writable by other users. That stops a wrong or damaged
file with one line; it cannot make a file from someone you do not trust safe to load.
"""
import ctypes
import os

try:
    import mxnet as mx
except OSError as error:  # MXNet's aarch64 wheel without its Arm Performance Libraries
    if "libarmpl" in str(error) or "libamath" in str(error) or "libastring" in str(error):
        raise ImportError("bmxnet: MXNet's aarch64 wheel needs Arm Performance Libraries (%s); run "
                          "`bmxnet-arm-setup` once to use Debian's OpenBLAS instead" % str(error).split(":")[0]) from None
    raise

from .library_check import LibraryCheckError, check_permissions, mxnet_version_of

LIBRARY_NAME = "libbmxnet.so"
REBUILD_HINT = ("rebuild it with `make build` (or `pip install --no-build-isolation -e .` "
                "inside the environment that holds mxnet)")

_loaded_path = None


def library_path():
    """Path of the compiled library: $BMXNET_LIBRARY, else the one inside the package."""
    return os.environ.get("BMXNET_LIBRARY") or os.path.join(os.path.dirname(__file__), LIBRARY_NAME)


def _check_built_for_this_mxnet(path):
    try:
        check_permissions(path)
        built_for = mxnet_version_of(path)
    except LibraryCheckError as error:
        raise ImportError("bmxnet: %s; %s" % (error, REBUILD_HINT)) from None
    except OSError as error:
        raise ImportError("bmxnet: cannot read %s (%s); %s" % (path, error.strerror or error, REBUILD_HINT)) from None
    if built_for != mx.__version__:
        raise ImportError("bmxnet: %s was built for MXNet %s but MXNet %s is installed; %s"
                          % (path, built_for, mx.__version__, REBUILD_HINT))


def load():
    """Registers bmxnet's operators with MXNet (once per process)."""
    global _loaded_path
    if _loaded_path is not None:
        return _loaded_path
    path = os.path.realpath(library_path())  # checked and opened: the same file, not a link to swap
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


def _handle():
    return ctypes.CDLL(load())  # already open: no second load


def active_isa():
    """Instruction set the kernels use on this CPU: 'avx512', 'avx2', 'neon' or 'portable'."""
    function = _handle().bmxnet_active_isa
    function.restype = ctypes.c_char_p
    return function().decode()


def num_threads():
    """Threads the kernels use: BMXNET_NUM_THREADS, else OMP_NUM_THREADS, else all usable
    cores; never more than those cores unless BMXNET_OVERSUBSCRIBE=1."""
    return _handle().bmxnet_num_threads()


def cuda_kernels():
    """Whether this build of the library has the operators' gpu kernels (built with nvcc)."""
    return bool(_handle().bmxnet_cuda_kernels())


def refresh_isa():
    """Re-reads $BMXNET_ISA (tests use it to force a kernel path)."""
    _handle().bmxnet_refresh_isa()
