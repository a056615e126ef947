"""smd/arm_setup.py (bmxnet-arm-setup) on fake directories: where it puts the ArmPL stand-ins,
what it refuses, what it never touches. (The real thing runs under qemu in
test_aarch64_emulated.py.)"""
import os

import pytest

from smd import arm_setup


@pytest.fixture
def dirs(tmp_path):
    mxnet_dir, stand_ins = tmp_path / "mxnet", tmp_path / "armpl_stand_in"
    mxnet_dir.mkdir()
    stand_ins.mkdir()
    for name in arm_setup.NEEDED:
        (stand_ins / name).write_bytes(b"\x7fELF..." + arm_setup.MARKER + b"...")
    return str(mxnet_dir), str(stand_ins)


def loads(*names):
    return lambda name: name in names


def test_puts_the_stand_ins_beside_libmxnet_when_armpl_is_missing(dirs):
    mxnet_dir, stand_ins = dirs
    message = arm_setup.install(mxnet_dir, stand_ins, load=loads("libopenblas.so.0", "liblapacke.so.3"))
    assert "ArmPL stand-ins" in message
    for name in arm_setup.NEEDED:
        path = os.path.join(mxnet_dir, name)
        assert arm_setup.is_stand_in(path)
    assert not [f for f in os.listdir(mxnet_dir) if f.startswith(".bmxnet-tmp-")]
    # a second run refreshes its own files
    assert "ArmPL stand-ins" in arm_setup.install(mxnet_dir, stand_ins, load=loads("libopenblas.so.0",
                                                                                   "liblapacke.so.3"))
    assert arm_setup.remove(mxnet_dir) == "removed " + ", ".join(arm_setup.NEEDED)
    assert os.listdir(mxnet_dir) == []


def test_a_real_armpl_is_left_alone(dirs):
    mxnet_dir, stand_ins = dirs
    assert "nothing to do" in arm_setup.install(mxnet_dir, stand_ins, load=loads(*arm_setup.NEEDED))
    assert os.listdir(mxnet_dir) == []
    real = os.path.join(mxnet_dir, "libamath.so")
    with open(real, "wb") as f:
        f.write(b"\x7fELF real ArmPL")
    assert "not bmxnet's stand-in" in arm_setup.install(mxnet_dir, stand_ins, load=loads())
    assert open(real, "rb").read() == b"\x7fELF real ArmPL"
    assert arm_setup.remove(mxnet_dir) == "removed nothing" and os.path.exists(real)


def test_missing_openblas_or_lapacke_names_the_packages(dirs):
    mxnet_dir, stand_ins = dirs
    with pytest.raises(arm_setup.SetupError, match="apt-get install liblapacke libopenblas0$"):
        arm_setup.install(mxnet_dir, stand_ins, load=loads())
    with pytest.raises(arm_setup.SetupError, match="apt-get install liblapacke$"):
        arm_setup.install(mxnet_dir, stand_ins, load=loads("libopenblas.so.0"))
    assert os.listdir(mxnet_dir) == []


def test_a_bmxnet_built_for_x86_says_so(dirs, tmp_path):
    mxnet_dir, _ = dirs
    with pytest.raises(arm_setup.SetupError, match="not built for aarch64"):
        arm_setup.install(mxnet_dir, str(tmp_path / "none"), load=loads("libopenblas.so.0", "liblapacke.so.3"))


def test_nothing_to_do_on_x86(capsys, monkeypatch):
    monkeypatch.setattr(arm_setup.platform, "machine", lambda: "x86_64")
    assert arm_setup.main([]) == 0
    assert "nothing to do on x86_64" in capsys.readouterr().out
