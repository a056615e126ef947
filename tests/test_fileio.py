"""atomic_write and replace_together: the targets are replaced whole or left as they were; the
temporaries of processes that ended are recognised and removed."""
import errno
import os
import subprocess
import sys

import pytest

from bmxnet import fileio
from bmxnet.fileio import atomic_write, replace_together


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


def test_replace_together_writes_every_file_and_leaves_no_temp(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "sub" / "b.params"
    first.write_text("old a")
    replace_together([(str(first), lambda temp: open(temp, "w").write("new a")),
                      (str(second), lambda temp: open(temp, "w").write("new b"))])
    assert first.read_text() == "new a" and second.read_text() == "new b"
    assert sorted(os.listdir(tmp_path)) == ["a.json", "sub"] and os.listdir(tmp_path / "sub") == ["b.params"]


def test_failed_second_write_keeps_both_old_files_and_removes_what_it_made(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "new_dir" / "b.params"
    first.write_text("old a")

    def fail(temp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError) as error:
        replace_together([(str(first), lambda temp: open(temp, "w").write("new a")), (str(second), fail)])
    assert error.value.filename == str(second)  # the file meant, not its temporary name
    assert first.read_text() == "old a" and os.listdir(tmp_path) == ["a.json"]


def test_failed_second_rename_puts_the_first_file_back(tmp_path, monkeypatch):
    first, second = tmp_path / "a.json", tmp_path / "b.params"
    first.write_text("old a")
    calls, real_replace = [], os.replace

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(source, target)
    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        replace_together([(str(first), lambda temp: open(temp, "w").write("new a")),
                          (str(second), lambda temp: open(temp, "w").write("new b"))])
    assert first.read_text() == "old a" and os.listdir(tmp_path) == ["a.json"]


def _dead_pid():
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_remove_leftovers_takes_only_temporaries_of_ended_processes(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    names = ["%s%d-x1-net.params" % (fileio.TEMP_PREFIX, dead), "%s%d-x2-net.json.old" % (fileio.TEMP_PREFIX, dead),
             "%s%d-x3-net.params" % (fileio.TEMP_PREFIX, alive), "tmpabc.params", "net-0000.params"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert fileio.remove_leftovers(str(tmp_path)) == sorted(names[:2])
    assert sorted(os.listdir(str(tmp_path))) == sorted(names[2:])


def test_temporaries_are_named_for_remove_leftovers(tmp_path):
    seen = []
    fileio.atomic_write(str(tmp_path / "out.json"), lambda temp: (seen.append(os.path.basename(temp)),
                                                                  open(temp, "w").write("{}")))
    assert seen[0].startswith("%s%d-" % (fileio.TEMP_PREFIX, os.getpid())) and seen[0].endswith("-out.json")
