"""Loading the operator library: nothing of a file runs before it is known to be a bmxnet
build for this MXNet; no empty runpath entry; thread counts capped at the usable cores."""
import os
import shutil
import subprocess
import sys

import pytest

from bmxnet import _library, library_check


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)


def test_foreign_library_is_refused_before_its_constructor_runs(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build a foreign library")
    marker = tmp_path / "constructor-ran"
    source = tmp_path / "evil.c"
    source.write_text('#include <stdio.h>\\n__attribute__((constructor)) static void run(void) '
                      '{ FILE* f = fopen("%s", "w"); if (f) fclose(f); }\\n' % marker)
    library = tmp_path / "libbmxnet.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    result = run_python("import bmxnet", BMXNET_LIBRARY=str(library))
    assert result.returncode != 0
    assert "is not a bmxnet library (it has no bmxnet build record)" in result.stderr
    assert not marker.exists()


def test_library_for_another_mxnet_is_refused_by_its_build_record(tmp_path):
    copy = tmp_path / "libbmxnet.so"
    data = open(_library.library_path(), "rb").read()
    record = b"bmxnet library for MXNet 1.9.1"
    assert data.count(record) == 1
    copy.write_bytes(data.replace(record, b"bmxnet library for MXNet 1.8.0"))
    assert library_check.mxnet_version_of(str(copy)) == "1.8.0"
    result = run_python("import bmxnet", BMXNET_LIBRARY=str(copy))
    assert result.returncode != 0 and "was built for MXNet 1.8.0 but MXNet 1.9.1 is installed" in result.stderr


@pytest.mark.parametrize("cut", [16, 4096, -100])
def test_truncated_library_is_refused_in_one_line(tmp_path, cut):
    copy = tmp_path / "libbmxnet.so"
    data = open(_library.library_path(), "rb").read()
    copy.write_bytes(data[:cut])
    with pytest.raises(library_check.LibraryCheckError, match="libbmxnet.so"):
        library_check.mxnet_version_of(str(copy))


def test_world_writable_library_is_refused(tmp_path):
    copy = tmp_path / "libbmxnet.so"
    shutil.copy(_library.library_path(), copy)
    os.chmod(copy, 0o666)
    result = run_python("import bmxnet", BMXNET_LIBRARY=str(copy))
    assert result.returncode != 0 and "its file is writable by every user; refusing to load it" in result.stderr
    os.chmod(copy, 0o644)
    assert run_python("import bmxnet", BMXNET_LIBRARY=str(copy)).returncode == 0


def test_library_runpath_has_no_empty_entry():
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("no readelf")
    dynamic = subprocess.run([readelf, "-d", _library.library_path()], capture_output=True, text=True).stdout
    paths = [line.split("[", 1)[1].rstrip("]").split(":") for line in dynamic.splitlines()
             if "RUNPATH" in line or "RPATH" in line]
    assert paths and all(entry for entry in paths[0]), paths  # an empty entry means the current directory


THREADS_PROBE = """
import os, bmxnet, mxnet as mx, numpy as np
from bmxnet import packing
w = mx.nd.array(packing.pack_conv_weight(np.ones((64, 64, 3, 3), np.float32)), dtype="int64")
mx.nd.QConvolution(mx.nd.ones((1, 64, 56, 56)), w, kernel=(3, 3), pad=(1, 1), num_filter=64,
                   binarized_weights_only=True).wait_to_read()
print(bmxnet.num_threads(), len(os.listdir("/proc/self/task")))
"""


@pytest.mark.slow
def test_thread_count_is_capped_at_usable_cores_unless_oversubscribing():
    cores = len(os.sched_getaffinity(0))
    result = run_python(THREADS_PROBE, BMXNET_NUM_THREADS="5000")
    assert result.returncode == 0, result.stderr
    threads, tasks = map(int, result.stdout.split())
    assert threads == cores and tasks < 200  # MXNet's own workers and OpenMP teams are a few dozen
    forced = run_python("import bmxnet; print(bmxnet.num_threads())", BMXNET_NUM_THREADS="5000",
                        BMXNET_OVERSUBSCRIBE="1")
    assert forced.stdout.split() == ["1024"]
    for value, expected in (("abc", cores), ("1,2", 1), ("-3", cores)):
        probe = run_python("import bmxnet; print(bmxnet.num_threads())", BMXNET_NUM_THREADS=value)
        assert probe.stdout.split() == [str(expected)], (value, probe.stderr)
