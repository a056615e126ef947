"""Shapes and attributes at and past what MXNet tensors hold: one-line MXNetErrors, never a
crash, never uninitialised output (issue 20's reproductions and their neighbours)."""
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

from bmxnet import packing

ONES = mx.nd.ones((1, 1, 1, 1))
# each runs in a child process: before the fix some of them killed the interpreter
CRASHED_BEFORE = {
    "conv_pad_2_61": ("mx.nd.QConvolution(ONES, ONES, kernel=(1, 1), pad=(2**61, 0), num_filter=1)",
                      "pad='(2305843009213693952, 0)': values must be in [0, 2147483647]"),
    "conv_pad_2_31": ("mx.nd.QConvolution(ONES, ONES, kernel=(1, 1), pad=(2**31 - 1, 0), num_filter=1)",
                      "output would have shape (1, 1, 4294967295, 1), more than the 2147483647 elements"),
    "pool_kernel_2_32": ("mx.nd.PlainPooling(ONES, kernel=(2**32 + 1, 1), pad=(2**32, 0))",
                         "kernel='(4294967297, 1)': values must be in [1, 2147483647]"),
    "pool_output_2_31": ("mx.nd.PlainPooling(ONES, kernel=(2**16, 2**16), pad=(2**16 - 1, 2**16 - 1))",
                         "output would have shape (1, 1, 65536, 65536), more than the 2147483647 elements"),
    "packed_conv_padded_input": (
        "mx.nd.QConvolution(mx.nd.ones((1, 64, 1, 1)), mx.nd.ones((1, 1, 1, 1), dtype='int64'), kernel=(1, 1), "
        "pad=(2**31 - 1, 2**31 - 1), stride=(2**31 - 1, 2**31 - 1), num_filter=1, binarized_weights_only=True)",
        "needs a scratch buffer above 2 GiB"),
    "conv_column_matrix": ("mx.nd.QConvolution(mx.nd.ones((1, 1, 1, 1)), mx.nd.ones((1, 1, 2**16, 1)), "
                           "kernel=(2**16, 1), pad=(2**15, 2**15), num_filter=1)",
                           "the column matrix of one image (65536 x 131074) exceeds 2147483647 elements"),
    "concat_channels": ("mx.nd.ChannelConcat(mx.nd.ones((1, 2, 1, 1)), mx.nd.ones((1, 3, 1, 1)), num_args=2, "
                        "take_channels=(2**40, 0))", "take_channels='(1099511627776, 0)': values must be in"),
    "weight_too_large": ("mx.sym.QConvolution(mx.sym.var('x'), mx.sym.var('w'), kernel=(2**16, 2**16), pad=(0, 2**15), num_filter=2)"
                         ".infer_shape(x=(1, 1, 2**16, 2**14))", "weight would have shape (2, 1, 65536, 65536)"),
}
CHILD = """
import json, sys, mxnet as mx, bmxnet
ONES = mx.nd.ones((1, 1, 1, 1))
results = {}
for name, code in json.loads(sys.argv[1]).items():
    try:
        value = eval(code)
        if hasattr(value, "wait_to_read"):
            value.wait_to_read()
        results[name] = "no error"
    except mx.base.MXNetError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        results[name] = lines[-1]
print(json.dumps(results))
"""


def test_shapes_past_int32_give_one_line_errors_instead_of_crashing():
    codes = {name: code for name, (code, _) in CRASHED_BEFORE.items()}
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(codes)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, MXNET_ENGINE_TYPE="NaiveEngine"))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (_, message) in CRASHED_BEFORE.items():
        assert message in results[name], (name, results[name])


def test_reduction_over_no_channels_or_features_is_refused():
    empty = mx.nd.array(np.ones((2, 0)))
    with pytest.raises(MXNetError, match=r"QFullyConnected: data of shape \(2, 0\) has no features"):
        mx.nd.QFullyConnected(empty, mx.nd.array(np.ones((3, 0))), num_hidden=3).wait_to_read()
    with pytest.raises(MXNetError, match=r"QFullyConnected: data of shape \(2, 0\) has no features"):
        mx.nd.QFullyConnected(empty, mx.nd.array(np.ones((3, 0)), dtype="int64"), num_hidden=3,
                              binarized_weights_only=True).wait_to_read()
    with pytest.raises(MXNetError, match=r"QConvolution: data of shape \(1, 0, 3, 3\) has no channels"):
        mx.nd.QConvolution(mx.nd.array(np.ones((1, 0, 3, 3))), mx.nd.array(np.ones((2, 1, 1, 0)), dtype="int64"),
                           kernel=(1, 1), num_filter=2, binarized_weights_only=True).wait_to_read()


@pytest.mark.parametrize("packed", [False, True])
def test_empty_batch_gives_empty_output(packed, rng):
    x = mx.nd.array(np.ones((0, 70, 5, 5)))
    w = rng.uniform(-1, 1, (4, 70, 3, 3)).astype(np.float32)
    weight = mx.nd.array(packing.pack_conv_weight(w), dtype="int64") if packed else mx.nd.array(w)
    out = mx.nd.QConvolution(x, weight, kernel=(3, 3), num_filter=4, binarized_weights_only=packed)
    assert out.shape == (0, 4, 3, 3)
    dense = mx.nd.array(np.ones((0, 70)))
    wd = rng.uniform(-1, 1, (5, 70)).astype(np.float32)
    weight = mx.nd.array(packing.pack_dense_weight(wd), dtype="int64") if packed else mx.nd.array(wd)
    assert mx.nd.QFullyConnected(dense, weight, num_hidden=5, binarized_weights_only=packed).shape == (0, 5)
    assert mx.nd.PlainPooling(x, kernel=(2, 2), stride=(2, 2)).shape == (0, 70, 2, 2)
    assert mx.nd.ChannelConcat(x, x, num_args=2).shape == (0, 140, 5, 5)


def test_packed_conv_with_changed_num_group_is_refused(rng):
    """64 channels in one group and 32 in each of two both pack into one word per filter tap:
    only packed_channels (set by model-converter) tells them apart."""
    w = rng.uniform(-1, 1, (8, 64, 3, 3)).astype(np.float32)
    x = mx.nd.array(rng.uniform(-1, 1, (1, 64, 5, 5)))
    packed = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    attrs = dict(kernel=(3, 3), num_filter=8, binarized_weights_only=True, packed_channels=64)
    mx.nd.QConvolution(x, packed, **attrs).wait_to_read()
    with pytest.raises(MXNetError, match=r"the packed weight holds 64 input channels per group \(packed_channels\), "
                                         r"the data gives 32 \(64 channels, num_group=2\)"):
        mx.nd.QConvolution(x, packed, num_group=2, **attrs).wait_to_read()


def test_packed_dense_with_other_features_is_refused(rng):
    w = rng.uniform(-1, 1, (3, 40)).astype(np.float32)
    packed = mx.nd.array(packing.pack_dense_weight(w), dtype="int64")
    x = mx.nd.array(rng.uniform(-1, 1, (2, 5, 8)))  # 40 features flattened, 8 (one word too) without
    attrs = dict(num_hidden=3, binarized_weights_only=True, packed_features=40)
    mx.nd.QFullyConnected(x, packed, **attrs).wait_to_read()
    with pytest.raises(MXNetError, match=r"the packed weight holds 40 features \(packed_features\), the data gives 8"):
        mx.nd.QFullyConnected(x, packed, flatten=False, **attrs).wait_to_read()


@pytest.mark.parametrize("attrs,message", [
    (dict(kernel=(1, 1), num_filter=1, packed_channels=3), "packed_channels='3': needs binarized_weights_only=True"),
    (dict(kernel=(1, 1), num_filter=1, pad=(0, 99999999999999999999)), "pad='99999999999999999999': out of range"),
    (dict(kernel=(1, 1), num_filter=1, residual_offset=2**31), "residual_offset='2147483648': must be in [0, 2147483647]"),
])
def test_attribute_limits(attrs, message):
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(ONES, ONES, **attrs).wait_to_read()


TOO_FEW_INPUTS = """
import json, mxnet as mx, bmxnet
for op, attrs, count in [("QConvolution", {"kernel": "(3, 3)", "num_filter": "4"}, 2), ("PlainBatchNorm", {}, 5),
                         ("ChannelConcat", {"num_args": "3"}, 3), ("QFullyConnected", {"num_hidden": "3"}, 2),
                         ("PlainPooling", {"kernel": "(2, 2)", "data_pieces": "2"}, 2)]:
    graph = {"nodes": [{"op": "null", "name": "data", "inputs": []},
                       {"op": op, "name": "layer", "attrs": attrs, "inputs": [[0, 0, 0]]}],
             "arg_nodes": [0], "node_row_ptr": [0, 1, 2], "heads": [[1, 0, 0]]}
    try:
        mx.sym.load_json(json.dumps(graph)).infer_shape(data=(1, 3, 8, 8))
        print(op, "no error")
    except mx.base.MXNetError as error:
        assert "%s: these attributes take %d inputs, got 1" % (op, count) in str(error), str(error)
        print(op, "refused")
"""


def test_symbol_with_fewer_inputs_than_its_attributes_is_refused():
    """A hand-written symbol file can give an operator fewer inputs than its attributes call
    for; shape inference indexed past them (a segfault) before the count was checked."""
    result = subprocess.run([sys.executable, "-c", TOO_FEW_INPUTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split().count("refused") == 5, result.stdout
