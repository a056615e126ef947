"""smd/profile_packed.py: the bytes each node moves, and the command line (the profiling of
whole zoo models is not run here: it takes minutes)."""
import mxnet as mx
import pytest

import bmxnet  # noqa: F401  (registers the operators)
from smd import profile_packed


def test_node_bytes_counts_inputs_and_outputs_with_their_types():
    data = mx.sym.var("data")
    weight = mx.sym.var("w", shape=(8, 3, 3, 1), dtype="int64")
    conv = mx.sym.QConvolution(data, weight, kernel=(3, 3), pad=(1, 1), num_filter=8, binarized_weights_only=True,
                               name="conv")
    pool = mx.sym.Pooling(conv, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool")
    moved = profile_packed.node_bytes(pool, (2, 16, 6, 6))
    assert moved["conv"] == ("QConvolution", 4 * 2 * 16 * 36 + 8 * 8 * 9 + 4 * 2 * 8 * 36)
    assert moved["pool"] == ("Pooling", 4 * 2 * 8 * 36 + 4 * 2 * 8 * 9)


def test_unknown_model_is_one_line_error(capsys):
    with pytest.raises(SystemExit):
        profile_packed.parse_args(["--models", "resnete18,lenet9"])
    assert "unknown model(s) lenet9; known: resnete18, meliusnet22, binary_densenet28" in capsys.readouterr().err


def test_print_profile_shows_each_operator_against_its_bound(capsys):
    profile_packed.print_profile(dict(model="m", batch=1, total_ms=4.0, ops=1e8, operators=[
        dict(op="QConvolution", nodes=2, ms=3.0, bound_ms=1.5, limit="compute"),
        dict(op="Flatten", nodes=1, ms=1.0, bound_ms=0.0, limit="memory")]))
    out = capsys.readouterr().out
    assert "QConvolution" in out and "75.0%" in out and "2.0x" in out and "infx" in out
