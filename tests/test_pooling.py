"""PlainPooling: MXNet's Pooling values, bit for bit, on plain NCHW tensors (model-converter's
packed models) and NHWC ones, on each kernel path; its gradient; one-line errors."""
import itertools
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError


# (H, W): rows narrower and wider than one 8-output vector, odd sizes, a last partial vector
SIZES = [(7, 7), (8, 9), (5, 11), (12, 40)]
CONFIGS = [dict(kernel=(k, k), stride=(s, s), pad=(p, p), pool_type=t, pooling_convention=c, count_include_pad=i)
           for k, s, p, t, c, i in itertools.product([1, 2, 3], [1, 2, 3], [0, 1], ["max", "avg"], ["valid", "full"],
                                                     [True, False])
           if p < k and not (t == "max" and not i)]  # count_include_pad means nothing to max


def test_plain_pooling_equals_mxnet_pooling(isa, rng):
    compared = 0
    for (h, w), attrs in itertools.product(SIZES, CONFIGS):
        k, p = attrs["kernel"][0], attrs["pad"][0]
        if k > min(h, w) + 2 * p:
            continue
        x = mx.nd.array(rng.normal(scale=3, size=(2, 3, h, w)))
        expected = mx.nd.Pooling(x, **attrs).asnumpy()
        np.testing.assert_array_equal(mx.nd.PlainPooling(x, **attrs).asnumpy(), expected,
                                      err_msg="%s on %dx%d" % (attrs, h, w))
        compared += 1
    assert compared > 300


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_plain_pooling_global_equals_mxnet(pool_type, rng):
    x = mx.nd.array(rng.normal(size=(3, 20, 7, 6)))  # 60 planes: 7 chains of 8 and 4 alone
    expected = mx.nd.Pooling(x, kernel=(1, 1), global_pool=True, pool_type=pool_type).asnumpy()
    np.testing.assert_array_equal(mx.nd.PlainPooling(x, global_pool=True, pool_type=pool_type).asnumpy(), expected)


@pytest.mark.parametrize("kernel,stride", [((1, 2), (2, 1)), ((1, 1), (1, 2)), ((2, 2), (3, 3))])
def test_plain_pooling_global_full_convention_equals_mxnet(kernel, stride, rng):
    """MXNet picks its own loop or oneDNN's by the kernel and stride attributes, which global
    pooling otherwise ignores (the first and last: its own loop on 6x7, the second oneDNN's)."""
    x = mx.nd.array(rng.normal(size=(2, 3, 6, 7)))
    attrs = dict(kernel=kernel, stride=stride, global_pool=True, pool_type="avg", pooling_convention="full")
    np.testing.assert_array_equal(mx.nd.PlainPooling(x, **attrs).asnumpy(), mx.nd.Pooling(x, **attrs).asnumpy())


@pytest.mark.parametrize("attrs", [dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"),
                                   dict(kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full",
                                        count_include_pad=False),
                                   dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg")])
def test_plain_pooling_gradient_equals_mxnet(attrs, rng):
    x = mx.nd.array(rng.normal(size=(2, 3, 9, 10)))
    dy = mx.nd.array(rng.normal(size=mx.nd.Pooling(x, **attrs).shape))
    grads = []
    for op in (mx.nd.Pooling, mx.nd.PlainPooling):
        x.attach_grad()
        with mx.autograd.record():
            y = op(x, **attrs)
        y.backward(dy)
        grads.append(x.grad.asnumpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attrs", [dict(kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full"),
                                   dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg"),
                                   dict(global_pool=True, pool_type="avg")])
def test_plain_pooling_reads_data_pieces_like_their_concat(attrs, rng):
    """data_pieces=k: the k inputs are the data, joined along the channels; each gets its
    part of the gradient."""
    x = rng.normal(size=(2, 7, 5, 6)).astype(np.float32)
    joined, pieces = mx.nd.array(x), [mx.nd.array(part) for part in np.split(x, (1, 4), axis=1)]
    for data in [joined] + pieces:
        data.attach_grad()
    with mx.autograd.record():
        whole = mx.nd.PlainPooling(joined, **attrs)
    dy = mx.nd.array(rng.normal(size=whole.shape))
    whole.backward(dy)
    with mx.autograd.record():
        split = mx.nd.PlainPooling(*pieces, data_pieces=3, **attrs)
    split.backward(dy)
    np.testing.assert_array_equal(split.asnumpy(), whole.asnumpy())
    np.testing.assert_array_equal(np.concatenate([p.grad.asnumpy() for p in pieces], axis=1), joined.grad.asnumpy())


NHWC_CONFIGS = [dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"),
                dict(kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full"),
                dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg"),
                dict(kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full", count_include_pad=False),
                dict(kernel=(2, 3), stride=(1, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
                dict(kernel=(1, 1), global_pool=True, pool_type="avg"), dict(kernel=(1, 1), global_pool=True, pool_type="max")]


@pytest.mark.parametrize("attrs", NHWC_CONFIGS)
def test_plain_pooling_nhwc_equals_mxnet_pooling_of_the_nchw_tensor(attrs, isa, rng):
    """layout="NHWC" (the converter's pooling of a oneDNN convolution's output): values and
    gradient of MXNet's Pooling of the same tensor in NCHW, with NaN and infinities, on
    channel counts that fill no vector, several with a remainder, and several exactly."""
    for channels in (5, 13, 45, 64):
        data = rng.normal(scale=3, size=(2, channels, 9, 11)).astype(np.float32)
        flat = data.reshape(-1)
        for value, count in ((np.nan, 4), (np.inf, 3), (-np.inf, 3)):
            flat[rng.choice(flat.size, count, replace=False)] = value
        x, x_nhwc = mx.nd.array(data), mx.nd.array(data.transpose(0, 2, 3, 1))
        expected = mx.nd.Pooling(x, **attrs)
        got = mx.nd.PlainPooling(x_nhwc, layout="NHWC", **attrs)
        assert got.shape == tuple(expected.shape[i] for i in (0, 2, 3, 1))
        np.testing.assert_array_equal(got.asnumpy().transpose(0, 3, 1, 2), expected.asnumpy(),
                                      err_msg="%s, %d channels" % (attrs, channels))
        if attrs["pool_type"] == "avg" and np.isnan(data).any():
            continue  # NaN spreads through an average's gradient in no particular way
        for array in (x, x_nhwc):
            array.attach_grad()
        with mx.autograd.record():
            expected = mx.nd.Pooling(x, **attrs)
            got = mx.nd.PlainPooling(x_nhwc, layout="NHWC", **attrs)
        dy = rng.normal(size=expected.shape).astype(np.float32)
        expected.backward(mx.nd.array(dy))
        got.backward(mx.nd.array(dy.transpose(0, 2, 3, 1)))
        np.testing.assert_allclose(x_nhwc.grad.asnumpy().transpose(0, 3, 1, 2), x.grad.asnumpy(), rtol=1e-6,
                                   atol=1e-6, err_msg="gradient, %s, %d channels" % (attrs, channels))


def test_plain_pooling_leaves_its_input_alone(rng):
    data = rng.normal(size=(1, 2, 6, 6)).astype(np.float32)
    x = mx.nd.array(data)
    mx.nd.PlainPooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg").wait_to_read()
    np.testing.assert_array_equal(x.asnumpy(), data)


@pytest.mark.parametrize("shape,attrs,message", [
    ((1, 1, 4, 4), dict(pool_type="max"), "missing required parameter 'kernel' (or global_pool=True)"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), pad=(2, 2)), "invalid pad='(2, 2)': must be smaller than the kernel (2, 2)"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), pool_type="sum"), "invalid pool_type='sum': expected one of max, avg"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), pooling_convention="same"),
     "invalid pooling_convention='same': expected one of valid, full"),
    ((1, 1, 2, 2), dict(kernel=(3, 3)), "kernel (3, 3) is larger than the padded input (2 along dimension 2)"),
    ((4, 4), dict(kernel=(2, 2)), "data must be 4-D NCHW, got (4, 4)"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), layout="NCDHW"), "invalid layout='ncdhw': expected one of nchw, nhwc, none"),
    ((4, 4), dict(kernel=(2, 2), layout="NHWC"), "data must be 4-D NHWC, got (4, 4)"),
    ((1, 2, 2, 1), dict(kernel=(3, 3), layout="NHWC"),
     "kernel (3, 3) is larger than the padded input (2 along dimension 1)"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), layout="NHWC", data_pieces=2),
     "invalid layout='NHWC': takes one data input (data_pieces=1)"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), p_value=2), "unknown parameter 'p_value'"),
    ((1, 1, 4, 4), dict(kernel=(2, 2), data_pieces=17), "invalid data_pieces='17': must be in [1, 16]")])
def test_plain_pooling_names_bad_input(shape, attrs, message):
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.PlainPooling(mx.nd.ones(shape), **attrs).wait_to_read()


def test_plain_pooling_data_pieces_must_agree_outside_the_channels():
    with pytest.raises(MXNetError, match=re.escape(
            "PlainPooling: data piece 1 has shape (1, 2, 4, 5), which differs from the data (1, 1, 4, 4) "
            "outside dimension 1")):
        mx.nd.PlainPooling(mx.nd.ones((1, 1, 4, 4)), mx.nd.ones((1, 2, 4, 5)), kernel=(2, 2),
                           data_pieces=2).wait_to_read()


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_plain_pooling_treats_nan_and_infinities_as_mxnet_does(pool_type, isa, rng):
    data = rng.normal(size=(2, 3, 9, 20)).astype(np.float32)
    flat = data.reshape(-1)
    for value, count in ((np.nan, 12), (np.inf, 6), (-np.inf, 6)):
        flat[rng.choice(flat.size, count, replace=False)] = value
    x = mx.nd.array(data)
    for attrs in (dict(kernel=(2, 2), stride=(2, 2)), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))):
        expected = mx.nd.Pooling(x, pool_type=pool_type, **attrs).asnumpy()
        got = mx.nd.PlainPooling(x, pool_type=pool_type, **attrs).asnumpy()
        np.testing.assert_array_equal(got, expected, err_msg=str(attrs))


MXNET_OWN_LOOP_PROBE = """
import itertools, numpy as np, mxnet as mx, bmxnet
rng = np.random.RandomState(1)
x = mx.nd.array(rng.normal(scale=3, size=(2, 3, 9, 11)))
for k, s, p, c, i in itertools.product([2, 3], [1, 2], [0, 1], ["valid", "full"], [True, False]):
    if p >= k:
        continue
    attrs = dict(kernel=(k, k), stride=(s, s), pad=(p, p), pool_type="avg", pooling_convention=c, count_include_pad=i)
    np.testing.assert_array_equal(mx.nd.PlainPooling(x, **attrs).asnumpy(), mx.nd.Pooling(x, **attrs).asnumpy(),
                                  err_msg=str(attrs))
g = dict(kernel=(1, 1), global_pool=True, pool_type="avg")
np.testing.assert_array_equal(mx.nd.PlainPooling(x, **g).asnumpy(), mx.nd.Pooling(x, **g).asnumpy())
print("ok")
"""


def test_plain_pooling_follows_mxnet_without_onednn():
    """MXNET_MKLDNN_ENABLED=0: MXNet averages with its own loop (each tap divided, then summed)."""
    result = subprocess.run([sys.executable, "-c", MXNET_OWN_LOOP_PROBE], capture_output=True, text=True,
                            env=dict(os.environ, MXNET_MKLDNN_ENABLED="0"), timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
