"""The converter's fusions: BatchNorm + sign folded into per-channel thresholds, the packed
QConvolution inputs they use (data_threshold, residual), and ChannelConcat."""
import json
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

from bmxnet import nn as bnn
from bmxnet import packing
from bmxnet.converter import convert_block
from bmxnet.model_zoo import get_model
from bmxnet.converter.sign_thresholds import sign_thresholds


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


# the last: rows of 67,500 and 40,000 floats, copied in 64 KB pieces by two threads
@pytest.mark.parametrize("shapes", [[(2, 5, 3, 4), (2, 7, 3, 4)], [(3, 4), (3, 1), (3, 6)], [(1, 64, 5, 5)],
                                    [(2, 27, 50, 50), (2, 16, 50, 50)]])
def test_channel_concat_equals_concat_forward_and_backward(shapes, rng):
    inputs = [mx.nd.array(rng.normal(size=s)) for s in shapes]
    for x in inputs:
        x.attach_grad()
    with mx.autograd.record():
        out = mx.nd.ChannelConcat(*inputs, num_args=len(inputs))
    np.testing.assert_array_equal(out.asnumpy(), np.concatenate([x.asnumpy() for x in inputs], axis=1))
    dy = rng.normal(size=out.shape).astype(np.float32)
    out.backward(mx.nd.array(dy))
    edges = np.cumsum([0] + [s[1] for s in shapes])
    for x, begin, end in zip(inputs, edges[:-1], edges[1:]):
        np.testing.assert_array_equal(x.grad.asnumpy(), dy[:, begin:end])


def test_channel_concat_takes_leading_channels(rng):
    """take_channels=(k, 0): the first k channels of input 0, all of input 1; backward, the
    channels input 0 did not give get a zero gradient."""
    a, b = mx.nd.array(rng.normal(size=(2, 6, 3, 5))), mx.nd.array(rng.normal(size=(2, 4, 3, 5)))
    for x in (a, b):
        x.attach_grad()
    with mx.autograd.record():
        out = mx.nd.ChannelConcat(a, b, num_args=2, take_channels=(4, 0))
    np.testing.assert_array_equal(out.asnumpy(), np.concatenate([a.asnumpy()[:, :4], b.asnumpy()], axis=1))
    dy = rng.normal(size=out.shape).astype(np.float32)
    out.backward(mx.nd.array(dy))
    np.testing.assert_array_equal(a.grad.asnumpy(), np.concatenate([dy[:, :4], np.zeros((2, 2, 3, 5))], axis=1))
    np.testing.assert_array_equal(b.grad.asnumpy(), dy[:, 4:])


@pytest.mark.parametrize("shapes,attrs,message", [
    ([(2, 5, 3, 4), (2, 3, 3, 4)], dict(num_args=2, take_channels=(6, 0)),
     "take_channels[0]=6 exceeds the 5 channels of input 0"),
    ([(2, 5, 3, 4)], dict(num_args=1, take_channels=(1, 2)), "invalid take_channels='(1, 2)': expected 1 values"),
    ([(2, 5, 3, 4), (2, 7, 3, 5)], dict(num_args=2), "input 1 has shape (2, 7, 3, 5), which differs from input 0 (2, 5, 3, 4) outside dimension 1"),
    ([(4,)], dict(num_args=1), "inputs need at least 2 dimensions, got (4,)"),
    ([(2, 3)], dict(num_args="x"), "invalid num_args='x': expected an integer"),
    ([(2, 3)], dict(num_args=1, dim=2), "unknown parameter 'dim' (known: num_args, take_channels)")])
def test_channel_concat_names_bad_input(shapes, attrs, message):
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.ChannelConcat(*[mx.nd.ones(s) for s in shapes], **attrs).wait_to_read()


def convert_exactly(net, x, initializer):
    """Initializes (unless `initializer` is None: already done), hybridizes and converts net;
    its packed output must equal the float-simulated one on x. Returns (packed block, report)."""
    if initializer is not None:
        net.initialize(initializer)
    net.hybridize()
    expected = net(x).asnumpy()
    packed, report = convert_block(net)
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)
    return packed, report


def test_converter_runs_meliusnet_concats_as_channel_concat(rng):
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 3, 32, 32)))
    _, report = convert_exactly(get_model("meliusnet22", classes=10), x, mx.init.Xavier(magnitude=2))
    assert report.channel_concats == 34 and report.residual_adds == 17 and len(report.folded) == 34
    assert report.slices_in_place == 17  # each improvement block's concat(x[:, :k], ...)
    assert report.residual_slices == 17  # ... and its x[:, k:] + conv(x)
    assert report.reshapes_skipped == 2  # the grouped stem convs' (0, 0, 0, 0), now before PlainBatchNorms
    assert report.concats_as_pieces == 33  # all but the last stage's, which the head's BatchNorm reads


class DenseChain(mx.gluon.HybridBlock):
    """Two MeliusNet-style dense layers on a float conv's 5 channels y: concat(y, conv(y)),
    an improvement adding conv(k) to k's last 4 channels, concat of its first `kept` (5: y)
    and that, concat again; `ending` says what reads the last concat: a packed conv
    ("packed"), a max pooling ("pool"), nothing (it is the output), or a packed conv and a
    float op reading the middle concat too ("float")."""

    def __init__(self, ending, kept=5):
        super().__init__()
        self.ending, self.kept = ending, kept
        with self.name_scope():
            self.stem = mx.gluon.nn.Conv2D(5, 1, in_channels=3)  # (channel counts come from the layers)
            self.dense1 = bnn.QConv2D(4, 3, padding=1, in_channels=5)
            self.improve = bnn.QConv2D(4, 3, padding=1, in_channels=9)
            self.dense2 = bnn.QConv2D(4, 1, in_channels=kept + 4)
            self.last = bnn.QConv2D(3, 3, padding=1, in_channels=kept + 8)

    def hybrid_forward(self, F, x):
        y = self.stem(x)
        k1 = F.concat(y, self.dense1(y), dim=1)
        improved = self.improve(k1) + F.slice_axis(k1, axis=1, begin=5, end=None)
        k2 = F.concat(F.slice_axis(k1, axis=1, begin=0, end=self.kept), improved, dim=1)
        k3 = F.concat(k2, self.dense2(k2), dim=1)
        if self.ending == "output":
            return k3
        if self.ending == "pool":
            return F.Pooling(k3, kernel=(2, 2), stride=(2, 2), pool_type="max")
        out = self.last(k3)
        return F.broadcast_add(out, F.mean(k2)) if self.ending == "float" else out


# what the last concat's readers end with; the packed convs' data_pieces, in graph order
@pytest.mark.parametrize("ending,kept,as_pieces,data_pieces", [
    ("packed", 5, 3, [1, 2, 2, 3]), ("pool", 5, 3, [1, 2, 2]), ("output", 5, 2, [1, 2, 2]),
    ("float", 5, 2, [1, 2, 1, 2]),
    ("packed", 3, 2, [1, 2, 1, 2])])  # the middle concat takes 3 of y's channels: it is made
def test_converter_hands_a_concat_read_only_by_packed_layers_and_concats_to_them_in_pieces(
        ending, kept, as_pieces, data_pieces, rng):
    """Exactly the same outputs; a concat that is an output, that an MXNet operator reads or
    that takes part of an input is still made."""
    x = mx.nd.array(rng.normal(size=(2, 3, 6, 6)))
    packed, report = convert_exactly(DenseChain(ending, kept), x, mx.init.Xavier())
    assert report.concats_as_pieces == as_pieces
    nodes = json.loads(packed._cached_graph[1].tojson())["nodes"]
    assert [int(n["attrs"].get("data_pieces", 1)) for n in nodes if n["op"] == "QConvolution"] == data_pieces
    poolings = [int(n["attrs"].get("data_pieces", 1)) for n in nodes if n["op"] == "PlainPooling"]
    assert poolings == ([3] if ending == "pool" else [])  # the pooling reads y and both convs' outputs


class ConvPlusInput(mx.gluon.HybridBlock):
    """conv(y) + y, with y the input itself, a ReLU of it (plain NCHW) or a float conv's
    output (oneDNN-blocked: 8 filters)."""

    def __init__(self, source):
        super().__init__()
        self.source = source
        with self.name_scope():
            self.float_conv = mx.gluon.nn.Conv2D(8, 1, use_bias=False, in_channels=8)
            self.conv = bnn.QConv2D(8, 3, padding=1, in_channels=8)

    def hybrid_forward(self, F, x):
        y = {"input": x, "relu": F.relu(x), "conv": self.float_conv(x)}[self.source]
        return self.conv(y) + y


@pytest.mark.parametrize("source,copies", [("conv", 1), ("relu", 0), ("input", 0)])
def test_converter_copies_a_blocked_output_that_feeds_two_packed_inputs_once(source, copies, rng):
    """MXNet converts a oneDNN-blocked tensor for each extension-operator input on its own;
    plain ones it hands on as they are."""
    x = mx.nd.array(rng.normal(size=(2, 8, 6, 6)))
    _, report = convert_exactly(ConvPlusInput(source), x, mx.init.Xavier())
    assert report.residual_adds == 1 and report.shared_copies == copies
    assert (("shared inputs copied once", copies) in report.pass_counts and
            ("shared inputs copied once:" in str(report)) == bool(copies))


def test_converter_converts_the_resnete_stem_output_once(rng):
    """The stem's output is both data and residual of the first block's packed conv. With the
    max pooling moved before it, the stem's BatchNorm runs as PlainBatchNorm with the ReLU,
    reading an NHWC PlainPooling of the convolution's output transposed to NHWC (a plain copy
    of oneDNN's NHWC tensor): it hands on plain NCHW, no copy."""
    import json
    x = mx.nd.array(rng.uniform(-1, 1, size=(1, 3, 64, 64)))
    packed, report = convert_exactly(get_model("resnete18", classes=10), x, mx.init.Xavier(magnitude=2))
    assert report.shared_copies == 0
    nodes = json.loads(packed(mx.sym.var("data")).tojson())["nodes"]
    bn = next(n for n in nodes if n["op"] == "PlainBatchNorm" and "stem" in n["name"])
    pool = nodes[bn["inputs"][0][0]]
    transpose = nodes[pool["inputs"][0][0]]
    assert bn["attrs"]["channels_last"] == "True" and bn["attrs"]["act_type"] == "relu"
    assert pool["op"] == "PlainPooling" and pool["attrs"]["layout"] == "NHWC"
    assert transpose["op"] == "transpose" and nodes[transpose["inputs"][0][0]]["op"] == "Convolution"
    first = next(n for n in nodes if n["op"] == "QConvolution")
    assert nodes[first["inputs"][0][0]] is bn and nodes[first["inputs"][-1][0]] is bn


def test_converter_runs_poolings_of_plain_tensors_as_plain_pooling(rng):
    """ResNetE's shortcut and head poolings read packed layers' (plain NCHW) outputs; its stem
    pooling reads a float conv's oneDNN output, which only the stem's BatchNorm reads: it
    pools that output transposed to NHWC."""
    import json
    x = mx.nd.array(rng.uniform(-1, 1, size=(1, 3, 64, 64)))
    packed, report = convert_exactly(get_model("resnete18", classes=10), x, mx.init.Xavier(magnitude=2))
    assert report.poolings == 4 and report.poolings_channels_last == 1 and report.batchnorms == 5
    assert report.relus_fused == 2
    assert re.search(r"PlainPooling: +4\n.*PlainBatchNorm: +5\n.*NHWC PlainPooling: +1\n"
                     r"ReLUs fused into PlainBatchNorm: +2\n", str(report))
    nodes = json.loads(packed(mx.sym.var("data")).tojson())["nodes"]
    pools = [(n["name"], n["op"], n["attrs"].get("layout")) for n in nodes if n["op"] in ("Pooling", "PlainPooling")]
    assert [(op, layout) for name, op, layout in pools if "stem" in name] == [("PlainPooling", "NHWC")]
    assert [op for name, op, _ in pools if "stem" not in name] == ["PlainPooling"] * 4


@pytest.mark.parametrize("attrs,replaced", [
    (dict(kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full", count_include_pad=False), 1),
    (dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="max"), 1),
    (dict(kernel=(2, 2), pool_type="sum"), 0),
    (dict(kernel=(2, 2), pool_type="lp", p_value=2), 0)])
def test_converter_replaces_only_poolings_plain_pooling_computes(attrs, replaced, rng):
    class ConvThenPool(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.conv = bnn.QConv2D(4, 3, padding=1, in_channels=3)

        def hybrid_forward(self, F, x):
            return F.Pooling(self.conv(x), **attrs)

    x = mx.nd.array(rng.normal(size=(2, 3, 7, 7)))
    _, report = convert_exactly(ConvThenPool(), x, mx.init.Xavier())
    assert report.poolings == replaced


def test_converter_counts_no_reader_in_a_skipped_sign_activation(rng):
    """A QDense reads the flattened map through its sign activation, which the converter skips:
    one live reader, so no copy (binary LeNet's Flatten had one)."""
    class FlattenDense(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.dense = bnn.QDense(6, in_units=48)

        def hybrid_forward(self, F, x):
            return self.dense(F.flatten(F.relu(x)))

    x = mx.nd.array(rng.normal(size=(2, 3, 4, 4)))
    _, report = convert_exactly(FlattenDense(), x, mx.init.Xavier())
    assert report.shared_copies == 0


@pytest.mark.parametrize("sliced_twice,float_source,taken", [(False, False, 1), (True, False, 0), (False, True, 0)])
def test_converter_reads_a_leading_slice_in_place_when_plain_and_only_the_concat_reads_it(
        sliced_twice, float_source, taken, rng):
    """Not when something else reads the slice too, nor when the sliced tensor comes from a
    float conv (oneDNN-blocked: MXNet would convert all of it for the concat)."""
    class SliceConcat(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.binary = bnn.QConv2D(3, 3, padding=1, in_channels=5)
                self.float = mx.gluon.nn.Conv2D(3, 3, padding=1, in_channels=5)

        def hybrid_forward(self, F, x):
            packed = self.binary(x)
            y = self.float(x) if float_source else packed
            head = F.slice_axis(y, axis=1, begin=0, end=2)
            out = F.concat(head, packed, dim=1)
            return F.broadcast_add(out, F.mean(head)) if sliced_twice else out

    x = mx.nd.array(rng.normal(size=(2, 5, 6, 6)))
    _, report = convert_exactly(SliceConcat(), x, mx.init.Xavier())
    assert report.slices_in_place == taken


def randomize_batchnorms(net, rng, negative_gammas=False):
    """Trained-looking BatchNorm parameters (a fresh BatchNorm is the identity, under which
    oneDNN's two formulas agree)."""
    for name, param in net.collect_params().items():
        size = param.shape
        if name.endswith("gamma"):
            gamma = rng.uniform(0.2, 2, size) * (rng.choice([-1, 1], size) if negative_gammas else 1)
            param.set_data(mx.nd.array(gamma))
        elif name.endswith(("beta", "running_mean")):
            param.set_data(mx.nd.array(rng.normal(size=size)))
        elif name.endswith("running_var"):
            param.set_data(mx.nd.array(rng.uniform(0.5, 3, size)))


def convert_trained_exactly(net, x, rng, negative_gammas=False):
    """convert_exactly, with the BatchNorms given trained-looking parameters first."""
    net.initialize(mx.init.Xavier(magnitude=2))
    net(x)
    randomize_batchnorms(net, rng, negative_gammas)
    return convert_exactly(net, x, None)


# model, max poolings moved, BatchNorms run as PlainBatchNorm, concats read as pieces (without
# and with negative gammas: a max pooling that stays behind its BatchNorm keeps the concat
# before it)
@pytest.mark.parametrize("name,moved,batchnorms,relus,as_pieces", [
    ("resnete18", 1, 5, 2, (0, 0)), ("birealnet18", 1, 5, 2, (0, 0)), ("meliusnet22", 4, 7, 7, (33, 30)),
    ("binary_densenet28", 4, 5, 5, (22, 19))])
@pytest.mark.parametrize("negative_gammas", [False, True])
def test_zoo_models_with_trained_batchnorms_convert_exactly(name, moved, batchnorms, relus, as_pieces,
                                                            negative_gammas, rng):
    """Max poolings move before the BatchNorms they follow (not past a negative gamma), and
    BatchNorms of plain tensors, for bmxnet operators or of 2-D convs and poolings (ResNetE's
    stem, head and shortcuts) run as PlainBatchNorm with the float model's formula (packed
    ResNetE's head had differed)."""
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 3, 64, 64)))
    _, report = convert_trained_exactly(get_model(name, classes=10), x, rng, negative_gammas)
    assert report.poolings_first == (0 if negative_gammas else moved) and report.batchnorms == batchnorms
    assert report.concats_as_pieces == as_pieces[negative_gammas]
    assert report.relus_fused == relus  # every ReLU after a PlainBatchNorm (MeliusNet: stem, transitions, head)
    assert dict(report.pass_counts)["BatchNorm of plain tensors as PlainBatchNorm"] == batchnorms
    assert dict(report.pass_counts)["ReLUs fused into PlainBatchNorm"] == relus


@pytest.mark.slow
def test_converter_caps_data_pieces_at_sixteen(rng):
    """meliusnet59's stages have up to 24 dense layers: a concat whose pieces would give a
    layer more than 16 is made, and the chain goes on from it; still exact."""
    x = mx.nd.array(rng.uniform(-1, 1, size=(1, 3, 64, 64)))
    packed, report = convert_trained_exactly(get_model("meliusnet59", classes=10), x, rng)
    nodes = json.loads(packed._cached_graph[1].tojson())["nodes"]
    pieces = [int(n["attrs"].get("data_pieces", 1)) for n in nodes if n["op"] in ("QConvolution", "PlainPooling")]
    assert max(pieces) == 16 and report.concats_as_pieces == 105 and report.channel_concats == 108


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
