"""PlainBatchNorm: MXNet's BatchNorm inference values, bit for bit, in each of the three ways
MXNet computes them (oneDNN on plain tensors, oneDNN on blocked ones, MXNet's own loop), on
each kernel path; its gradient; one-line errors."""
import os
import platform
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

SHAPES = [(3, 5), (2, 7, 9), (2, 37, 5, 6), (1, 3, 2, 2, 3), (2, 64, 7, 7)]


def parameters(rng, channels):
    return [mx.nd.array(a) for a in (rng.uniform(-2, 2, channels), rng.normal(size=channels),
                                     rng.normal(size=channels), rng.uniform(1e-3, 4, channels))]


@pytest.mark.parametrize("fix_gamma,eps", [(False, 1e-5), (True, 1e-3), (False, 0.1)])
def test_plain_batchnorm_equals_batchnorm_on_plain_tensors(isa, fix_gamma, eps, rng):
    for shape in SHAPES:
        x = mx.nd.array(rng.normal(scale=3, size=shape))
        params = parameters(rng, shape[1])
        expected = mx.nd.BatchNorm(x, *params, fix_gamma=fix_gamma, eps=eps).asnumpy()
        got = mx.nd.PlainBatchNorm(x, *params, fix_gamma=fix_gamma, eps=eps).asnumpy()
        np.testing.assert_array_equal(got, expected, err_msg=str(shape))


class ConvThenBatchNorm(mx.gluon.HybridBlock):
    """An identity 1x1 conv (exact) in front: oneDNN hands the BatchNorm a blocked tensor when
    the filters are a multiple of 8, a plain one otherwise (model-converter's rule)."""

    def __init__(self, channels, fix_gamma):
        super().__init__()
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(channels, 1, use_bias=False, in_channels=channels)
            self.bn = mx.gluon.nn.BatchNorm(in_channels=channels, scale=not fix_gamma)

    def hybrid_forward(self, F, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize("channels,fix_gamma", [(16, False), (24, False), (37, False), (64, True), (100, False)])
def test_plain_batchnorm_blocked_equals_batchnorm_after_a_conv(isa, channels, fix_gamma, rng):
    net = ConvThenBatchNorm(channels, fix_gamma)
    net.initialize()
    net.conv.weight.set_data(mx.nd.array(np.eye(channels).reshape(channels, channels, 1, 1)))
    params = parameters(rng, channels)
    for param, value in zip((net.bn.gamma, net.bn.beta, net.bn.running_mean, net.bn.running_var), params):
        param.set_data(value)
    net.hybridize(static_alloc=True)
    x = mx.nd.array(rng.normal(scale=3, size=(2, channels, 9, 10)))
    expected = net(x).asnumpy()
    blocked = channels % 8 == 0
    got = mx.nd.PlainBatchNorm(x, *params, fix_gamma=fix_gamma, eps=1e-5, blocked=blocked).asnumpy()
    np.testing.assert_array_equal(got, expected)
    if platform.machine() != "aarch64":  # MXNet's aarch64 wheel fuses on every layout
        # the formulas differ (this CPU has FMA): the test could not pass with the other one
        other = mx.nd.PlainBatchNorm(x, *params, fix_gamma=fix_gamma, eps=1e-5, blocked=not blocked).asnumpy()
        assert (other != expected).mean() > 0.05


@pytest.mark.parametrize("channels,size", [(3, (5, 7)), (13, (4, 4)), (64, (7, 7)), (70, (9, 11)), (37, (15, 13))])
def test_plain_batchnorm_reads_channels_last_data(isa, channels, size, rng):
    """channels_last: (N, H, W, C) in, the same (N, C, H, W) values out (8 x 8 blocks, their
    edges, and tasks of 32 channels and 128 pixels with theirs)."""
    x = mx.nd.array(rng.normal(scale=3, size=(2, channels) + size))
    params = parameters(rng, channels)
    for blocked in (False, True):
        expected = mx.nd.PlainBatchNorm(x, *params, fix_gamma=False, eps=1e-5, blocked=blocked).asnumpy()
        got = mx.nd.PlainBatchNorm(x.transpose((0, 2, 3, 1)), *params, fix_gamma=False, eps=1e-5, blocked=blocked,
                                   channels_last=True).asnumpy()
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("channels_last", [False, True])
def test_plain_batchnorm_fused_relu_equals_relu_after_it(isa, channels_last, rng):
    """act_type="relu": MXNet's relu of the same values, NaN kept, on every kernel path
    (vector bodies, their tails and the channels-last blocks' edges)."""
    for shape in [(2, 37, 5, 6), (2, 64, 7, 7), (1, 13, 4, 4)]:
        x = rng.normal(scale=3, size=shape).astype(np.float32)
        x[0, 0, 0, :2] = np.nan, -np.inf
        params = parameters(rng, shape[1])
        data = mx.nd.array(x.transpose(0, 2, 3, 1) if channels_last else x)
        for blocked in (False, True):
            attrs = dict(fix_gamma=False, eps=1e-5, blocked=blocked, channels_last=channels_last)
            expected = mx.nd.relu(mx.nd.PlainBatchNorm(data, *params, **attrs)).asnumpy()
            got = mx.nd.PlainBatchNorm(data, *params, act_type="relu", **attrs).asnumpy()
            np.testing.assert_array_equal(got, expected, err_msg=str((shape, blocked)))
            assert np.isnan(got[0, 0, 0, 0]) and (got[~np.isnan(got)] >= 0).all()


MXNET_OWN_LOOP_PROBE = """
import numpy as np, mxnet as mx, bmxnet
rng = np.random.RandomState(1)
for shape in [(3, 5), (2, 37, 5, 6), (2, 64, 7, 7)]:
    x = mx.nd.array(rng.normal(scale=3, size=shape))
    c = shape[1]
    params = [mx.nd.array(a) for a in (rng.uniform(-2, 2, c), rng.normal(size=c), rng.normal(size=c),
                                       rng.uniform(1e-3, 4, c))]
    for blocked in (False, True):
        got = mx.nd.PlainBatchNorm(x, *params, fix_gamma=False, eps=1e-5, blocked=blocked).asnumpy()
        np.testing.assert_array_equal(got, mx.nd.BatchNorm(x, *params, fix_gamma=False, eps=1e-5).asnumpy())
print("ok")
"""


def test_plain_batchnorm_follows_mxnet_without_onednn():
    """MXNET_MKLDNN_ENABLED=0: MXNet's own loop, ((x - mean) / sqrt(var + eps)) * gamma + beta
    (on aarch64 with the last multiply and add fused), whatever the layout."""
    result = subprocess.run([sys.executable, "-c", MXNET_OWN_LOOP_PROBE], capture_output=True, text=True,
                            env=dict(os.environ, MXNET_MKLDNN_ENABLED="0"), timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("fix_gamma,blocked,channels_last,relu", [
    (False, False, False, False), (False, True, False, False), (True, False, False, False),
    (False, False, True, False), (False, False, False, True), (True, False, True, True)])
def test_plain_batchnorm_gradient_is_that_of_its_function(fix_gamma, blocked, channels_last, relu, rng):
    x = mx.nd.array(rng.normal(size=(2, 5, 4, 3)))
    params = parameters(rng, 5)
    inputs = [x] + params
    for a in inputs:
        a.attach_grad()
    dy = mx.nd.array(rng.normal(size=x.shape))
    data = mx.nd.array(x.asnumpy().transpose(0, 2, 3, 1)) if channels_last else x
    data.attach_grad()
    with mx.autograd.record():
        y = mx.nd.PlainBatchNorm(data, *params, fix_gamma=fix_gamma, eps=1e-5, blocked=blocked,
                                 channels_last=channels_last, act_type="relu" if relu else "none")
    y.backward(dy)
    got = [data.grad.asnumpy().transpose(0, 3, 1, 2) if channels_last else data.grad.asnumpy()]
    got += [a.grad.asnumpy() for a in params]
    gamma, beta, mean, var = [p.reshape((1, -1, 1, 1)) for p in params]
    with mx.autograd.record():
        scale = (1 if fix_gamma else gamma) / mx.nd.sqrt(var + 1e-5)
        reference = (x - mean) * scale + beta
        if relu:
            reference = mx.nd.relu(reference)
    reference.backward(dy)
    expected = [a.grad.asnumpy() for a in inputs]
    if fix_gamma:
        expected[1] = np.zeros(5, np.float32)
    for name, g, e in zip(("data", "gamma", "beta", "mean", "var"), got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("shapes,attrs,message", [
    ([(2, 5, 3, 3), (5,), (5,), (5,), (4,)], {}, "PlainBatchNorm: moving_var has shape (4,), expected (5,)"),
    ([(2, 5, 3, 3), (6,), (5,), (5,), (5,)], {}, "PlainBatchNorm: gamma has shape (6,), expected (5,)"),
    ([(5,), (5,), (5,), (5,), (5,)], {}, "PlainBatchNorm: data needs a channel axis (N, C, ...), got shape (5,)"),
    ([(2, 5), (5,), (5,), (5,), (5,)], dict(eps=0), "PlainBatchNorm: invalid eps='0': must be positive"),
    ([(2, 5), (5,), (5,), (5,), (5,)], dict(eps="x"), "PlainBatchNorm: invalid eps='x': expected a finite number"),
    ([(2, 5), (5,), (5,), (5,), (5,)], dict(axis=2), "PlainBatchNorm: unknown parameter 'axis'"),
    ([(2, 5), (5,), (5,), (5,), (5,)], dict(act_type="sigmoid"),
     "PlainBatchNorm: invalid act_type='sigmoid': expected one of none, relu"),
    ([(2, 4, 5), (5,), (5,), (5,), (5,)], dict(channels_last=True),
     "PlainBatchNorm: channels_last data must be 4-D (N, H, W, C), got shape (2, 4, 5)"),
    ([(2, 4, 4, 5), (4,), (4,), (4,), (4,)], dict(channels_last=True),
     "PlainBatchNorm: gamma has shape (4,), expected (5,)"),
])
def test_plain_batchnorm_names_bad_input(shapes, attrs, message):
    inputs = [mx.nd.ones(s) for s in shapes]
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.PlainBatchNorm(*inputs, **attrs).wait_to_read()
