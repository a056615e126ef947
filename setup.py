"""Builds libbmxnet.so with CMake against the installed mxnet wheel and installs `bmxnet`."""
import os
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Runs the CMake project; the library lands where the package expects it."""

    def get_ext_filename(self, ext_name):
        return os.path.join(*ext_name.split(".")) + ".so"

    def build_extension(self, ext):
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        build_dir = os.path.join(HERE, "build", "setup")
        os.makedirs(build_dir, exist_ok=True)
        configure = ["cmake", "-S", HERE, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DPython3_EXECUTABLE=" + sys.executable, "-DBMXNET_TESTS=OFF",
                     "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=" + out_dir]
        configure += os.environ.get("BMXNET_CMAKE_ARGS", "").split()
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "bmxnet_ops",
                               "-j", str(os.cpu_count() or 2)])


setup(
    name="bmxnet",
    version="0.1.0",
    description="Binary and low-bit neural networks for MXNet 1.9 / Gluon",
    packages=find_packages(include=["bmxnet", "bmxnet.*", "smd"]),
    ext_modules=[CMakeExtension("bmxnet.libbmxnet")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.8",
    install_requires=["mxnet==1.9.1", "numpy==1.23.5", "tqdm"],
    entry_points={"console_scripts": ["model-converter = smd.model_converter:main",
                                     "bmxnet-stats = smd.model_stats:main",
                                     "bmxnet-bench = smd.benchmark:main"]},
    zip_safe=False,
)
