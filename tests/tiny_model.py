"""A tiny model with every layer kind the converter rewrites, exported for the converter's
file-level tests, and helpers to read it back and run model-converter in this process."""
import contextlib
import hashlib
import io
import json
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

from bmxnet import ndarray_file
from bmxnet import nn as bnn
from smd import model_converter


class TinyNet(gluon.HybridBlock):
    """Every kind of layer the converter rewrites, small: a float conv, composed and xnor
    binary convs with a residual add, a max pooling, a float 1x1 conv, concats with channel
    slices and MeliusNet's improvement block (a residual read from a slice), a grouped binary
    conv, a binary and a float dense layer."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.half = channels, channels // 2
        with self.name_scope():
            self.stem = gluon.nn.Conv2D(channels, 3, padding=1, use_bias=False)
            self.bn0, self.bn1, self.bn2, self.bn3 = [gluon.nn.BatchNorm() for _ in range(4)]
            self.binary = bnn.QConv2D(channels, 3, padding=1)
            self.xnor = bnn.QConv2D(channels, 3, padding=1, scaling="xnor")
            self.pool = gluon.nn.MaxPool2D(2)
            self.float1x1 = gluon.nn.Conv2D(channels, 1)
            self.grouped = bnn.QConv2D(channels, 1, groups=2)
            self.dense = bnn.QDense(6)
            self.out = gluon.nn.Dense(3)
            self.improve = bnn.QConv2D(self.half, 3, padding=1)
            self.bn4 = gluon.nn.BatchNorm()

    def hybrid_forward(self, F, x):
        x = self.bn0(self.stem(x))
        x = x + self.xnor(self.bn1(self.binary(x)))
        x = self.float1x1(self.pool(x))
        y = F.concat(x, F.slice_axis(x, axis=1, begin=0, end=self.half), dim=1)
        improved = F.slice_axis(y, axis=1, begin=self.channels, end=None) + self.improve(self.bn4(y))
        x = F.concat(F.slice_axis(y, axis=1, begin=0, end=self.channels), improved, dim=1)
        x = self.grouped(self.bn2(x))
        return self.out(self.dense(F.flatten(F.relu(self.bn3(x)))))


INPUT_SHAPE = (2, 3, 8, 8)


def export_tiny(directory, channels, seed=5):
    """Exports a TinyNet with trained-looking BatchNorm statistics; returns its prefix."""
    mx.random.seed(seed)
    rng = np.random.RandomState(seed)
    net = TinyNet(channels)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.ones(INPUT_SHAPE))
    for name, param in net.collect_params().items():
        if name.endswith(("gamma", "running_var")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 2, size=param.shape)))
        elif name.endswith(("beta", "running_mean")):
            param.set_data(mx.nd.array(rng.normal(size=param.shape)))
    prefix = os.path.join(str(directory), "tiny%d" % channels)
    net.export(prefix)
    return prefix


def load_model(prefix):
    """(parsed symbol JSON, {key: numpy array}) of an exported model."""
    with open(prefix + "-symbol.json") as f:
        graph = json.load(f)
    return graph, ndarray_file.load(prefix + "-0000.params")


def node(graph, op, index=0, tagged=None):
    """The index-th node with op `op` (and with or without a composed-layer tag)."""
    found = [n for n in graph["nodes"] if n["op"] == op and (
        tagged is None or ("__bmxnet_layer__" in n.get("attrs", {})) == tagged)]
    return found[index]


def key_of(params, suffix):
    return next(k for k in params if k.endswith(suffix))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_cli(*args):
    """(exit code, stdout, stderr) of model-converter run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = model_converter.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, message):
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("model-converter: error:"), err
    assert "please report" not in err and "unexpected" not in err, err
    assert message in err, err
