"""bmxnet-arm-setup: makes MXNet's aarch64 wheel importable (Raspberry Pi 4/5, Graviton, Jetson).

The mxnet 1.9.1 aarch64 wheel's libmxnet.so needs libarmpl_lp64_mp.so, libamath.so and
libastring.so, Arm Performance Libraries that are neither on PyPI nor in Debian; from them it
takes only standard BLAS / LAPACK / LAPACKE symbols. This command, run once after
`pip install bmxnet-...-linux_aarch64.whl`:
  - does nothing where those libraries are found (ArmPL installed, or set up before);
  - else checks that Debian's OpenBLAS and LAPACKE are installed (one line naming the
    packages if not), and puts bmxnet's stand-ins (shipped in the wheel) beside
    libmxnet.so, which looks there first (its RPATH is $ORIGIN): the stand-in named
    libarmpl_lp64_mp.so loads OpenBLAS and LAPACKE, the other two are empty;
  - then checks that libmxnet.so loads, as `import mxnet` will load it.
A file it did not put there is never replaced. `--remove` takes the stand-ins away again.

It imports neither mxnet (which cannot load before this) nor bmxnet.
"""
import argparse
import ctypes
import importlib.util
import os
import platform
import sys

NEEDED = ("libarmpl_lp64_mp.so", "libamath.so", "libastring.so")
SYSTEM_LIBRARIES = {"libopenblas.so.0": "libopenblas0", "liblapacke.so.3": "liblapacke"}
MARKER = b"bmxnet ArmPL stand-in"  # in every stand-in (src/armpl_stand_in/stand_in.cc)


class SetupError(Exception):
    """A problem the user must fix; the message is one line."""


def package_dir(name):
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("%s is not installed for %s" % (name, sys.executable))
    return spec.submodule_search_locations[0]


def is_stand_in(path):
    with open(path, "rb") as f:
        return MARKER in f.read(1 << 20)


def loadable(name):
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False


def missing_system_packages(load=loadable):
    return sorted(package for library, package in SYSTEM_LIBRARIES.items() if not load(library))


def install(mxnet_dir, stand_in_dir, load=loadable):
    """Puts the stand-ins beside libmxnet.so where needed; returns what it did, one line."""
    present = [name for name in NEEDED if os.path.exists(os.path.join(mxnet_dir, name))]
    foreign = [name for name in present if not is_stand_in(os.path.join(mxnet_dir, name))]
    if foreign:
        return "%s in %s is not bmxnet's stand-in: left as it is" % (", ".join(foreign), mxnet_dir)
    if not present and all(load(name) for name in NEEDED):
        return "Arm Performance Libraries found: nothing to do"
    missing = missing_system_packages(load)
    if missing:
        raise SetupError("the ArmPL stand-in needs Debian's OpenBLAS and LAPACKE: sudo apt-get install "
                         + " ".join(missing))
    for name in NEEDED:
        source = os.path.join(stand_in_dir, name)
        if not os.path.isfile(source):
            raise SetupError("%s is missing: this bmxnet was not built for aarch64" % source)
        _copy_whole(source, os.path.join(mxnet_dir, name))
    return "ArmPL stand-ins (over OpenBLAS and LAPACKE) put beside libmxnet.so in " + mxnet_dir


def remove(mxnet_dir):
    removed = []
    for name in NEEDED:
        path = os.path.join(mxnet_dir, name)
        if os.path.exists(path) and is_stand_in(path):
            os.remove(path)
            removed.append(name)
    return "removed " + (", ".join(removed) if removed else "nothing")


def _copy_whole(source, target):
    """Copies through a temporary file renamed into place: whole or absent."""
    fileio = _load_fileio()
    with open(source, "rb") as f:
        data = f.read()

    def write(temp):
        with open(temp, "wb") as out:
            out.write(data)
    fileio.atomic_write(target, write)


def _load_fileio():
    # bmxnet/fileio.py by path: importing the bmxnet package would import mxnet
    spec = importlib.util.spec_from_file_location("bmxnet_fileio", os.path.join(package_dir("bmxnet"), "fileio.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def libmxnet_loads(mxnet_dir):
    """(works, the loader's error): libmxnet.so loaded here, as `import mxnet` loads it (this
    process then holds it; it imports nothing)."""
    try:
        ctypes.CDLL(os.path.join(mxnet_dir, "libmxnet.so"))
        return True, ""
    except OSError as error:
        return False, str(error)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--remove", action="store_true", help="take bmxnet's stand-ins away again")
    args = p.parse_args(argv)
    if platform.machine() != "aarch64":
        print("bmxnet-arm-setup: nothing to do on %s (only MXNet's aarch64 wheel needs ArmPL)" % platform.machine())
        return 0
    try:
        mxnet_dir = package_dir("mxnet")
        if args.remove:
            print("bmxnet-arm-setup: " + remove(mxnet_dir))
            return 0
        print("bmxnet-arm-setup: " + install(mxnet_dir, os.path.join(package_dir("bmxnet"), "armpl_stand_in")))
    except SetupError as error:
        print("bmxnet-arm-setup: %s" % error, file=sys.stderr)
        return 1
    except OSError as error:
        print("bmxnet-arm-setup: %s: %s" % (error.filename or "", error.strerror or error), file=sys.stderr)
        return 1
    works, error = libmxnet_loads(mxnet_dir)
    if not works:
        print("bmxnet-arm-setup: libmxnet.so still does not load: " + error, file=sys.stderr)
        return 1
    print("bmxnet-arm-setup: libmxnet.so loads: import mxnet will work")
    return 0


if __name__ == "__main__":
    sys.exit(main())
