# Entry points: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
LIBRARY := bmxnet/libbmxnet.so
CPP_BUILD := build/cmake
NATIVE_SOURCES := $(shell find src -name '*.cc' -o -name '*.h' -o -name '*.cu') CMakeLists.txt setup.py
FASHION_MNIST := /usr/share/datasets/fashion-mnist
JOBS ?= 2

.PHONY: help demo test test-gpu gpu-check pytest ctest ctest-aarch64 aarch64-tools aarch64-emulation arm-libraries wheel wheel-aarch64 build data clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

DEMO_MODEL := output/lenet_binary-fashion-mnist

demo: build data  ## train a binary LeNet on Fashion-MNIST, pack it, compare packed with float
	$(PY) example/train_mnist.py --dataset fashion-mnist --data-dir $(FASHION_MNIST) --save-dir output
	$(VENV)/bin/model-converter $(DEMO_MODEL)-symbol.json $(DEMO_MODEL)-0000.params
	$(PY) example/evaluate_packed.py $(DEMO_MODEL) --data-dir $(FASHION_MNIST)

test: pytest ctest ctest-aarch64  ## the whole test suite: pytest, the C++ kernel tests, and those for aarch64 under qemu

# The GPU tests (tests/test_gpu.py, marked gpu) in their own .venv-gpu with MXNet's CUDA wheel;
# the library is make build's (with nvcc it has the gpu kernels). Stops at once without a GPU.
GPU_VENV := .venv-gpu
GPU_MXNET ?= mxnet-cu112==1.9.1
test-gpu: gpu-check build  ## the GPU tests: an NVIDIA GPU against the CPU, in .venv-gpu with $(GPU_MXNET)
	@$(PY) -c "import bmxnet, sys; sys.exit(0 if bmxnet.cuda_kernels() else 'make test-gpu: this build of bmxnet has no CUDA kernels (no nvcc when it was built): install the CUDA toolkit, then make clean test-gpu')"
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	grep -v '^mxnet==' requirements.txt > build/requirements-gpu.txt
	$(GPU_VENV)/bin/python -m pip install -q -r build/requirements-gpu.txt "$(GPU_MXNET)"
	BMXNET_REQUIRE_GPU=1 PYTHONPATH=$(CURDIR) $(GPU_VENV)/bin/python -m pytest -q -m gpu tests/test_gpu.py

gpu-check:
	@$(PYTHON) smd/gpu_check.py

pytest: build data wheel aarch64-emulation
	$(PY) -m pytest -q tests

ctest: $(DEPS_STAMP)
	mkdir -p build
	cmake -S . -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=$(abspath $(PY)) > $(CPP_BUILD).log
	@grep -E "bmxnet: CUDA" $(CPP_BUILD).log || true
	cmake --build $(CPP_BUILD) -j $(JOBS) >> $(CPP_BUILD).log
	cd $(CPP_BUILD) && ctest --output-on-failure

# The kernel tests cross-built for aarch64 (cmake/aarch64-linux-gnu.cmake) and run under
# qemu-aarch64-static; on an aarch64 machine `make ctest` runs them natively instead.
AARCH64_BUILD := build/aarch64
AARCH64_PACKAGES := g++-aarch64-linux-gnu qemu-user-static libc6:arm64 libgomp1:arm64 libstdc++6:arm64 \
                    libopenblas-dev:arm64 llvm
ctest-aarch64: $(DEPS_STAMP) aarch64-tools  ## the C++ tests cross-built for aarch64, run under qemu
	@if [ "$$(uname -m)" = aarch64 ]; then echo "aarch64 machine: make ctest runs the kernel tests natively"; \
	elif ! command -v qemu-aarch64-static > /dev/null || ! command -v aarch64-linux-gnu-g++ > /dev/null; then \
	  echo "aarch64 tests skipped: install $(AARCH64_PACKAGES) (Debian, with dpkg --add-architecture arm64)"; \
	else \
	  cmake -S . -B $(AARCH64_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
	        -DPython3_EXECUTABLE=$(abspath $(PY)) > $(AARCH64_BUILD).log && \
	  cmake --build $(AARCH64_BUILD) -j $(JOBS) >> $(AARCH64_BUILD).log && \
	  cd $(AARCH64_BUILD) && ctest --output-on-failure; \
	fi

aarch64-tools:  ## the cross compiler, qemu and arm64 libraries (apt-get, when missing and root)
	@if [ "$$(uname -m)" = x86_64 ] && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null && \
	   ! dpkg -s $(AARCH64_PACKAGES) > /dev/null 2>&1; then \
	  { dpkg --add-architecture arm64 && apt-get update -qq && apt-get install -y -qq $(AARCH64_PACKAGES) > /dev/null; } || \
	  echo "could not install the aarch64 tools; the aarch64 tests will be skipped"; \
	fi

# The aarch64 wheel and an aarch64 sysroot (Python 3.11, numpy, MXNet's aarch64 wheel, Debian's
# OpenBLAS) for tests/test_aarch64_emulated.py, which follows the README's Raspberry Pi steps.
AARCH64_SYSROOT := build/aarch64-sysroot
AARCH64_WHEEL := dist/bmxnet-0.1.0-py3-none-linux_aarch64.whl
PYTHON_SOURCES := $(shell find bmxnet smd -name '*.py')
aarch64-emulation: $(DEPS_STAMP) aarch64-tools  ## the aarch64 wheel and sysroot for the emulated Raspberry Pi test (x86_64)
	@if [ "$$(uname -m)" != x86_64 ]; then echo "aarch64 emulation tests: only on x86_64 hosts"; \
	elif command -v qemu-aarch64-static > /dev/null && command -v aarch64-linux-gnu-g++ > /dev/null; then \
	  $(MAKE) --no-print-directory $(AARCH64_WHEEL) $(AARCH64_SYSROOT)/root/site/mxnet; \
	else echo "aarch64 emulation tests skipped: they need the aarch64 tools (make aarch64-tools)"; fi

# Made once and kept (rm -rf $(AARCH64_SYSROOT) to make it again); a failure skips its tests.
$(AARCH64_SYSROOT)/root/site/mxnet:
	@mkdir -p build && echo "making the aarch64 sysroot $(AARCH64_SYSROOT) (log: $(AARCH64_SYSROOT).log)"
	@tests/aarch64/make_sysroot.sh $(AARCH64_SYSROOT) $(VENV)/bin/pip > $(AARCH64_SYSROOT).log 2>&1 || \
	  echo "aarch64 sysroot not made ($$(tail -1 $(AARCH64_SYSROOT).log)); the emulated tests will be skipped"

# This machine's wheel reuses make build's CMake tree (tests/test_wheels.py checks it).
NATIVE_WHEEL := dist/bmxnet-0.1.0-py3-none-linux_$(shell uname -m).whl
wheel: $(NATIVE_WHEEL)  ## an installable wheel of bmxnet for this machine in dist/

$(NATIVE_WHEEL): $(LIBRARY) $(PYTHON_SOURCES)
	rm -f $@
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

wheel-aarch64: $(AARCH64_WHEEL)  ## the aarch64 wheel (Raspberry Pi 4/5), cross-built, in dist/

ifneq ($(AARCH64_WHEEL),$(NATIVE_WHEEL))  # on aarch64 the native rule makes it
$(AARCH64_WHEEL): $(DEPS_STAMP) $(NATIVE_SOURCES) $(PYTHON_SOURCES) cmake/aarch64-linux-gnu.cmake
	rm -f $@ && mkdir -p build
	BMXNET_CROSS=aarch64 $(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist . > build/wheel-aarch64.log 2>&1 || \
	  { tail -20 build/wheel-aarch64.log; exit 1; }
endif

# aarch64 machines: the system's OpenBLAS and LAPACKE (bmxnet links OpenBLAS; without Arm
# Performance Libraries, bmxnet-arm-setup stands them in for MXNet)
ARM_PACKAGES := libopenblas-dev liblapacke
arm-libraries:
	@if [ "$$(uname -m)" = aarch64 ] && ! dpkg -s $(ARM_PACKAGES) > /dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    apt-get update -qq && apt-get install -y -qq $(ARM_PACKAGES) > /dev/null; \
	  else echo "aarch64: 'sudo apt-get install $(ARM_PACKAGES)' first"; fi; \
	fi

build: $(LIBRARY)  ## set up .venv and build the C++ library into the package

$(DEPS_STAMP): requirements.txt | arm-libraries
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	command -v cmake > /dev/null || $(PY) -m pip install -q cmake
	touch $@

$(LIBRARY): $(DEPS_STAMP) $(NATIVE_SOURCES)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	@if [ "$$(uname -m)" = aarch64 ]; then $(VENV)/bin/bmxnet-arm-setup; fi
	touch $@

data:  ## Debian's dataset-fashion-mnist (installed with apt-get when missing and possible)
	@test -d $(FASHION_MNIST) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist > /dev/null; \
	  fi; } || true
	@test -d $(FASHION_MNIST) || echo "Fashion-MNIST is missing: 'sudo apt-get install dataset-fashion-mnist'"

clean:  ## remove build products (keeps .venv)
	rm -rf build dist $(LIBRARY) bmxnet/armpl_stand_in *.egg-info
