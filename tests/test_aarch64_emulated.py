"""bmxnet's aarch64 wheel in an aarch64 sysroot under qemu-aarch64-static (Cortex-A72, as a
Raspberry Pi 4), set up with the README's Raspberry Pi steps: the wheel installs beside the
aarch64 MXNet, bmxnet-arm-setup makes MXNet importable, the NEON kernels run, and a packed
model made and converted here gives the same logits there, bit for bit, with NEON and with
the portable kernels.

Needs the sysroot (tests/aarch64/make_sysroot.sh) and the wheel (`make wheel-aarch64`);
`make test` makes both where the aarch64 tools can be installed. Nothing here is timed.
"""
import glob
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import bmxnet
from bmxnet import _library
from bmxnet import nn as bnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSROOT = os.environ.get("BMXNET_AARCH64_SYSROOT", os.path.join(ROOT, "build", "aarch64-sysroot"))
WHEELS = sorted(glob.glob(os.path.join(ROOT, "dist", "bmxnet-*-py3-none-linux_aarch64.whl")), key=os.path.getmtime)
QEMU = shutil.which("qemu-aarch64-static")
HELPERS = os.path.join(ROOT, "tests", "aarch64")
sys.path.insert(0, HELPERS)
from layer_outputs import layer_outputs  # noqa: E402
from test_converter import Residual  # noqa: E402  (BatchNorm -> binary conv, added to its input)

needs_emulation = pytest.mark.skipif(
    QEMU is None or not os.path.isdir(os.path.join(SYSROOT, "root", "site", "mxnet")) or not WHEELS,
    reason="needs qemu-aarch64-static, the aarch64 sysroot and wheel (make aarch64-emulation; make test makes them)")

PROBE = """
import os, sys
import numpy as np, mxnet as mx, bmxnet
directory, helpers, out = sys.argv[1:4]
sys.path.insert(0, helpers)
from layer_outputs import layer_outputs
x = np.load(os.path.join(directory, "x.npy"))
results = {name: layer_outputs(os.path.join(directory, name), x) for name in ("packed", "float")}
results["sign"] = mx.nd.QActivation(mx.nd.array([-1.5, 0.0, 2.0, float("nan")])).asnumpy()
np.savez(out, **results)
print(bmxnet.active_isa())
"""


def emulated(args, cwd, **extra_env):
    """python3.11 of the sysroot under qemu, as a Pi 4's Cortex-A72 (no SVE), with the
    sysroot's libraries where a Pi has them."""
    root = os.path.join(SYSROOT, "root")
    env = dict(extra_env, **{"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "QEMU_CPU": "cortex-a72",
           "QEMU_LD_PREFIX": root, "LD_LIBRARY_PATH": os.path.join(root, "usr", "lib", "aarch64-linux-gnu"),
           "PYTHONPATH": os.path.join(root, "site"), "PYTHONNOUSERSITE": "1"})
    return subprocess.run([QEMU, os.path.join(root, "usr", "bin", "python3.11")] + args, cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=900)


def binary_net():
    """Only packed layers, folded BatchNorms, max pooling and reshapes: operations whose results
    do not depend on the CPU (MXNet's own float operators round differently on aarch64)."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(bnn.QConv2D(37, 3, padding=1, use_bias=True), Residual(37, padding=1), gluon.nn.BatchNorm(),
                bnn.QConv2D(45, 3, strides=2, padding=1, scaling="xnor"),
                Residual(45, padding=2, dilation=2, pad_value=-1), gluon.nn.MaxPool2D(2), gluon.nn.Flatten(),
                bnn.QDense(10, use_bias=True))
    return net


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained binary net exported and converted here (x86), its input and x86 logits."""
    directory = tmp_path_factory.mktemp("aarch64_model")
    rng = np.random.RandomState(5)
    net = binary_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    for _ in range(3):
        x = mx.nd.array(rng.uniform(-1, 1, (8, 3, 12, 12)))
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), mx.nd.array(rng.randint(0, 10, 8)))
        loss.backward()
        trainer.step(8)
    net.export(str(directory / "float"))
    _, _, report = bmxnet.convert(str(directory / "float-symbol.json"), str(directory / "float-0000.params"),
                                  str(directory / "packed"))
    assert len(report.folded) == 3  # every BatchNorm became sign thresholds
    x = rng.uniform(-1, 1, (16, 3, 12, 12)).astype(np.float32)
    np.save(str(directory / "x.npy"), x)

    return directory, {name: layer_outputs(str(directory / name), x) for name in ("packed", "float")}


@pytest.fixture(scope="module")
def pi_steps(tmp_path_factory):
    """The README's Raspberry Pi steps in the sysroot; what each printed."""
    work = tmp_path_factory.mktemp("pi")
    site = os.path.join(SYSROOT, "root", "site")
    steps = {"remove": emulated(["-m", "smd.arm_setup", "--remove"], work)}  # a Pi that was never set up
    # pip install bmxnet-...-linux_aarch64.whl (the host's pip installs for aarch64; mxnet and
    # numpy, which pip would pull, are in the sysroot already)
    steps["install"] = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--only-binary=:all:",
         "--platform", "linux_aarch64", "--target", site, WHEELS[-1]], capture_output=True, text=True)
    steps["before"] = emulated(["-c", "import bmxnet"], work)
    # bmxnet-arm-setup: the console script the wheel installed (its #! line names the host's
    # Python, so the sysroot's runs it)
    steps["setup"] = emulated([os.path.join(site, "bin", "bmxnet-arm-setup")], work)
    # mxnet alone first (the stand-ins are found by libmxnet.so, not preloaded by bmxnet)
    check = "import mxnet; print(mxnet.__version__); import bmxnet; print(bmxnet.active_isa())"
    steps["check"] = emulated(["-c", check], work)
    return steps


@needs_emulation
@pytest.mark.slow
def test_pi_steps_set_up_mxnet_and_load_bmxnet(pi_steps):
    assert pi_steps["install"].returncode == 0, pi_steps["install"].stderr
    before = pi_steps["before"]
    assert before.returncode != 0 and "bmxnet-arm-setup" in before.stderr.strip().splitlines()[-1]
    setup = pi_steps["setup"]
    assert setup.returncode == 0, setup.stderr
    assert "ArmPL stand-ins" in setup.stdout and "libmxnet.so loads" in setup.stdout
    check = pi_steps["check"]
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["1.9.1", "neon"]


@needs_emulation
@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["neon", "portable"])
def test_packed_model_gives_the_x86_logits_bit_for_bit(pi_steps, model, tmp_path, kernels):
    """Default kernels (NEON), then a process started with BMXNET_ISA=portable."""
    directory, x86 = model
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {"BMXNET_ISA": "portable"} if kernels == "portable" else {}
    result = emulated([str(script), str(directory), HELPERS, str(tmp_path / "aarch64.npz")], tmp_path, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == kernels
    arm = np.load(str(tmp_path / "aarch64.npz"))
    np.testing.assert_array_equal(arm["sign"], [-1, 1, 1, -1])
    # every packed layer's output, then the logits: equal, not close
    np.testing.assert_array_equal(arm["packed"], x86["packed"])
    # the float-simulated model agrees there too (its convolutions sum +-1 exactly; the
    # packed layers that absorbed a residual add include it, so only the logits compare)
    np.testing.assert_array_equal(arm["float"], x86["float"])
    logits = 16 * 10
    np.testing.assert_array_equal(x86["packed"][-logits:], x86["float"][-logits:])


def test_x86_run_of_the_same_files_matches_every_kernel_path(model, isa):
    """The x86 side of the comparison on each kernel path this CPU has."""
    directory, x86 = model
    x = np.load(str(directory / "x.npy"))
    np.testing.assert_array_equal(layer_outputs(str(directory / "packed"), x), x86["packed"])
    assert _library.active_isa() == isa
