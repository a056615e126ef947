"""The converter's fusions: BatchNorm + sign folded into per-channel thresholds, ReLUs fused
into PlainBatchNorm, max poolings moved before BatchNorms, and the packed QConvolution inputs
they use (data_threshold, residual at a channel offset)."""
import json
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

from bmxnet import nn as bnn
from bmxnet import packing
from bmxnet.converter import convert_block
from bmxnet.converter.sign_thresholds import sign_thresholds
from conversion import convert_trained_exactly, randomize_batchnorms


def batchnorm(rng, channels, gamma=None, **attrs):
    gamma = rng.normal(size=channels) if gamma is None else gamma
    arrays = [mx.nd.array(a) for a in (gamma, rng.normal(size=channels), rng.normal(size=channels) * 3,
                                       rng.uniform(1e-3, 4, size=channels))]
    attrs.setdefault("fix_gamma", False)
    return lambda x: mx.nd.BatchNorm(x, *arrays, **attrs)


def sign_bits(values):
    return ~(values >= 0)  # NaN and negative -> 1, as the packing


@pytest.mark.parametrize("channels,attrs", [(1, {}), (37, {}), (70, dict(eps=1e-2)), (5, dict(fix_gamma=True))])
def test_thresholds_reproduce_batchnorm_sign_for_every_value(channels, attrs, rng):
    bn = batchnorm(rng, channels, **attrs)
    direction, threshold = sign_thresholds(bn, channels)
    assert set(np.unique(direction)) <= {-1.0, 1.0}
    x = rng.normal(size=(3, channels, 13, 11)).astype(np.float32) * 4
    flat = x.reshape(3, channels, -1)  # values on, just below and just above each threshold
    at = (direction * threshold)[None, :]
    flat[:, :, 0], flat[:, :, 1], flat[:, :, 2] = at, np.nextafter(at, -np.inf), np.nextafter(at, np.inf)
    flat[:, :, 3], flat[:, :, 4], flat[:, :, 5] = np.inf, -np.inf, np.nan
    expected = sign_bits(bn(mx.nd.array(x)).asnumpy())
    rule = ~(direction[None, :, None, None] * x >= threshold[None, :, None, None])
    np.testing.assert_array_equal(rule, expected)


def test_a_zero_gamma_cannot_be_folded(rng):
    gamma = rng.normal(size=4)
    gamma[2] = 0
    assert sign_thresholds(batchnorm(rng, 4, gamma=gamma), 4) is None


@pytest.mark.parametrize("groups", [1, 3])
def test_packed_conv_with_data_threshold_equals_batchnorm_then_sign(groups, rng):
    channels = 66
    bn = batchnorm(rng, channels)
    thresholds = sign_thresholds(bn, channels)
    x = mx.nd.array(rng.normal(size=(2, channels, 9, 7)) * 2)
    w = rng.uniform(-1, 1, size=(6, channels // groups, 3, 3)).astype(np.float32)
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=6, num_group=groups, binarized_weights_only=True)
    packed_w = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    expected = mx.nd.QConvolution(bn(x), packed_w, **attrs).asnumpy()
    fused = mx.nd.QConvolution(x, packed_w, mx.nd.array(thresholds), data_threshold=True, **attrs)
    np.testing.assert_array_equal(fused.asnumpy(), expected)


@pytest.mark.parametrize("threshold,attrs,message", [
    (np.zeros((2, 5)), {}, "data threshold has shape (2, 5), expected (2, 70)"),
    (np.zeros((2, 70)), {}, "data threshold directions (row 0) must be +1 or -1, got 0.000000 for channel 0"),
    (np.ones((2, 70)), dict(binarized_weights_only=False), "invalid data_threshold='True': needs binarized_weights_only=True")])
def test_data_threshold_input_is_checked(threshold, attrs, message):
    packed = attrs.get("binarized_weights_only", True)
    weight = mx.nd.zeros((4, 3, 3, 2), dtype="int64") if packed else mx.nd.zeros((4, 70, 3, 3))
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(mx.nd.ones((1, 70, 5, 5)), weight, mx.nd.array(threshold), kernel=(3, 3), num_filter=4,
                           data_threshold=True, **dict(dict(binarized_weights_only=True), **attrs)).wait_to_read()


def test_no_gradient_through_a_folded_batchnorm():
    x = mx.nd.ones((1, 70, 5, 5))
    x.attach_grad()
    with mx.autograd.record():
        out = mx.nd.QConvolution(x, mx.nd.zeros((4, 3, 3, 2), dtype="int64"), mx.nd.ones((2, 70)), kernel=(3, 3),
                                 num_filter=4, binarized_weights_only=True, data_threshold=True)
    with pytest.raises(MXNetError, match="no gradient through data_threshold"):
        out.backward()
        x.grad.wait_to_read()


class BatchNormThenBinaryConv(mx.gluon.HybridBlock):
    """BN -> binary conv; optionally the BN output also feeds a float path."""

    def __init__(self, shared):
        super().__init__()
        self.shared = shared
        with self.name_scope():
            self.bn = mx.gluon.nn.BatchNorm()
            self.conv = bnn.QConv2D(6, 3, padding=1, in_channels=5)

    def hybrid_forward(self, F, x):
        y = self.bn(x)
        out = self.conv(y)
        return F.broadcast_add(out, F.mean(y, axis=1, keepdims=True)) if self.shared else out


@pytest.mark.parametrize("shared,zero_gamma,folded", [(False, False, 1), (True, False, 0), (False, True, 0)])
def test_converter_folds_only_batchnorms_it_can_fold_exactly(shared, zero_gamma, folded, rng):
    net = BatchNormThenBinaryConv(shared)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.array(rng.normal(size=(2, 5, 6, 6)))
    net(x)
    params = net.bn.params
    params.get("running_mean").set_data(mx.nd.array(rng.normal(size=5)))
    params.get("running_var").set_data(mx.nd.array(rng.uniform(0.5, 2, size=5)))
    gamma = rng.normal(size=5)
    if zero_gamma:
        gamma[3] = 0
    params.get("gamma").set_data(mx.nd.array(gamma))
    expected = net(x).asnumpy()
    packed, report = convert_block(net)
    assert len(report.folded) == folded
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


class BatchNormReluPool(mx.gluon.HybridBlock):
    """conv -> BN -> ReLU -> max pool -> binary conv, the BN output also read elsewhere when
    `shared`."""

    def __init__(self, shared):
        super().__init__()
        self.shared = shared
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(8, 3, padding=1, in_channels=3)
            self.bn = mx.gluon.nn.BatchNorm(in_channels=8)
            self.binary = bnn.QConv2D(8, 3, padding=1, in_channels=8)

    def hybrid_forward(self, F, x):
        y = self.bn(self.conv(x))
        out = self.binary(F.Pooling(F.relu(y), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"))
        return F.concat(out, F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="avg"), dim=1) if self.shared else out


@pytest.mark.parametrize("shared,moved", [(False, 1), (True, 0)])
def test_converter_moves_a_max_pooling_only_past_a_batchnorm_it_alone_reads(shared, moved, rng):
    x = mx.nd.array(rng.normal(size=(2, 3, 12, 12)))
    _, report = convert_trained_exactly(BatchNormReluPool(shared), x, rng)
    assert report.poolings_first == moved


class BatchNormReluBinary(mx.gluon.HybridBlock):
    """binary conv -> BN -> [pooling ->] ReLU -> binary conv ("max", "avg": a pooling between,
    which the BN's negative gammas keep behind it; "shared": the BN's output also read
    elsewhere; "output": no second binary conv, the ReLU is the graph's output)."""

    def __init__(self, case):
        super().__init__()
        self.case = case
        with self.name_scope():
            self.first = bnn.QConv2D(16, 3, padding=1, in_channels=16)
            self.bn = mx.gluon.nn.BatchNorm(in_channels=16)
            if case != "output":
                self.binary = bnn.QConv2D(16, 3, padding=1, in_channels=16)

    def hybrid_forward(self, F, x):
        y = self.bn(self.first(x))
        if self.case == "output":
            return F.relu(y)
        z = F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type=self.case) if self.case in ("max", "avg") else y
        out = self.binary(F.Activation(z, act_type="relu"))
        return out + y if self.case == "shared" else out


@pytest.mark.parametrize("case,fused", [("relu", 1), ("max", 1), ("avg", 0), ("shared", 0), ("output", 1)])
def test_converter_fuses_a_relu_into_the_plain_batchnorm_it_alone_reads(case, fused, rng):
    """Also through a max pooling (ReLU and max commute), not through an average one, not when
    another layer reads the BatchNorm's output; a fused ReLU that was the graph's output
    hands that role to the PlainBatchNorm."""
    x = mx.nd.array(rng.normal(size=(2, 16, 8, 8)))
    packed, report = convert_trained_exactly(BatchNormReluBinary(case), x, rng, negative_gammas=True)
    assert report.relus_fused == fused and report.batchnorms == 1
    nodes = json.loads(packed._cached_graph[1].tojson())["nodes"]
    relus = [n for n in nodes if n["op"] in ("relu", "Activation")]
    assert len(relus) == 1 - fused
    assert ("ReLUs fused into PlainBatchNorm:" in str(report)) == bool(fused)


class ConvBatchNormBinary(mx.gluon.HybridBlock):
    """An identity 1x1 float conv (16 filters: oneDNN hands on a blocked tensor) -> BN -> binary
    conv, whose BN + sign the converter folds."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(16, 1, use_bias=False, in_channels=16)
            self.bn = mx.gluon.nn.BatchNorm(in_channels=16)
            self.binary = bnn.QConv2D(8, 1, in_channels=16)

    def hybrid_forward(self, F, x):
        return self.binary(self.bn(self.conv(x)))


def threshold_probes(bn, channels):
    """An input (1, channels, 1, 12) holding, for each of the BatchNorm `bn`'s first `channels`
    channels, its sign threshold and the floats next to it under both of oneDNN's formulas,
    and their negatives."""
    arrays = [p.data() for p in (bn.gamma, bn.beta, bn.running_mean, bn.running_var)]
    probes = []
    for blocked in (False, True):
        _, threshold = sign_thresholds(lambda v: mx.nd.PlainBatchNorm(v, *arrays, eps=1e-5, fix_gamma=False,
                                                                      blocked=blocked), arrays[0].shape[0])
        threshold = threshold[:channels]
        probes += [np.nextafter(threshold, -np.inf), threshold, np.nextafter(threshold, np.inf)]
    values = np.stack(probes, axis=1).astype(np.float32)  # (channels, 6)
    return mx.nd.array(np.concatenate([values, -values], axis=1)[None, :, None, :])


def test_folded_thresholds_follow_the_float_models_batchnorm_formula(rng):
    """Inputs at and next to each channel's threshold under both of oneDNN's formulas: the
    float model fuses (its BN sees a blocked tensor), and a third of the channels' thresholds
    differ by one float between the formulas."""
    net = ConvBatchNormBinary()
    net.initialize(mx.init.Xavier())
    net.conv.weight.set_data(mx.nd.array(np.eye(16).reshape(16, 16, 1, 1)))
    x = mx.nd.array(rng.normal(size=(1, 16, 1, 4)))
    net(x)
    randomize_batchnorms(net, rng, negative_gammas=True)
    x = threshold_probes(net.bn, 16)
    net.hybridize()
    expected = net(x).asnumpy()
    packed, report = convert_block(net)
    assert report.folded
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


class ImprovementBatchNormBinary(mx.gluon.HybridBlock):
    """MeliusNet's improvement block on k = concat(x, conv(x)) (8 + 8 channels): y =
    concat(k[:, :8], k[:, 8:] + binary(k)), then BN -> binary conv. The add of a plain slice
    and a blocked conv output may come out either way, but the concat with the plain slice is
    plain, so the converter knows the BN's formula and folds it."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(8, 1, use_bias=False, in_channels=8)
            self.improve = bnn.QConv2D(8, 1, in_channels=16)
            self.bn = mx.gluon.nn.BatchNorm(in_channels=16)
            self.binary = bnn.QConv2D(8, 1, in_channels=16)

    def hybrid_forward(self, F, x):
        k = F.concat(x, self.conv(x), dim=1)
        improved = F.slice_axis(k, axis=1, begin=8, end=None) + self.improve(k)
        return self.binary(self.bn(F.concat(F.slice_axis(k, axis=1, begin=0, end=8), improved, dim=1)))


def test_meliusnet_batchnorms_fold_with_the_plain_formula(rng):
    """Inputs at and next to the thresholds of the BN's first 8 channels (x passes to them
    unchanged) under both formulas: those of a third of the channels differ by one float."""
    net = ImprovementBatchNormBinary()
    net.initialize(mx.init.Xavier())
    net(mx.nd.array(rng.normal(size=(1, 8, 1, 4))))
    randomize_batchnorms(net, rng, negative_gammas=True)
    x = threshold_probes(net.bn, 8)
    net.hybridize()
    expected = net(x).asnumpy()
    packed, report = convert_block(net)
    assert any("bn" in name or "batchnorm" in name for name in report.folded)
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)


@pytest.mark.parametrize("batch,offset", [(1, 5), (3, 64)])
def test_packed_conv_reads_a_residual_at_a_channel_offset(batch, offset, rng):
    """residual_offset=k: the residual input has k more channels in front, which are skipped;
    the same values as the slice, and its gradient is 0 there."""
    x = mx.nd.array(rng.normal(size=(batch, 13, 6, 7)))
    w = mx.nd.array(packing.pack_conv_weight(rng.normal(size=(8, 13, 3, 3)).astype(np.float32)), dtype="int64")
    residual = mx.nd.array(rng.normal(size=(batch, offset + 8, 6, 7)))
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=8, binarized_weights_only=True, residual=True)
    expected = mx.nd.QConvolution(x, w, residual[:, offset:], **attrs).asnumpy()
    residual.attach_grad()
    with mx.autograd.record():
        y = mx.nd.QConvolution(x, w, residual, residual_offset=offset, **attrs)
    np.testing.assert_array_equal(y.asnumpy(), expected)
    dy = mx.nd.array(rng.normal(size=y.shape))
    y.backward(dy)
    np.testing.assert_array_equal(residual.grad.asnumpy()[:, :offset], 0)
    np.testing.assert_array_equal(residual.grad.asnumpy()[:, offset:], dy.asnumpy())


@pytest.mark.parametrize("shape,extra,message", [
    ((2, 12, 6, 7), dict(residual_offset=5), "QConvolution: residual has shape (2, 12, 6, 7), expected (2, 13, 6, 7)"),
    (None, dict(residual_offset=5, residual=False), "QConvolution: invalid residual_offset='5': needs residual=True"),
])
def test_residual_offset_is_checked(shape, extra, message, rng):
    x = mx.nd.ones((2, 13, 6, 7))
    w = mx.nd.array(packing.pack_conv_weight(np.ones((8, 13, 3, 3), np.float32)), dtype="int64")
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=8, binarized_weights_only=True, residual=True)
    inputs = [x, w] + ([mx.nd.ones(shape)] if shape else [])
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(*inputs, **dict(attrs, **extra)).wait_to_read()
