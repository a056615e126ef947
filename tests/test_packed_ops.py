"""Operators with binarized_weights_only=True: packed weights give the float-simulated result."""
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

from bmxnet import packing
import reference as ref


@pytest.mark.parametrize("c,o,k,s,p,d,g,pad_value,bias", [
    (1, 3, 3, 1, 1, 1, 1, 0, False), (37, 8, 3, 2, 1, 1, 1, 0, True), (65, 4, 5, 1, 2, 1, 1, -1, False),
    (128, 6, 3, 1, 2, 2, 2, 0, False), (200, 5, 1, 2, 0, 1, 1, 0, True), (63, 9, 3, 1, 1, 1, 3, -1, True)])
def test_packed_qconvolution_equals_float_simulated(c, o, k, s, p, d, g, pad_value, bias, rng):
    x = rng.uniform(-1, 1, size=(2, c, 7, 9)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(o, c // g, k, k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(o,)).astype(np.float32)
    attrs = dict(kernel=(k, k), stride=(s, s), pad=(p, p), dilate=(d, d), num_filter=o, num_group=g,
                 pad_value=pad_value, no_bias=not bias)
    extra = [mx.nd.array(b)] if bias else []
    simulated = mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(w), *extra, **attrs).asnumpy()
    packed_w = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    packed = mx.nd.QConvolution(mx.nd.array(x), packed_w, *extra, binarized_weights_only=True, **attrs)
    np.testing.assert_array_equal(packed.asnumpy(), simulated)


@pytest.mark.parametrize("bias", [False, True])
def test_packed_xnor_scaling_equals_float_simulated_bit_for_bit(bias, rng):
    """Both multiply the exact +-1 sum by the same scale (mean |w| summed in order), then add."""
    x = rng.uniform(-1, 1, size=(2, 70, 5, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(16, 70, 3, 3)).astype(np.float32)
    b = mx.nd.array(rng.uniform(-1, 1, size=(16,)))
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=16, scaling="xnor", no_bias=not bias)
    simulated = mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(w), *([b] if bias else []), **attrs).asnumpy()
    packed = mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(packing.pack_conv_weight(w), dtype="int64"),
                                mx.nd.array(packing.xnor_scale(w)), *([b] if bias else []),
                                binarized_weights_only=True, **attrs)
    np.testing.assert_array_equal(packed.asnumpy(), simulated)
    xd, wd = mx.nd.array(x.reshape(2, -1)[:, :630]), w.reshape(16, -1)
    dense = dict(num_hidden=16, scaling="xnor", no_bias=not bias)
    simulated = mx.nd.QFullyConnected(xd, mx.nd.array(wd), *([b] if bias else []), **dense).asnumpy()
    packed = mx.nd.QFullyConnected(xd, mx.nd.array(packing.pack_dense_weight(wd), dtype="int64"),
                                   mx.nd.array(packing.xnor_scale(wd)), *([b] if bias else []),
                                   binarized_weights_only=True, **dense)
    np.testing.assert_array_equal(packed.asnumpy(), simulated)


@pytest.mark.parametrize("features,flatten", [(1, True), (65, True), (300, True), (37, False)])
def test_packed_qfullyconnected_equals_float_simulated(features, flatten, rng):
    shape = (3, features) if flatten else (2, 3, features)
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    w = rng.uniform(-1, 1, size=(7, features)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(7,)).astype(np.float32)
    attrs = dict(num_hidden=7, no_bias=False, flatten=flatten)
    simulated = mx.nd.QFullyConnected(mx.nd.array(x), mx.nd.array(w), mx.nd.array(b), **attrs)
    packed = mx.nd.QFullyConnected(mx.nd.array(x), mx.nd.array(packing.pack_dense_weight(w), dtype="int64"),
                                   mx.nd.array(b), binarized_weights_only=True, **attrs)
    np.testing.assert_array_equal(packed.asnumpy(), simulated.asnumpy())


def test_packed_backward_gives_the_data_gradient(rng):
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 5, 6, 6)))
    w = rng.uniform(-1, 1, size=(4, 5, 3, 3)).astype(np.float32)
    x.attach_grad()
    with mx.autograd.record():
        out = mx.nd.QConvolution(x, mx.nd.array(packing.pack_conv_weight(w), dtype="int64"),
                                 kernel=(3, 3), pad=(1, 1), num_filter=4, binarized_weights_only=True)
    dy = rng.normal(size=out.shape).astype(np.float32)
    out.backward(mx.nd.array(dy))
    dx, _, _ = ref.conv2d_backward(ref.sign(x.asnumpy()), ref.sign(w), dy, pad=(1, 1))
    np.testing.assert_allclose(x.grad.asnumpy(), dx, rtol=1e-5, atol=1e-5)


def test_numpy_packing_roundtrip_and_layout():
    w = np.array([[-1.0] + [1.0] * 64 + [-2.0]], dtype=np.float32)  # 66 features
    packed = packing.pack_dense_weight(w)
    assert packed.dtype == np.int64 and packed.shape == (1, 2)
    assert packed[0, 0] == 1 and packed[0, 1] == 2  # bit 0 of word 0, bit 1 of word 1
    np.testing.assert_array_equal(packing.unpack_rows(packed, 66), np.sign(w))


@pytest.mark.parametrize("weight,message", [
    (np.zeros((4, 3, 3, 1), np.int64), "packed weight has shape (4, 3, 3, 1), expected (4, 3, 3, 2)"),
    (np.zeros((4, 3, 3, 2), np.float32), "input 1 must be int64, got float32"),
    (np.zeros((4, 3, 3, 2), np.int32), "input 1 must be int64, got int32")])
def test_packed_weight_of_wrong_shape_or_dtype_names_the_expected(weight, message):
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(mx.nd.ones((1, 70, 5, 5)), mx.nd.array(weight, dtype=weight.dtype),
                           kernel=(3, 3), num_filter=4, binarized_weights_only=True).wait_to_read()


def test_packed_mode_needs_one_bit():
    with pytest.raises(MXNetError, match="binarized_weights_only='True': needs act_bit=1 and weight_bit=1"):
        mx.nd.QFullyConnected(mx.nd.ones((1, 5)), mx.nd.ones((2, 1), dtype="int64"), num_hidden=2,
                              act_bit=2, binarized_weights_only=True).wait_to_read()


@pytest.mark.parametrize("bias", [False, True])
def test_packed_residual_adds_exactly_like_elemwise_add(bias, rng):
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 70, 6, 5)))
    w = rng.uniform(-1, 1, size=(5, 70, 3, 3)).astype(np.float32)
    extra = [mx.nd.array(rng.uniform(-1, 1, size=(5,)))] if bias else []
    residual = mx.nd.array(rng.normal(size=(2, 5, 6, 5)) * 100)
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=5, no_bias=not bias, binarized_weights_only=True)
    packed_w = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    expected = mx.nd.elemwise_add(mx.nd.QConvolution(x, packed_w, *extra, **attrs), residual).asnumpy()
    residual.attach_grad()
    with mx.autograd.record():
        out = mx.nd.QConvolution(x, packed_w, *extra, residual, residual=True, **attrs)
    np.testing.assert_array_equal(out.asnumpy(), expected)
    dy = rng.normal(size=out.shape).astype(np.float32)
    out.backward(mx.nd.array(dy))
    np.testing.assert_array_equal(residual.grad.asnumpy(), dy)


def test_packed_conv_fills_every_pixel_count_of_a_last_tile(isa, rng):
    """Maps of 17..32 pixels in one row end in a tile of 1..16 pixels (tiles hold 16): each
    vector count the kernels pick for a tile, with zero padding on every side and a residual,
    against the float-simulated layer plus elemwise_add."""
    w = rng.uniform(-1, 1, size=(3, 70, 3, 3)).astype(np.float32)
    packed_w = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=3)
    for width in range(17, 33):
        x = mx.nd.array(rng.uniform(-1, 1, size=(2, 70, 1, width)))
        residual = mx.nd.array(rng.normal(size=(2, 3, 1, width)))
        expected = mx.nd.elemwise_add(mx.nd.QConvolution(x, mx.nd.array(w), **attrs), residual).asnumpy()
        got = mx.nd.QConvolution(x, packed_w, residual, residual=True, binarized_weights_only=True, **attrs)
        np.testing.assert_array_equal(got.asnumpy(), expected, err_msg="width %d" % width)


@pytest.mark.parametrize("inputs,attrs,message", [
    (3, dict(binarized_weights_only=True, residual=True), "residual has shape (1, 4, 2, 2), expected (1, 4, 3, 3)"),
    (2, dict(residual=True), "invalid residual='True': needs binarized_weights_only=True")])
def test_residual_input_is_checked(inputs, attrs, message):
    packed_weight = attrs.get("binarized_weights_only", False)
    weight = mx.nd.zeros((4, 3, 3, 2), dtype="int64") if packed_weight else mx.nd.zeros((4, 70, 3, 3))
    args = [mx.nd.ones((1, 70, 5, 5)), weight, mx.nd.zeros((1, 4, 2, 2))][:inputs]
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(*args, kernel=(3, 3), num_filter=4, **attrs).wait_to_read()


@pytest.mark.parametrize("cuts,groups,stride", [((64,), 1, 1), ((30, 100), 1, 2), ((1, 2, 129), 2, 1)])
def test_packed_qconvolution_reads_data_pieces_like_their_concat(cuts, groups, stride, isa, rng):
    """data_pieces=k: input 0 and the last k - 1 inputs are the data, joined along the
    channels (cut inside 64-channel words and groups too); thresholds and the residual
    still come right after the weight."""
    channels, filters = 130, 6
    x = rng.uniform(-1, 1, size=(2, channels, 7, 6)).astype(np.float32)
    pieces = [mx.nd.array(part) for part in np.split(x, cuts, axis=1)]
    w = rng.uniform(-1, 1, size=(filters, channels // groups, 3, 3)).astype(np.float32)
    thresholds = np.stack([np.where(np.arange(channels) % 3, 1.0, -1.0), rng.uniform(-0.5, 0.5, channels)])
    out_hw = ((7 - 1) // stride + 1, (6 - 1) // stride + 1)
    residual = mx.nd.array(rng.normal(size=(2, filters) + out_hw))
    attrs = dict(kernel=(3, 3), stride=(stride, stride), pad=(1, 1), num_filter=filters, num_group=groups,
                 binarized_weights_only=True, data_threshold=True, residual=True)
    others = [mx.nd.array(packing.pack_conv_weight(w), dtype="int64"), mx.nd.array(thresholds), residual]
    expected = mx.nd.QConvolution(mx.nd.array(x), *others, **attrs).asnumpy()
    got = mx.nd.QConvolution(pieces[0], *others, *pieces[1:], data_pieces=len(pieces), **attrs).asnumpy()
    np.testing.assert_array_equal(got, expected)
    assert [p.shape[1] for p in pieces] == list(np.diff((0,) + cuts + (channels,)))  # inputs untouched
    np.testing.assert_array_equal(np.concatenate([p.asnumpy() for p in pieces], axis=1), x)


def test_packed_data_pieces_get_their_part_of_the_data_gradient(rng):
    x = rng.uniform(-1, 1, size=(2, 70, 5, 6)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(4, 70, 3, 3)).astype(np.float32)
    packed_w = mx.nd.array(packing.pack_conv_weight(w), dtype="int64")
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=4, binarized_weights_only=True)
    joined, pieces = mx.nd.array(x), [mx.nd.array(part) for part in np.split(x, (20, 64), axis=1)]
    dy = mx.nd.array(rng.normal(size=(2, 4, 5, 6)))
    for data in [joined] + pieces:
        data.attach_grad()
    with mx.autograd.record():
        whole = mx.nd.QConvolution(joined, packed_w, **attrs)
    whole.backward(dy)
    with mx.autograd.record():
        split = mx.nd.QConvolution(pieces[0], packed_w, *pieces[1:], data_pieces=3, **attrs)
    split.backward(dy)
    np.testing.assert_array_equal(split.asnumpy(), whole.asnumpy())
    np.testing.assert_array_equal(np.concatenate([p.grad.asnumpy() for p in pieces], axis=1), joined.grad.asnumpy())


@pytest.mark.parametrize("second,attrs,message", [
    ((1, 3, 4, 5), dict(binarized_weights_only=True),
     "data piece 1 has shape (1, 3, 4, 5), which differs from the data (1, 70, 5, 5) outside dimension 1"),
    ((1, 3, 5, 5), {}, "invalid data_pieces='2': needs binarized_weights_only=True"),
    ((1, 3, 5, 5), dict(binarized_weights_only=True, data_pieces=17), "invalid data_pieces='17': must be in [1, 16]")])
def test_data_pieces_are_checked(second, attrs, message):
    weight = mx.nd.zeros((4, 3, 3, 2), dtype="int64") if attrs else mx.nd.zeros((4, 73, 3, 3))
    attrs = {"data_pieces": 2, **attrs}
    with pytest.raises(MXNetError, match=re.escape(message)):
        mx.nd.QConvolution(mx.nd.ones((1, 70, 5, 5)), weight, mx.nd.ones(second), kernel=(3, 3), num_filter=4,
                           **attrs).wait_to_read()
