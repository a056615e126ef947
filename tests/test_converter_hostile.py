"""model-converter on hostile input (issue 20): the whole graph and its parameters are checked
before anything is written, an output that is an input is refused, the two outputs are
written as one change, and every problem is one line naming the file and the cause."""
import contextlib
import hashlib
import io
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from bmxnet import ndarray_file
from bmxnet import nn as bnn
from bmxnet.converter import ConversionError, convert, convert_graph
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Prefix of an exported TinyNet with 64 channels."""
    return export_tiny(tmp_path_factory.mktemp("tiny"), 64)


def test_tiny_model_converts(tiny):
    graph, params = load_model(tiny)
    _, _, report = convert_graph(graph, params)
    assert len(report.layers) == 5 and report.residual_adds == 2 and report.residual_slices == 1


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


# --- the files: never an input, one line for every OS problem, written as a pair ---------------

def copy_model(prefix, directory):
    """A copy of the model's two files in `directory` (made); returns the new prefix."""
    os.makedirs(str(directory), exist_ok=True)
    new = os.path.join(str(directory), "net")
    for suffix in ("-symbol.json", "-0000.params"):
        with open(prefix + suffix, "rb") as source, open(new + suffix, "wb") as target:
            target.write(source.read())
    return new


def output_aliases(tmp_path, prefix):
    """{case: an output prefix that names an input another way}."""
    os.symlink(os.path.dirname(prefix), str(tmp_path / "alias"))
    os.link(prefix + "-0000.params", str(tmp_path / "hard-0000.params"))
    os.symlink(prefix + "-symbol.json", str(tmp_path / "soft-symbol.json"))
    return {"the input prefix": prefix,
            "through ..": os.path.join(os.path.dirname(prefix), "..", os.path.basename(os.path.dirname(prefix)), "net"),
            "through a symlinked directory": str(tmp_path / "alias" / "net"),
            "a hard link of the params": str(tmp_path / "hard"),
            "a symlink to the symbol": str(tmp_path / "soft")}


def test_converter_refuses_output_that_is_an_input(tiny, tmp_path):
    prefix = copy_model(tiny, tmp_path / "dl")
    inputs = [prefix + "-symbol.json", prefix + "-0000.params"]
    before = {path: sha(path) for path in inputs}
    for case, out_prefix in output_aliases(tmp_path, prefix).items():
        code, _, err = run_cli(inputs[0], inputs[1], "-o", out_prefix)
        assert_one_line_error(code, err, "would overwrite the input")
        assert {path: sha(path) for path in inputs} == before, case


def unwritable_outputs(tmp_path):
    """{case: (output prefix, expected cause)}."""
    (tmp_path / "ro-symbol.json").write_text("old")
    os.chmod(str(tmp_path / "ro-symbol.json"), 0o444)
    (tmp_path / "dir-0000.params").mkdir()
    (tmp_path / "file").write_text("a file")
    return {"read-only output file": (str(tmp_path / "ro"), "read-only"),
            "output that is a directory": (str(tmp_path / "dir"), "Is a directory"),
            "name too long": (str(tmp_path / ("n" * 300)), "File name too long"),
            "directory that is a file": (str(tmp_path / "file" / "out"), "is not a directory"),
            "directory nobody may write": ("/proc/bmxnet-test/out", "cannot write")}


def test_converter_reports_unwritable_outputs_in_one_line(tiny, tmp_path):
    for case, (out_prefix, cause) in unwritable_outputs(tmp_path).items():
        code, _, err = run_cli(tiny + "-symbol.json", tiny + "-0000.params", "-o", out_prefix)
        assert_one_line_error(code, err, cause)
        assert out_prefix in err, (case, err)
    assert (tmp_path / "ro-symbol.json").read_text() == "old"
    assert sorted(os.listdir(str(tmp_path))) == ["dir-0000.params", "file", "ro-symbol.json"]


def test_failed_symbol_write_leaves_the_old_pair_and_no_orphan(tiny, tmp_path, monkeypatch):
    from bmxnet.converter import model_files
    out = str(tmp_path / "out")

    def disk_full(path, text):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(model_files, "_write_text", disk_full)
    with pytest.raises(ConversionError, match="out-symbol.json: cannot write .No space left on device."):
        convert(tiny + "-symbol.json", tiny + "-0000.params", out)
    assert os.listdir(str(tmp_path)) == []  # no params file without its symbol
    for name in ("out-symbol.json", "out-0000.params"):
        (tmp_path / name).write_text("old " + name)
    with pytest.raises(ConversionError):
        convert(tiny + "-symbol.json", tiny + "-0000.params", out)
    assert sorted(os.listdir(str(tmp_path))) == ["out-0000.params", "out-symbol.json"]
    assert [(tmp_path / n).read_text() for n in ("out-symbol.json", "out-0000.params")] == \
        ["old out-symbol.json", "old out-0000.params"]


def test_failed_second_rename_puts_the_first_file_back(tiny, tmp_path, monkeypatch):
    from bmxnet import fileio
    for name in ("out-symbol.json", "out-0000.params"):
        (tmp_path / name).write_text("old " + name)
    renames, real_replace = [], os.replace

    def second_rename_fails(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise OSError(5, os.strerror(5))
        real_replace(source, target)
    monkeypatch.setattr(fileio.os, "replace", second_rename_fails)
    with pytest.raises(ConversionError, match="out-symbol.json: cannot write .Input/output error."):
        convert(tiny + "-symbol.json", tiny + "-0000.params", str(tmp_path / "out"))
    assert sorted(os.listdir(str(tmp_path))) == ["out-0000.params", "out-symbol.json"]
    assert (tmp_path / "out-0000.params").read_text() == "old out-0000.params"


def test_converter_reports_unreadable_and_oversized_input_in_one_line(tiny, tmp_path):
    os.mkfifo(str(tmp_path / "fifo-symbol.json"))  # reading it would wait for a writer
    with open(str(tmp_path / "huge-symbol.json"), "wb") as f:
        f.truncate(65 << 20)  # sparse
    with open(str(tmp_path / "huge.params"), "wb") as f:
        f.truncate((4 << 30) + 1)
    (tmp_path / "deep-symbol.json").write_text("[" * 100000 + "]" * 100000)
    (tmp_path / "latin1-symbol.json").write_bytes(b'{"nodes": "\xe9"}')
    with open(tiny + "-0000.params", "rb") as f:
        raw = f.read()
    (tmp_path / "huge-shape.params").write_bytes(raw[:36] + (2 ** 62).to_bytes(8, "little") + raw[44:])
    params = tiny + "-0000.params"
    cases = [(tmp_path / "fifo-symbol.json", params, "not a regular file"),
             (tmp_path / "huge-symbol.json", params, "too large"),
             (tmp_path / "deep-symbol.json", params, "nested too deeply"),
             (tmp_path / "latin1-symbol.json", params, "not JSON"),
             (tmp_path, params, "not a regular file"),
             (tiny + "-symbol.json", tmp_path / "huge-shape.params", "corrupt params file"),
             (tiny + "-symbol.json", tmp_path / "huge.params", "too large")]
    for symbol, params_file, message in cases:
        code, _, err = run_cli(symbol, params_file, "-o", tmp_path / "out")
        assert_one_line_error(code, err, message)
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("out")]


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
