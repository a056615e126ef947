"""atomic_write: the target is replaced whole or left as it was."""
import os

import pytest

from bmxnet.fileio import atomic_write


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write(str(target), lambda temp: open(temp, "w").write("new"))
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def half_then_fail(temp):
        open(temp, "w").write("ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), half_then_fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
