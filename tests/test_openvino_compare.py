"""smd/openvino_compare.py runs in an OpenVINO environment; here: what it needs, its reading
of bmxnet-bench files, and the numpy reference that gates every OpenVINO layer it times."""
import importlib.util
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import bmxnet  # noqa: F401  (registers QConvolution)
from bmxnet import packing

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "smd"))
import openvino_compare  # noqa: E402
import openvino_graphs  # noqa: E402


@pytest.mark.skipif(importlib.util.find_spec("openvino") is not None, reason="openvino is installed here")
def test_it_says_what_it_needs_without_openvino():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "smd", "openvino_compare.py"), "--repeat", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "needs openvino in this Python" in result.stderr


@pytest.mark.parametrize("channels,stride,pad", [(64, 1, 1), (70, 2, 1), (128, 1, 0)])
def test_the_numpy_reference_is_bmxnets_packed_convolution(channels, stride, pad, rng):
    x = rng.uniform(-1, 1, (2, channels, 7, 7)).astype(np.float32)
    w = rng.uniform(-1, 1, (5, channels, 3, 3)).astype(np.float32)
    packed = mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(packing.pack_conv_weight(w), dtype="int64"),
                                kernel=(3, 3), stride=(stride, stride), pad=(pad, pad), num_filter=5,
                                binarized_weights_only=True)
    np.testing.assert_array_equal(openvino_graphs.reference_binary_conv(x, w, stride, pad), packed.asnumpy())


def test_bench_file_gives_the_packed_rows(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"cpu": "AMD EPYC", "threads": 2,
                                "layers": [{"layer": "3x3 64ch 56x56", "packed_ms": 0.25}],
                                "models": [{"model": "resnete18 (packed)", "batch": 8, "ms": 40.0},
                                           {"model": "resnete18 (float-simulated)", "batch": 8, "ms": 200.0}]}))
    cpu, packed = openvino_compare.read_bench(str(path), 2)
    assert cpu == "AMD EPYC" and packed == {"3x3 64ch 56x56": 0.25, ("resnete18", 8): 40.0}
    with pytest.raises(SystemExit, match="ran with 2 threads, this run with 4"):
        openvino_compare.read_bench(str(path), 4)
    path.write_text("[1, 2]")
    with pytest.raises(SystemExit, match="--bench"):
        openvino_compare.read_bench(str(path), 2)


def test_profiles_sum_each_node_type_and_print_largest_first(capsys):
    from datetime import timedelta
    from types import SimpleNamespace

    infos = [SimpleNamespace(node_type=kind, real_time=timedelta(microseconds=us))
             for kind, us in (("BinaryConvolution", 300), ("Reorder", 20), ("BinaryConvolution", 200),
                              ("Convolution", 1500))]
    totals = openvino_compare.type_totals(infos)
    assert totals == pytest.approx({"BinaryConvolution": 0.5, "Reorder": 0.02, "Convolution": 1.5})
    openvino_compare.print_model_profiles([dict(model="resnete18", batch=1, openvino_ms=2.1, node_type_ms=totals),
                                           dict(model="resnete18", batch=8, openvino_ms=16.0)])
    assert capsys.readouterr().out == ("resnete18 batch 1, OpenVINO's profile (ms): Convolution 1.500, "
                                       "BinaryConvolution 0.500, Reorder 0.020\n")
