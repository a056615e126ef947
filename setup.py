"""Builds libbmxnet.so with CMake against the installed mxnet wheel and installs `bmxnet`."""
import os
import platform
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


def target_arch():
    """The machine the library is built for: this one, or BMXNET_CROSS=aarch64 (a cross
    build with cmake/aarch64-linux-gnu.cmake, as `make wheel-aarch64` runs it)."""
    cross = os.environ.get("BMXNET_CROSS", "")
    if cross not in ("", "aarch64"):
        sys.exit("setup.py: BMXNET_CROSS=%r: only 'aarch64' is known" % cross)
    return cross or platform.machine()


def library_files(arch):
    """The files CMake builds for the package, relative to its directory: the library and, on
    aarch64, the Arm Performance Libraries stand-ins that bmxnet-arm-setup installs."""
    names = ["libbmxnet.so"]
    if arch == "aarch64":
        names += [os.path.join("armpl_stand_in", "lib%s.so" % n) for n in ("armpl_lp64_mp", "amath", "astring")]
    return names


def place(source, target):
    """Copies through a temporary file renamed into place: a process that has the old library
    mapped keeps it (a copy over it would change the pages under that process)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target + ".partial")
    os.replace(target + ".partial", target)


class CMakeBuild(build_ext):
    """Runs the CMake project; the library lands where the package expects it."""

    def get_ext_filename(self, ext_name):
        return os.path.join(*ext_name.split(".")) + ".so"

    def build_extension(self, ext):
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        arch = target_arch()
        cross = arch != platform.machine()
        # the editable install and this machine's wheel configure CMake alike and share a tree
        build_dir = os.path.join(HERE, "build", "cross-" + arch if cross else "setup")
        os.makedirs(build_dir, exist_ok=True)
        # CMake writes into its own build directory and the files are copied from there: an
        # output directory shared by builds for two machines would look up to date to both.
        built = os.path.join(build_dir, "package")
        configure = ["cmake", "-S", HERE, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DPython3_EXECUTABLE=" + sys.executable, "-DBMXNET_TESTS=OFF",
                     "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=" + built]
        if cross:
            configure += ["-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(HERE, "cmake", "aarch64-linux-gnu.cmake"),
                          "-DBMXNET_CUDA=OFF"]
        configure += os.environ.get("BMXNET_CMAKE_ARGS", "").split()
        subprocess.check_call(configure)
        targets = ["bmxnet_ops"] + (["bmxnet_armpl_stand_in"] if arch == "aarch64" else [])
        subprocess.check_call(["cmake", "--build", build_dir, "--target"] + targets + ["-j", str(os.cpu_count() or 2)])
        for name in library_files(arch):
            place(os.path.join(built, name), os.path.join(out_dir, name))

    def copy_extensions_to_source(self):
        """Editable install: every built file into the source package (setuptools' own copy
        takes only libbmxnet.so, and writes over it in place)."""
        package_dir = self.get_finalized_command("build_py").get_package_dir("bmxnet")
        for name in library_files(target_arch()):
            place(os.path.join(self.build_lib, "bmxnet", name), os.path.join(HERE, package_dir, name))


class PlatformWheel(bdist_wheel):
    """py3-none-linux_<arch>: the library is loaded by MXNet, not imported by Python, so any
    Python 3 of the machine it was built for can use it."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        return "py3", "none", "linux_" + target_arch()


setup(
    name="bmxnet",
    version="0.1.0",
    description="Binary and low-bit neural networks for MXNet 1.9 / Gluon",
    packages=find_packages(include=["bmxnet", "bmxnet.*", "smd"]),
    ext_modules=[CMakeExtension("bmxnet.libbmxnet")],
    cmdclass={"build_ext": CMakeBuild, "bdist_wheel": PlatformWheel},
    python_requires=">=3.8",
    install_requires=["mxnet==1.9.1", "numpy==1.23.5", "tqdm"],
    entry_points={"console_scripts": ["model-converter = smd.model_converter:main",
                                     "bmxnet-stats = smd.model_stats:main",
                                     "bmxnet-bench = smd.benchmark:main",
                                     "bmxnet-arm-setup = smd.arm_setup:main"]},
    zip_safe=False,
    # setuptools' own build tree per machine, so that no file of one lands in the other's wheel
    options={"build": {"build_base": os.path.join("build", "python-" + target_arch())}},
)
