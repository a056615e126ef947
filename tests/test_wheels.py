"""The wheels in dist/ (`make wheel`, `make wheel-aarch64`; `make test` makes the aarch64 one):
the platform tag names the machine the libraries inside are built for, the aarch64 wheel
carries the ArmPL stand-ins bmxnet-arm-setup installs, and both install the console scripts.
Installing and running them: test_aarch64_emulated.py (aarch64), docs/aarch64.md (x86_64)."""
import glob
import os
import struct
import zipfile

import pytest

from smd import arm_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}
STAND_INS = ["bmxnet/armpl_stand_in/" + name for name in arm_setup.NEEDED]
SCRIPTS = ["model-converter", "bmxnet-stats", "bmxnet-bench", "bmxnet-arm-setup"]


def newest_wheel(arch):
    wheels = glob.glob(os.path.join(ROOT, "dist", "bmxnet-*-py3-none-linux_%s.whl" % arch))
    if not wheels:
        pytest.skip("no %s wheel in dist/ (make wheel%s)" % (arch, "-aarch64" if arch == "aarch64" else ""))
    return max(wheels, key=os.path.getmtime)


def elf_machine(data):
    assert data[:4] == b"\x7fELF", "not an ELF file"
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    assert e_type == 3, "not a shared library"
    return e_machine


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_wheel_holds_libraries_for_the_machine_its_tag_names(arch):
    with zipfile.ZipFile(newest_wheel(arch)) as wheel:
        names = wheel.namelist()
        libraries = sorted(name for name in names if name.endswith(".so"))
        expected = ["bmxnet/libbmxnet.so"] + (STAND_INS if arch == "aarch64" else [])
        assert libraries == sorted(expected)
        for name in libraries:
            assert elf_machine(wheel.read(name)) == ELF_MACHINES[arch], name
        for name in STAND_INS if arch == "aarch64" else []:
            assert arm_setup.MARKER in wheel.read(name), name  # bmxnet-arm-setup knows its own files
        info = next(name for name in names if name.endswith(".dist-info/WHEEL"))
        assert "Tag: py3-none-linux_%s" % arch in wheel.read(info).decode()
        assert "Root-Is-Purelib: false" in wheel.read(info).decode()
        entry_points = wheel.read(info.replace("WHEEL", "entry_points.txt")).decode()
        for script in SCRIPTS:
            assert "\n%s = " % script in entry_points
        assert "bmxnet/converter/__init__.py" in names and "smd/arm_setup.py" in names
