"""The converter's layout work: ChannelConcat and concats read as pieces, slices read in
place, blocked oneDNN outputs converted once, poolings of plain tensors as PlainPooling, and
the zoo models converted exactly with trained BatchNorms."""
import json
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

from bmxnet import nn as bnn
from bmxnet.model_zoo import get_model

from conversion import convert_exactly, convert_trained_exactly


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
