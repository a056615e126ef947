"""model-converter on hostile input (issue 20): the whole graph and its parameters are checked
before anything is written, and every problem is one line naming the file and the cause (the
files themselves: test_converter_files.py)."""
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from bmxnet.converter import ConversionError, convert, convert_graph
from tiny_model import INPUT_SHAPE, assert_one_line_error, export_tiny, key_of, load_model, node, run_cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Prefix of an exported TinyNet with 64 channels."""
    return export_tiny(tmp_path_factory.mktemp("tiny"), 64)


def test_tiny_model_converts(tiny):
    graph, params = load_model(tiny)
    _, _, report = convert_graph(graph, params)
    assert len(report.layers) == 5 and report.residual_adds == 2 and report.residual_slices == 1


# --- the graph: known operators and attributes only, valid references ------------------------

def set_attr(op, key, value, tagged=None, index=0):
    def mutate(graph, params):
        node(graph, op, index, tagged).setdefault("attrs", {})[key] = value
    return mutate


def set_tag(key, value):
    def mutate(graph, params):
        attrs = node(graph, "Convolution", tagged=True)["attrs"]
        tag = json.loads(attrs["__bmxnet_layer__"])
        tag[key] = value
        attrs["__bmxnet_layer__"] = json.dumps(tag)
    return mutate


def set_graph(key, value):
    def mutate(graph, params):
        graph[key] = value
    return mutate


def set_node(op, key, value):
    def mutate(graph, params):
        node(graph, op)[key] = value
    return mutate


def set_input(op, position, entry):
    def mutate(graph, params):
        node(graph, op)["inputs"][position] = entry
    return mutate


def read_node(reader, source_op, source_tagged=None):
    """Makes the first `reader` node read node `source_op` (by index) as its input 0."""
    def mutate(graph, params):
        node(graph, reader)["inputs"][0] = [graph["nodes"].index(node(graph, source_op, tagged=source_tagged)), 0, 0]
    return mutate


def weight_from(op):
    def mutate(graph, params):
        node(graph, "QConvolution")["inputs"][1] = [graph["nodes"].index(node(graph, op, tagged=False)), 0, 0]
    return mutate


def rename(op, to_op):
    def mutate(graph, params):
        node(graph, op)["name"] = node(graph, to_op)["name"]
    return mutate


GRAPH_CASES = {
    "unknown op": (set_node("relu", "op", "_contrib_fancy_op"), "does not know"),
    "unknown MXNet op": (set_node("relu", "op", "Custom"), "does not know"),
    "pad_value 5": (set_attr("QConvolution", "pad_value", "5"), "invalid pad_value='5'"),
    "pad_value 5 in a composed layer's tag": (set_tag("pad_value", 5), "which bmxnet's layers do not write"),
    "2-bit tag on a composed layer": (set_tag("act_bit", 2), "which bmxnet's layers do not write"),
    "unknown attribute of a bmxnet op": (set_attr("QConvolution", "colour", "red"), "unknown attribute 'colour'"),
    "unknown attribute of an MXNet op": (set_attr("Pooling", "colour", "red"), "unknown attribute 'colour'"),
    "attribute of a variable": (set_attr("null", "kernel", "(3, 3)"), "unknown attribute 'kernel' for a variable"),
    "kernel (0, 0)": (set_attr("QConvolution", "kernel", "(0, 0)"), "invalid kernel='(0, 0)'"),
    "float kernel (0, 0)": (set_attr("Convolution", "kernel", "(0, 0)", tagged=False), "invalid kernel='(0, 0)'"),
    "stride 0": (set_attr("Convolution", "stride", "(0, 1)", tagged=True), "invalid stride='(0, 1)'"),
    "negative pad": (set_attr("QConvolution", "pad", "(-1, 1)"), "invalid pad='(-1, 1)'"),
    "33 bits": (set_attr("QConvolution", "act_bit", "33"), "invalid act_bit='33'"),
    "unknown scaling": (set_attr("QConvolution", "scaling", "median"), "invalid scaling='median'"),
    "boolean that is not one": (set_attr("QActivation", "backward_only", " True"), "invalid backward_only"),
    "non-integer kernel": (set_attr("QConvolution", "kernel", "(x, 3)"), "invalid kernel='(x, 3)'"),
    "kernel overflowing int64": (set_attr("QConvolution", "kernel", "(99999999999999999999, 3)"), "invalid kernel"),
    "recorded shape overflowing": (set_attr("null", "__shape__", "(4294967296, 3)"), "invalid __shape__"),
    "three-dimensional packed kernel": (set_attr("QConvolution", "kernel", "(3, 3, 3)"), "expected 2 values"),
    "missing kernel": (lambda g, p: node(g, "QConvolution")["attrs"].pop("kernel"),
                       "lacks the required attribute kernel"),
    "filters not divisible by groups": (set_attr("Convolution", "num_group", "3", tagged=True, index=1),
                                        "not divisible by num_group=3"),
    "empty heads": (set_graph("heads", []), "has no outputs"),
    "heads beyond the nodes": (set_graph("heads", [[10 ** 6, 0, 0]]), "refers to node 1000000, which does not exist"),
    "input read before it is made": (read_node("relu", "FullyConnected", source_tagged=False), "which comes later"),
    "negative reference": (set_input("relu", 0, [-1, 0, 0]), "which does not exist"),
    "reference that is text": (set_input("relu", 0, ["0", 0, 0]), "expected [node, output, version]"),
    "second output of a variable": (set_input("relu", 0, [0, 1, 0]), "reads output 1 of node data, which has 1"),
    "list attrs": (set_node("Pooling", "attrs", ["kernel", "(2, 2)"]), "attributes are list"),
    "attribute value that is a number": (set_attr("Pooling", "stride", 2), "expected a string"),
    "deeply nested input entry": (lambda g, p: node(g, "relu")["inputs"].__setitem__(0, nested(100000)),
                                  "expected [node, output, version]"),
    "two nodes of one name": (rename("relu", "Flatten"), "two nodes are named"),
    "node that is a list": (lambda g, p: g["nodes"].__setitem__(3, ["op", "name"]), "node 3 is not an object"),
    "unknown node key": (set_node("relu", "subgraphs", []), "unknown key 'subgraphs'"),
    "unknown graph key": (set_graph("extra", 1), "unknown top-level key 'extra'"),
    "weight computed by another node": (weight_from("Convolution"), "not a parameter variable"),
    "too many inputs": (lambda g, p: node(g, "relu")["inputs"].append([0, 0, 0]), "has 2 inputs, expected 1"),
    "absurd mxnet version": (set_graph("attrs", {"mxnet_version": ["int", -5]}), "graph attributes"),
    "composed layer with an attribute its Convolution does not take": (
        set_attr("Convolution", "pad_value", "-1", tagged=True), "unknown attribute 'pad_value' for Convolution"),
    "composed layer without no_bias (MXNet's default: a bias)": (
        lambda g, p: node(g, "Convolution", tagged=True)["attrs"].pop("no_bias"), "has 2 inputs, expected 3"),
    "arg_nodes naming an operator": (lambda g, p: g.__setitem__("arg_nodes", [g["nodes"].index(node(g, "relu"))]),
                                     "'arg_nodes' is not a list of the indices of variables"),
    "control character in an attribute": (set_attr("null", "__init__", "a\x00b"), "holds control characters"),
    "lone surrogate in a name": (set_node("relu", "name", "\ud800"), "printable characters"),
}


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def refusal(tiny, mutate):
    """The message convert_graph refuses the tiny model with after mutate(graph, params)."""
    graph, params = load_model(tiny)
    mutate(graph, params)
    with pytest.raises(ConversionError) as error:
        convert_graph(graph, params, where="net-symbol.json", params_where="net-0000.params")
    return str(error.value)


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_converter_refuses_a_graph_it_cannot_vouch_for(tiny, case):
    mutate, message = GRAPH_CASES[case]
    text = refusal(tiny, mutate)
    assert message in text and "\n" not in text


def test_converter_writes_names_that_mxnet_reads_back(tiny, tmp_path):
    """MXNet's JSON reader takes no \\u escapes: non-ASCII names are written as UTF-8."""
    graph, _ = load_model(tiny)
    node(graph, "null")["name"] = "donn\u00e9es"
    node(graph, "relu")["name"] = "r\u00e9lu"
    symbol = tmp_path / "utf8-symbol.json"
    symbol.write_text(json.dumps(graph))
    symbol_out, params_out, _ = convert(str(symbol), tiny + "-0000.params", str(tmp_path / "out"))
    block = gluon.SymbolBlock.imports(symbol_out, ["donn\u00e9es"], params_out)
    assert block(mx.nd.ones(INPUT_SHAPE)).shape == (2, 3)


def test_converter_refuses_an_already_converted_model(tiny, tmp_path):
    symbol, params, _ = convert(tiny + "-symbol.json", tiny + "-0000.params", str(tmp_path / "once"))
    with pytest.raises(ConversionError, match="already converted"):
        convert(symbol, params, str(tmp_path / "twice"))


def test_packed_symbol_with_changed_groups_is_refused_when_run(tiny, tmp_path):
    """96 channels in 2 groups and in 4 pack into one word per filter tap alike: the packed
    weight's shape cannot tell, the packed_channels the converter writes can."""
    symbol, params, _ = convert(tiny + "-symbol.json", tiny + "-0000.params", str(tmp_path / "packed"))
    graph = json.loads(open(symbol, encoding="utf-8").read())
    grouped = next(n for n in graph["nodes"] if n["op"] == "QConvolution" and n["attrs"].get("num_group") == "2")
    assert grouped["attrs"]["packed_channels"] == "48"
    grouped["attrs"]["num_group"] = "4"
    tampered = tmp_path / "tampered-symbol.json"
    tampered.write_text(json.dumps(graph))
    block = gluon.SymbolBlock.imports(str(tampered), ["data"], params)
    with pytest.raises(mx.base.MXNetError, match=r"the packed weight holds 48 input channels per group "
                                                 r"\(packed_channels\), the data gives 24"):
        block(mx.nd.ones(INPUT_SHAPE)).wait_to_read()


@pytest.mark.parametrize("op,key,value,message", [
    ("PlainPooling", "kernel", "(4294967297, 1)", "PlainPooling: invalid kernel='(4294967297, 1)'"),
    ("PlainPooling", "pad", "(4294967296, 0)", "PlainPooling: invalid pad='(4294967296, 0)'"),
    ("QConvolution", "pad", "(2305843009213693952, 0)", "QConvolution: invalid pad='(2305843009213693952, 0)'"),
    ("QConvolution", "stride", "(0, 1)", "QConvolution: invalid stride='(0, 1)'"),
    ("QFullyConnected", "packed_features", "7", "the packed weight holds 7 features (packed_features)"),
])
def test_tampered_packed_symbol_fails_in_one_line_when_loaded(tiny, tmp_path, op, key, value, message):
    """A converted model's symbol edited by hand reaches the operators' own checks."""
    symbol, params, _ = convert(tiny + "-symbol.json", tiny + "-0000.params", str(tmp_path / "packed"))
    graph = json.loads(open(symbol, encoding="utf-8").read())
    next(n for n in graph["nodes"] if n["op"] == op)["attrs"][key] = value
    tampered = tmp_path / "tampered-symbol.json"
    tampered.write_text(json.dumps(graph))
    with pytest.raises(mx.base.MXNetError) as error:
        gluon.SymbolBlock.imports(str(tampered), ["data"], params)(mx.nd.ones(INPUT_SHAPE)).wait_to_read()
    assert message in [line for line in str(error.value).splitlines() if line.strip()][-1]


# --- the parameters: present, float, and of the shapes the graph gives them --------------------

def reshape_param(suffix, shape):
    def mutate(graph, params):
        key = key_of(params, suffix)
        params[key] = np.resize(params[key], shape)
    return mutate


def drop_param(suffix):
    def mutate(graph, params):
        del params[key_of(params, suffix)]
    return mutate


PARAM_CASES = {
    "binary weight (64, 63, 3, 3) of a 64-channel layer": (
        reshape_param("qconv2d0_weight", (64, 63, 3, 3)), "reads 64 channels, but its weight (64, 63, 3, 3)"),
    "xnor binary weight (64, 63, 3, 3)": (reshape_param("qconv2d1_weight", (64, 63, 3, 3)), "reads 64 channels"),
    "float weight (64, 63, 1, 1) of a 64-channel layer": (reshape_param("conv1_weight", (64, 63, 1, 1)),
                                                          "reads 64 channels"),
    "grouped weight of the wrong group size": (reshape_param("qconv2d2_weight", (64, 47, 1, 1)), "reads 96 channels"),
    "binary weight of another kernel": (reshape_param("qconv2d0_weight", (64, 64, 5, 5)),
                                        "does not fit its attributes"),
    "float dense weight of other features": (reshape_param("_dense0_weight", (3, 5)), "features: 6"),
    "float dense bias of another size": (reshape_param("_dense0_bias", (4,)), "bias of layer"),
    "BatchNorm statistics of another size": (reshape_param("batchnorm1_running_var", (63,)), "BatchNorm"),
    "missing BatchNorm statistics": (drop_param("batchnorm1_running_var"), "running_var' is not in the params"),
    "missing float conv weight": (drop_param("conv0_weight"), "conv0_weight' is not in the params"),
    "missing binary weight": (drop_param("qconv2d0_weight"), "qconv2d0_weight' is not in the params"),
    "missing dense bias": (drop_param("_dense0_bias"), "_dense0_bias' is not in the params"),
    "integer weights": (lambda g, p: p.__setitem__(key_of(p, "conv0_weight"), p[key_of(p, "conv0_weight")]
                                                   .astype(np.int32)), "has dtype int32"),
    "parameter of no variable": (lambda g, p: p.__setitem__("arg:stranger", np.ones(3, np.float32)),
                                 "'stranger', which the symbol does not use"),
    "parameter given twice": (
        lambda g, p: p.__setitem__("aux:" + key_of(p, "conv0_weight")[4:], np.ones(3, np.float32)), "twice"),
    "overflowing shape": (lambda g, p: p.__setitem__(key_of(p, "_dense0_bias"), np.empty((0, 2 ** 40), np.float32)),
                          "has the shape (0, 1099511627776)"),
    "zero-dimensional parameter": (lambda g, p: p.__setitem__(key_of(p, "_dense0_bias"), np.zeros((), np.float32)),
                                   "has the shape ()"),
    "parameter that is no array": (lambda g, p: p.__setitem__(key_of(p, "_dense0_bias"), [0.0] * 3),
                                   "not a numpy array"),
}


@pytest.mark.parametrize("case", sorted(PARAM_CASES))
def test_converter_refuses_parameters_that_do_not_fit_the_graph(tiny, case):
    mutate, message = PARAM_CASES[case]
    text = refusal(tiny, mutate)
    assert text.startswith("net-0000.params: ") and message in text and "\n" not in text, text


def test_cli_reports_hostile_graphs_in_one_line(tiny, tmp_path):
    """The issue's reproductions through the command line: exit 1, one line, no output."""
    for case in ("pad_value 5", "unknown op", "empty heads", "list attrs", "kernel (0, 0)",
                 "unknown attribute of a bmxnet op", "recorded shape overflowing"):
        graph, _ = load_model(tiny)
        mutate, message = GRAPH_CASES[case]
        mutate(graph, None)
        symbol = tmp_path / "case-symbol.json"
        symbol.write_text(json.dumps(graph))
        code, _, err = run_cli(symbol, tiny + "-0000.params", "-o", tmp_path / "out")
        assert_one_line_error(code, err, message)
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("out")]
