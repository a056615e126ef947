"""The converter's passes one at a time, on small hand-written graphs (parsed symbol JSON);
the end-to-end tests (test_converter.py, test_fusion.py, test_converter_layouts.py) run them on
real models."""
import numpy as np

from bmxnet.converter import PASSES
from bmxnet.converter.batchnorm_passes import (fold_batchnorm_signs, fuse_batchnorm_relus, pool_before_batchnorm,
                                               replace_batchnorms)
from bmxnet.converter.concat_passes import read_concat_pieces
from bmxnet.converter.onednn_layouts import float_batchnorm_layouts
from bmxnet.converter.passes import (absorb_residual_adds, copy_shared_inputs, pool_channels_last,
                                     replace_channel_concats, replace_poolings, skip_identity_reshapes,
                                     take_leading_slices)


def node(op, name, inputs=(), **attrs):
    return {"op": op, "name": name, "inputs": [[i, 0, 0] for i in inputs],
            "attrs": {k: str(v) for k, v in attrs.items()}}


def variable(name):
    return {"op": "null", "name": name, "inputs": []}


def consumers_of(nodes):
    counts = {}
    for n in nodes:
        for entry in n["inputs"]:
            counts[entry[0]] = counts.get(entry[0], 0) + 1
    return counts


def test_the_passes_are_listed_once_in_run_order():
    names = [name for name, _ in PASSES]
    assert len(names) == len(set(names)) == 12
    # a BatchNorm a moved pooling now reads may fold; poolings of absorbed adds' outputs are plain
    assert names.index("max poolings moved before their BatchNorm") < \
        names.index("BatchNorm + sign folded into thresholds")
    assert names.index("residual adds absorbed by packed convs") < \
        names.index("Pooling of plain tensors as PlainPooling")
    # the NHWC pooling takes over the transpose a PlainBatchNorm was given
    assert names.index("BatchNorm of plain tensors as PlainBatchNorm") < \
        names.index("Pooling of convolution outputs as NHWC PlainPooling")


def test_concat_along_channels_becomes_channel_concat():
    nodes = [variable("a"), variable("b"), node("Concat", "c1", (0, 1), dim=1), node("Concat", "c0", (0, 1), dim=0)]
    assert replace_channel_concats(nodes) == 1
    assert nodes[2]["op"] == "ChannelConcat" and nodes[2]["attrs"] == {"num_args": "2"}
    assert nodes[3]["op"] == "Concat"


def test_identity_reshape_is_skipped_only_where_bmxnet_operators_alone_read_it():
    nodes = [variable("data"), variable("w"), node("Reshape", "keep", (0,), shape=(0, 0, 0, 0)),
             node("QConvolution", "conv", (2, 1), kernel=(3, 3), num_filter=4),
             node("Reshape", "keep2", (0,), shape=(0, 0, 0, 0)), node("relu", "act", (4,)),
             node("Reshape", "flat", (0,), shape=(0, -1)), node("QActivation", "q", (6,))]
    assert skip_identity_reshapes(nodes, set(range(len(nodes)))) == 1
    assert nodes[3]["inputs"][0] == [0, 0, 0]  # the conv reads the data itself
    assert nodes[5]["inputs"][0] == [4, 0, 0] and nodes[7]["inputs"][0] == [6, 0, 0]


def test_only_poolings_of_plain_tensors_become_plain_pooling():
    nodes = [variable("data"), variable("w"), node("Pooling", "of_data", (0,), kernel=(2, 2), stride=(2, 2)),
             node("Convolution", "conv", (0, 1), kernel=(3, 3), num_filter=16, no_bias=True),
             node("Pooling", "of_conv", (3,), kernel=(2, 2), stride=(2, 2))]
    assert replace_poolings(nodes, {}) == 1
    assert nodes[2]["op"] == "PlainPooling" and nodes[4]["op"] == "Pooling"
    # MXNet's global pooling without a kernel runs its own loop, which sums in another order
    nodes = [variable("data"), node("Pooling", "global", (0,), global_pool=True, pool_type="avg")]
    assert replace_poolings(nodes, {}) == 0


def stem_graph(pool_readers=1, pool_type="max"):
    """conv -> Pooling -> PlainBatchNorm(channels_last) through a transpose, as
    replace_batchnorms leaves ResNetE's stem; pool_readers=2 adds another reader of the
    pooling."""
    nodes = [variable("data"), variable("w"), node("Convolution", "conv", (0, 1), kernel=(7, 7), num_filter=64),
             node("Pooling", "pool", (2,), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type=pool_type),
             node("PlainBatchNorm", "bn", (), channels_last=True)]
    nodes[4]["inputs"] = [{"op": "transpose", "name": "bn_nhwc", "attrs": {"axes": "(0, 2, 3, 1)"},
                           "inputs": [[3, 0, 0]]}]
    if pool_readers == 2:
        nodes.append(node("relu", "other", (3,)))
    return nodes


def test_a_pooling_only_a_channels_last_batchnorm_reads_pools_the_transposed_convolution_output():
    for pool_type in ("max", "avg"):
        nodes = stem_graph(pool_type=pool_type)
        assert pool_channels_last(nodes, [[4, 0, 0]], set(range(len(nodes)))) == 1
        pool, bn = nodes[3], nodes[4]
        assert pool["op"] == "PlainPooling" and pool["attrs"]["layout"] == "NHWC"
        assert pool["attrs"]["pool_type"] == pool_type
        assert pool["inputs"][0]["op"] == "transpose" and pool["inputs"][0]["inputs"] == [[2, 0, 0]]
        assert bn["inputs"][0] == [3, 0, 0] and bn["attrs"]["channels_last"] == "True"
    # read by another node too, or a graph output: the pooling's NCHW output is needed, it stays
    nodes = stem_graph(pool_readers=2)
    assert pool_channels_last(nodes, [[4, 0, 0], [5, 0, 0]], set(range(len(nodes)))) == 0
    nodes = stem_graph()
    assert pool_channels_last(nodes, [[4, 0, 0], [3, 0, 0]], set(range(len(nodes)))) == 0
    assert nodes[3]["op"] == "Pooling" and nodes[4]["inputs"][0]["op"] == "transpose"


def test_a_max_pooling_moves_before_a_batchnorm_that_never_decreases():
    def graph(gamma):
        nodes = [variable("data")] + [variable("bn_" + p) for p in ("gamma", "beta", "mean", "var")]
        nodes += [node("BatchNorm", "bn", (0, 1, 2, 3, 4)), node("relu", "act", (5,)),
                  node("Pooling", "pool", (6,), kernel=(2, 2), stride=(2, 2), pool_type="max")]
        params = {"arg:bn_gamma": np.array(gamma, np.float32), "arg:bn_beta": np.zeros(2, np.float32),
                  "aux:bn_mean": np.zeros(2, np.float32), "aux:bn_var": np.ones(2, np.float32)}
        return nodes, params
    nodes, params = graph([0.5, 2.0])
    assert pool_before_batchnorm(nodes, consumers_of(nodes), params) == 1
    assert [n["op"] for n in nodes[5:]] == ["Pooling", "BatchNorm", "relu"]
    assert nodes[5]["inputs"][0] == [0, 0, 0] and nodes[6]["inputs"][0] == [5, 0, 0]
    assert nodes[7]["inputs"] == [[6, 0, 0]]
    nodes, params = graph([0.5, -2.0])  # a negative gamma turns maxima into minima
    assert pool_before_batchnorm(nodes, consumers_of(nodes), params) == 0
    assert [n["op"] for n in nodes[5:]] == ["BatchNorm", "relu", "Pooling"]


def test_a_packed_conv_read_only_by_an_add_absorbs_it():
    nodes = [variable("data"), variable("w"),
             node("QConvolution", "conv", (0, 1), kernel=(3, 3), num_filter=4, binarized_weights_only=True),
             node("elemwise_add", "add", (2, 0)),
             node("QConvolution", "shared", (0, 1), kernel=(3, 3), num_filter=4, binarized_weights_only=True),
             node("elemwise_add", "add2", (4, 0)), node("relu", "other_reader", (4,))]
    absorbed, in_place = absorb_residual_adds(nodes, consumers_of(nodes))
    assert absorbed == {3: 2} and in_place == 0
    assert nodes[2]["inputs"][-1] == [0, 0, 0] and nodes[2]["attrs"]["residual"] == "True"
    assert "residual" not in nodes[4]["attrs"]  # its output is read by more than the add


def test_onednn_blocks_the_output_of_convolutions_with_filters_a_multiple_of_8():
    nodes = [variable("data"), variable("w")]
    for filters in (16, 10):
        conv = len(nodes)
        nodes.append(node("Convolution", "conv%d" % filters, (0, 1), kernel=(3, 3), num_filter=filters))
        stats = []
        for p in ("gamma", "beta", "mean", "var"):
            stats.append(len(nodes))
            nodes.append(variable("bn%d_%s" % (filters, p)))
        nodes.append(node("BatchNorm", "bn%d" % filters, (conv,) + tuple(stats)))
    nodes.append(node("BatchNorm", "bn_data", (0, 2, 3, 4, 5)))
    assert float_batchnorm_layouts(nodes) == {"bn16": True, "bn10": False, "bn_data": False}


def batchnorm_graph(gamma, readers, after_conv=False):
    """data (through a float Convolution with after_conv) -> BatchNorm with gamma -> `readers`
    (ops reading the BatchNorm's output); the BatchNorm is node 7."""
    source = [node("Convolution", "conv", (0, 1), kernel=(1, 1), num_filter=2)] if after_conv else [variable("x")]
    nodes = [variable("data"), variable("w")] + source + [variable("bn_" + p) for p in ("gamma", "beta", "mean", "var")]
    nodes.append(node("BatchNorm", "bn", (2 if after_conv else 0, 3, 4, 5, 6), fix_gamma=False, eps=1e-5))
    for op, name in readers:
        extra = dict(kernel=(3, 3), num_filter=4, binarized_weights_only=True) if op == "QConvolution" else {}
        nodes.append(node(op, name, (7, 1) if op == "QConvolution" else (7,), **extra))
    params = {"arg:bn_gamma": np.array(gamma, np.float32), "arg:bn_beta": np.array([0.5, -0.5], np.float32),
              "aux:bn_mean": np.array([0.1, 0.2], np.float32), "aux:bn_var": np.array([1.0, 4.0], np.float32)}
    return nodes, params


def test_a_batchnorm_read_only_by_packed_convs_folds_into_their_thresholds():
    nodes, params = batchnorm_graph([0.5, -2.0], [("QConvolution", "a"), ("QConvolution", "b")])
    assert fold_batchnorm_signs(nodes, consumers_of(nodes), params, {"bn": False}) == ["bn"]
    for conv in nodes[8:]:
        assert conv["inputs"][0] == [0, 0, 0] and conv["attrs"]["data_threshold"] == "True"
        assert conv["inputs"][-1]["name"] == "bn_sign_threshold"
    thresholds = params["arg:bn_sign_threshold"]
    assert thresholds.shape == (2, 2) and list(thresholds[0]) == [1, -1]  # directions: the gammas' signs
    nodes, params = batchnorm_graph([0.5, -2.0], [("QConvolution", "a"), ("relu", "float_reader")])
    assert fold_batchnorm_signs(nodes, consumers_of(nodes), params, {"bn": False}) == []
    assert "bn_sign_threshold" not in str(nodes) and "arg:bn_sign_threshold" not in params


def test_a_relu_alone_after_a_plain_batchnorm_is_fused_into_it():
    nodes = [variable("data")] + [variable("s%d" % i) for i in range(4)]
    nodes += [node("PlainBatchNorm", "bn", (0, 1, 2, 3, 4)), node("PlainPooling", "pool", (5,), pool_type="max"),
              node("relu", "act", (6,)), node("QActivation", "q", (7,))]
    heads = [[7, 0, 0]]
    assert fuse_batchnorm_relus(nodes, heads, set(range(len(nodes)))) == 1
    assert nodes[5]["attrs"]["act_type"] == "relu"
    assert nodes[8]["inputs"][0] == [6, 0, 0] and heads == [[6, 0, 0]]  # readers and outputs skip the ReLU
    nodes[5]["attrs"]["act_type"] = "none"
    nodes.append(node("relu", "second_reader", (5,)))  # the BatchNorm's output is needed without the ReLU
    assert fuse_batchnorm_relus(nodes, [[7, 0, 0]], set(range(len(nodes)))) == 0


def test_a_leading_channel_slice_only_a_channel_concat_reads_is_read_in_place():
    nodes = [variable("data"), variable("other"), node("slice_axis", "lead", (0,), axis=1, begin=0, end=8),
             node("slice_axis", "middle", (0,), axis=1, begin=2, end=8), node("ChannelConcat", "cat", (2, 3, 1))]
    assert take_leading_slices(nodes, consumers_of(nodes), {}) == 1
    assert nodes[4]["inputs"][0] == [0, 0, 0] and nodes[4]["attrs"]["take_channels"] == "(8, 0, 0)"
    assert nodes[4]["inputs"][1] == [3, 0, 0]  # a slice that does not start at channel 0 stays


def test_a_blocked_output_read_by_two_bmxnet_inputs_is_copied_once():
    nodes = [variable("data"), variable("w"), node("Convolution", "conv", (0, 1), kernel=(3, 3), num_filter=16),
             node("QConvolution", "a", (2, 1), kernel=(3, 3), num_filter=4),
             node("QConvolution", "b", (2, 1), kernel=(3, 3), num_filter=4),
             node("QConvolution", "c", (0, 1), kernel=(3, 3), num_filter=4),
             node("QConvolution", "d", (0, 1), kernel=(3, 3), num_filter=4)]
    assert copy_shared_inputs(nodes, {}, set(range(len(nodes)))) == 1
    copy = nodes[3]["inputs"][0]
    assert copy is nodes[4]["inputs"][0] and copy["op"] == "ChannelConcat" and copy["inputs"] == [[2, 0, 0]]
    assert nodes[5]["inputs"][0] == [0, 0, 0]  # the data is plain NCHW: MXNet hands it on as it is


def test_a_batchnorm_becomes_plain_batchnorm_with_the_float_models_formula():
    for blocked in (False, True):
        nodes, params = batchnorm_graph([0.5, 2.0], [("relu", "act")])
        assert replace_batchnorms(nodes, {"bn": blocked}, {}, params, set(), set(range(len(nodes)))) == 1
        assert nodes[7]["op"] == "PlainBatchNorm" and nodes[7]["attrs"]["blocked"] == str(blocked)
        assert "arg:bn_mean" in params and "aux:bn_mean" not in params  # statistics become arguments
    # after a 2-D convolution (oneDNN keeps it NHWC inside) it reads a transpose to NHWC
    nodes, params = batchnorm_graph([0.5, 2.0], [("relu", "act")], after_conv=True)
    assert replace_batchnorms(nodes, {"bn": True}, {}, params, set(), set(range(len(nodes)))) == 1
    assert nodes[7]["attrs"]["channels_last"] == "True" and nodes[7]["inputs"][0]["op"] == "transpose"
    # an unknown float layout (which formula?) or a folded BatchNorm stays
    for layouts, folded in (({}, set()), ({"bn": False}, {"bn"})):
        nodes, params = batchnorm_graph([0.5, 2.0], [("relu", "act")])
        assert replace_batchnorms(nodes, layouts, {}, params, folded, set(range(len(nodes)))) == 0
        assert nodes[7]["op"] == "BatchNorm"


def test_a_channel_concat_read_only_by_packed_convs_and_poolings_is_read_as_its_pieces():
    def graph(extra_reader):
        nodes = [dict(variable(name), attrs={"__shape__": str(shape)})
                 for name, shape in (("a", (1, 8, 4, 4)), ("b", (1, 24, 4, 4)), ("w", (4, 3, 3, 1)))]
        nodes += [node("ChannelConcat", "cat", (0, 1), num_args=2),
                  node("QConvolution", "conv", (3, 2), kernel=(3, 3), num_filter=4, binarized_weights_only=True),
                  node("PlainPooling", "pool", (3,), kernel=(2, 2), stride=(2, 2))]
        if extra_reader:
            nodes.append(node("relu", "float_reader", (3,)))
        return nodes
    nodes = graph(extra_reader=False)
    assert read_concat_pieces(nodes, [4, 5], {}) == 1
    assert nodes[4]["inputs"] == [[0, 0, 0], [2, 0, 0], [1, 0, 0]] and nodes[4]["attrs"]["data_pieces"] == "2"
    assert nodes[5]["inputs"] == [[0, 0, 0], [1, 0, 0]] and nodes[5]["attrs"]["data_pieces"] == "2"
    nodes = graph(extra_reader=True)  # an MXNet operator needs the concatenated tensor
    assert read_concat_pieces(nodes, [4, 5, 6], {}) == 0
    assert nodes[4]["inputs"][0] == [3, 0, 0] and "data_pieces" not in nodes[4]["attrs"]
