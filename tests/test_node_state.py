"""Each graph node keeps its parsed attributes, padding masks and prepared weights (lib_api
stateful operators): what it keeps must follow new weights, new shapes and other nodes."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from bmxnet import packing

ATTRS = dict(kernel=(3, 3), pad=(1, 1), num_filter=70, binarized_weights_only=True)


def packed_weight(rng, channels=40, filters=70):
    return packing.pack_conv_weight(rng.uniform(-1, 1, size=(filters, channels, 3, 3)).astype(np.float32))


def imperative(x, w):
    """A fresh node per call: nothing kept from an earlier one."""
    return mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(w, dtype="int64"), **ATTRS).asnumpy()


def packed_block(symbol, **weights):
    """A SymbolBlock whose nodes live as long as it does (static_alloc with static_shape keeps their states)."""
    block = gluon.SymbolBlock(symbol, [mx.sym.var("data", dtype="float32")])
    block.collect_params().initialize(mx.init.Zero())
    for name, value in weights.items():
        set_weight(block, name, value)
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def set_weight(block, name, value):
    block.collect_params()[name].set_data(mx.nd.array(value, dtype="int64"))


def test_a_node_prepares_its_weights_again_when_they_are_written_in_place(isa, rng):
    x = rng.uniform(-1, 1, size=(2, 40, 9, 9)).astype(np.float32)
    first, second = packed_weight(rng), packed_weight(rng)
    w = mx.sym.var("w", shape=first.shape, dtype="int64")
    block = packed_block(mx.sym.QConvolution(mx.sym.var("data"), w, **ATTRS), w=first)
    np.testing.assert_array_equal(block(mx.nd.array(x)).asnumpy(), imperative(x, first))
    set_weight(block, "w", second)  # same array, new version
    np.testing.assert_array_equal(block(mx.nd.array(x)).asnumpy(), imperative(x, second))
    block.collect_params()["w"].data()[:] = mx.nd.array(first, dtype="int64")
    np.testing.assert_array_equal(block(mx.nd.array(x)).asnumpy(), imperative(x, first))


def test_nodes_with_the_same_attributes_keep_their_own_weights(isa, rng):
    x = rng.uniform(-1, 1, size=(1, 40, 8, 8)).astype(np.float32)
    w1, w2 = packed_weight(rng), packed_weight(rng, channels=70)
    data = mx.sym.var("data")
    one = mx.sym.QConvolution(data, mx.sym.var("w1", shape=w1.shape, dtype="int64"), **ATTRS)
    two = mx.sym.QConvolution(one, mx.sym.var("w2", shape=w2.shape, dtype="int64"), **ATTRS)
    block = packed_block(mx.sym.Group([one, two]), w1=w1, w2=w2)
    for _ in range(2):
        got_one, got_two = block(mx.nd.array(x))
        np.testing.assert_array_equal(got_one.asnumpy(), imperative(x, w1))
        np.testing.assert_array_equal(got_two.asnumpy(), imperative(got_one.asnumpy(), w2))


@pytest.mark.parametrize("sizes", [((9, 9), (5, 12), (9, 9)), ((16, 16), (3, 3))])
def test_a_node_fed_new_shapes_works_out_their_masks(sizes, isa, rng):
    w = packed_weight(rng)
    block = packed_block(mx.sym.QConvolution(mx.sym.var("data"), mx.sym.var("w", shape=w.shape, dtype="int64"),
                                             **ATTRS), w=w)
    for size in sizes:
        x = rng.uniform(-1, 1, size=(1, 40) + size).astype(np.float32)
        np.testing.assert_array_equal(block(mx.nd.array(x)).asnumpy(), imperative(x, w))
