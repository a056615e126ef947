# Cross-building bmxnet for aarch64 (Raspberry Pi 4/5 with a 64-bit OS, Graviton, Jetson) on an
# x86_64 Debian/Ubuntu machine:
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install g++-aarch64-linux-gnu qemu-user-static libc6:arm64 libgomp1:arm64 \
#                   libstdc++6:arm64 libopenblas-dev:arm64      (what `make aarch64-tools` installs)
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DPython3_EXECUTABLE=.venv/bin/python
# The MXNet headers come from the host's mxnet wheel (lib_api is the same in the aarch64 one);
# ctest runs the tests under qemu with the arm64 libraries of the host's multiarch directories
# (not with -L /usr/aarch64-linux-gnu: mixing that C library with the multiarch one hangs at the
# first thread).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)  # Debian's multiarch directories of arm64 packages
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
