"""model-converter: packed models predict exactly what the float-simulated ones do, and
bad input gives one-line errors without touching the input or leaving partial output."""
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import bmxnet
from bmxnet import nn as bnn
from bmxnet.model_zoo import get_model
from smd import model_converter


class Residual(gluon.HybridBlock):
    """BN -> binary conv, added to its input (ResNetE style shortcut; the BN folds into the
    packed conv's sign thresholds)."""

    def __init__(self, channels, **conv):
        super().__init__()
        with self.name_scope():
            self.bn = gluon.nn.BatchNorm()
            self.conv = bnn.QConv2D(channels, 3, **conv)

    def hybrid_forward(self, F, x):
        return x + self.conv(self.bn(x))


def small_resnet():
    """Channels 37 and 45 (not multiples of 32), stride, dilation, groups, both paddings, xnor, bias."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(37, 3, padding=1), gluon.nn.BatchNorm(),
                Residual(37, padding=1),
                gluon.nn.BatchNorm(), bnn.QConv2D(45, 3, strides=2, padding=1, scaling="xnor"),
                Residual(45, padding=2, dilation=2, pad_value=-1),
                Residual(45, padding=1, groups=5, use_bias=True),
                gluon.nn.BatchNorm(), gluon.nn.GlobalAvgPool2D(), gluon.nn.Flatten(),
                bnn.QDense(19, use_bias=True), gluon.nn.BatchNorm(), gluon.nn.Dense(10))
    return net


def train_a_few_steps(net, shape, rng, steps=3):
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(steps):
        x = mx.nd.array(rng.uniform(-1, 1, size=shape))
        y = mx.nd.array(rng.randint(0, 10, size=shape[0]))
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(shape[0])


def internal_outputs(symbol_file, params_file, names, x):
    """Outputs of the named nodes and of the whole network for input x."""
    symbol = mx.sym.load(symbol_file)
    internals = symbol.get_internals()
    outputs = [internals[name + "_output"] for name in names] + [symbol]
    block = gluon.SymbolBlock(mx.sym.Group(outputs), mx.sym.var("data"))
    block.collect_params().load(params_file, ignore_extra=True, cast_dtype=True, dtype_source="saved")
    return [o.asnumpy() for o in block(mx.nd.array(x))]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(directory, {name: (prefix, input shape)}) of two trained and exported models."""
    directory = tmp_path_factory.mktemp("models")
    rng = np.random.RandomState(3)
    models = {"lenet": (get_model("lenet_binary", channels=(37, 45), hidden=65), (8, 1, 28, 28)),
              "resnet": (small_resnet(), (8, 3, 16, 16))}
    result = {}
    for name, (net, shape) in models.items():
        train_a_few_steps(net, shape, rng)
        prefix = str(directory / name)
        net.export(prefix)
        result[name] = (prefix, shape)
    return directory, result


@pytest.mark.parametrize("model", ["lenet", "resnet"])
def test_converted_model_predicts_like_float_simulated(exported, model, tmp_path):
    directory, models = exported
    prefix, shape = models[model]
    before = {p: sha(p) for p in (prefix + "-symbol.json", prefix + "-0000.params")}
    symbol_out, params_out, report = bmxnet.convert(prefix + "-symbol.json", prefix + "-0000.params",
                                                    str(tmp_path / "packed"))
    assert {p: sha(p) for p in before} == before  # inputs untouched
    assert symbol_out == str(tmp_path / "packed-symbol.json")
    assert len(report.layers) == (3 if model == "lenet" else 5)
    assert len(report.folded) == (2 if model == "lenet" else 4)  # BatchNorms that only feed packed convs (once
    # a max pooling moved in front of one: LeNet's second)
    assert report.residual_adds == (0 if model == "lenet" else 3)  # the three Residual blocks
    assert report.bytes_after < report.bytes_before

    graph = json.load(open(symbol_out))
    binary = [n["name"] for n in graph["nodes"] if n["op"] in ("QConvolution", "QFullyConnected")]
    assert not [n for n in graph["nodes"] if n["op"] == "BlockGrad"]  # training-only weight expressions dropped
    assert not [n for n in graph["nodes"] if n["op"] == "QActivation"]  # packed layers take the signs themselves
    assert all(n["attrs"]["binarized_weights_only"] == "True" for n in graph["nodes"] if n["name"] in binary)
    packed_params = mx.nd.load(params_out)
    assert any(v.dtype == np.int64 for v in packed_params.values())
    assert not [n for n in graph["nodes"] if n["name"] in report.folded]
    assert not [k for k in packed_params if k.split(":")[1].startswith(tuple(report.folded))
                and not k.endswith("_sign_threshold")]  # their gamma, beta and statistics are gone

    # packed convs that absorbed a residual add give conv + residual (the add's one rounding)
    residual_of = {n["name"]: graph["nodes"][n["inputs"][-1][0]]["name"] for n in graph["nodes"]
                   if n.get("attrs", {}).get("residual") == "True"}
    assert len(residual_of) == (0 if model == "lenet" else 3)  # the three Residual blocks
    assert not [n for n in graph["nodes"] if n["op"] == "elemwise_add"
                and any(graph["nodes"][edge[0]]["op"] == "QConvolution" for edge in n["inputs"])]

    x = np.random.RandomState(7).uniform(-1, 1, size=(16,) + shape[1:]).astype(np.float32)
    float_outputs = internal_outputs(prefix + "-symbol.json", prefix + "-0000.params", binary, x)
    packed_outputs = internal_outputs(symbol_out, params_out, binary + list(residual_of.values()), x)
    residuals = dict(zip(residual_of, packed_outputs[len(binary):-1]))
    for name, a, b in zip(binary, float_outputs[:-1], packed_outputs[:len(binary)]):
        a = a + residuals[name] if name in residuals else a
        np.testing.assert_array_equal(b, a, err_msg=name)  # xnor scaling too
    logits_float, logits_packed = float_outputs[-1], packed_outputs[-1]
    np.testing.assert_allclose(logits_packed, logits_float, rtol=1e-5, atol=1e-5 * np.abs(logits_float).max())
    np.testing.assert_array_equal(logits_packed.argmax(axis=1), logits_float.argmax(axis=1))

    # the symbol alone infers every shape from the data shape (variables record their new ones)
    arg_shapes, out_shapes, _ = mx.sym.load(symbol_out).infer_shape(data=x.shape)
    assert out_shapes == [logits_packed.shape] and all(s for s in arg_shapes)

    imported = gluon.SymbolBlock.imports(symbol_out, ["data"], params_out)
    np.testing.assert_allclose(imported(mx.nd.array(x)).asnumpy(), logits_packed, rtol=1e-6, atol=1e-6)


def test_convert_block_converts_an_in_memory_network(rng):
    net = small_resnet()
    train_a_few_steps(net, (4, 3, 12, 12), rng, steps=1)
    x = mx.nd.array(rng.uniform(-1, 1, size=(4, 3, 12, 12)))
    expected = net(x).asnumpy()
    packed, report = bmxnet.convert_block(net)
    assert len(report.layers) == 5
    np.testing.assert_allclose(packed(x).asnumpy(), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_convert_block_needs_a_hybridized_run():
    net = small_resnet()
    net.initialize()
    with pytest.raises(bmxnet.ConversionError, match="hybridize"):
        bmxnet.convert_block(net)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "smd.model_converter"] + list(args),
                          capture_output=True, text=True, timeout=300,
                          cwd=os.path.join(os.path.dirname(__file__), ".."))


def test_cli_converts_and_reports(exported, tmp_path):
    _, models = exported
    prefix, _ = models["lenet"]
    result = run_cli(prefix + "-symbol.json", prefix + "-0000.params", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "3 binary layers converted" in result.stdout
    assert os.path.isfile(str(tmp_path / "out-symbol.json")) and os.path.isfile(str(tmp_path / "out-0000.params"))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def bad_inputs(exported, tmp_path):
    """(case name, symbol path, params path, expected message part)."""
    _, models = exported
    prefix, _ = models["lenet"]
    symbol, params = prefix + "-symbol.json", prefix + "-0000.params"
    raw = open(params, "rb").read()
    flipped = bytearray(raw)
    flipped[40] ^= 0x10  # inside the first array's shape
    graph = json.load(open(symbol))
    bad_kernel = json.loads(json.dumps(graph))
    next(n for n in bad_kernel["nodes"] if n["op"] == "QConvolution" or  # fused, or composed
         "__bmxnet_layer__" in n.get("attrs", {}))["attrs"]["kernel"] = "(x, 3)"
    float_only = mx.gluon.nn.HybridSequential()
    float_only.add(mx.gluon.nn.Dense(3))
    float_only.initialize()
    float_only.hybridize()
    float_only(mx.nd.ones((1, 4)))
    float_only.export(str(tmp_path / "float"))
    renamed = {("arg:other_" + k[4:] if k.startswith("arg:") else k): v for k, v in mx.nd.load(params).items()}
    mx.nd.save(str(tmp_path / "renamed.params"), renamed)
    wrong_shape = dict(mx.nd.load(params))
    key = next(k for k in wrong_shape if "qconv2d0_weight" in k)
    wrong_shape[key] = mx.nd.ones((45, 37, 5, 5))
    mx.nd.save(str(tmp_path / "wrong_shape.params"), wrong_shape)
    return [
        ("missing symbol", str(tmp_path / "nope-symbol.json"), params, "cannot read"),
        ("missing params", symbol, str(tmp_path / "nope.params"), "cannot read"),
        ("truncated params", symbol, write(tmp_path / "t.params", raw[:len(raw) // 2]), "truncated or corrupt"),
        ("bit-flipped params", symbol, write(tmp_path / "f.params", bytes(flipped)), "corrupt"),
        ("not json", write(tmp_path / "x.json", b"\x89PNG garbage"), params, "not JSON"),
        ("json, not a symbol", write(tmp_path / "y.json", json.dumps({"a": 1}).encode()), params, "not an MXNet symbol"),
        ("params of another model", symbol, str(tmp_path / "renamed.params"), "which the symbol does not use"),
        ("weight shape mismatch", symbol, str(tmp_path / "wrong_shape.params"), "does not fit its attributes"),
        ("no binary layer", str(tmp_path / "float-symbol.json"), str(tmp_path / "float-0000.params"), "no binary layer"),
        ("params file as symbol", params, params, "not JSON"),
        ("symbol file as params", symbol, symbol, "not an MXNet params file"),
    ] + [("graph without heads", write(tmp_path / "h.json", json.dumps(dict(graph, heads=None)).encode()), params,
          "not an MXNet symbol"),
         ("non-integer kernel", write(tmp_path / "k.json", json.dumps(bad_kernel).encode()), params,
          "invalid kernel='(x, 3)'")]


def run_cli_here(*args):
    """model-converter in this process (faster than run_cli): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = model_converter.main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_cli_bad_input_gives_one_line_error_and_no_output(exported, tmp_path):
    for case, symbol, params, message in bad_inputs(exported, tmp_path):
        inputs = [p for p in (symbol, params) if os.path.exists(p)]
        before = {p: sha(p) for p in inputs}
        out_prefix = str(tmp_path / ("out_" + case.replace(" ", "_")))
        code, stdout, stderr = run_cli_here(symbol, params, "-o", out_prefix)
        assert code == 1, (case, stdout, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("model-converter: error:"), (case, stderr)
        assert message in lines[0], (case, lines[0])
        assert "Traceback" not in stderr
        assert {p: sha(p) for p in inputs} == before, case
        assert not [f for f in os.listdir(tmp_path) if f.startswith("out_" + case.replace(" ", "_"))], case


def test_converting_twice_says_already_converted(exported, tmp_path):
    _, models = exported
    prefix, _ = models["lenet"]
    symbol_out, params_out, _ = bmxnet.convert(prefix + "-symbol.json", prefix + "-0000.params",
                                               str(tmp_path / "once"))
    with pytest.raises(bmxnet.ConversionError, match="already converted"):
        bmxnet.convert(symbol_out, params_out, str(tmp_path / "twice"))


FUZZ_SCRIPT = r"""
import io, json, os, random, sys, contextlib
from smd import model_converter
symbol, params, workdir, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
raw = open(params, 'rb').read()
rng = random.Random(11)
outcomes = []
for i in range(count):
    data = bytearray(raw)
    if i % 2 == 0:
        data = data[:rng.randrange(len(data))]
    else:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path = os.path.join(workdir, 'fuzz.params')
    open(path, 'wb').write(bytes(data))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = model_converter.main([symbol, path, '-o', os.path.join(workdir, 'fuzz_out'), '-q'])
    outcomes.append((code, err.getvalue()))
print(json.dumps(outcomes))
"""


@pytest.mark.slow
def test_fuzzed_params_give_clean_error_or_valid_conversion(exported, tmp_path):
    _, models = exported
    prefix, _ = models["resnet"]
    result = subprocess.run([sys.executable, "-c", FUZZ_SCRIPT, prefix + "-symbol.json",
                             prefix + "-0000.params", str(tmp_path), "200"],
                            capture_output=True, text=True, timeout=600,
                            cwd=os.path.join(os.path.dirname(__file__), ".."))
    assert result.returncode == 0, result.stderr[-2000:]  # a crash would end the process
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(outcomes) == 200
    for code, stderr in outcomes:
        if code == 0:
            assert stderr == ""
        else:
            assert code == 1 and stderr.count("\n") == 1 and stderr.startswith("model-converter: error:"), stderr
    assert sum(code == 1 for code, _ in outcomes) >= 100  # every truncation must be caught
    leftovers = [f for f in os.listdir(tmp_path) if f not in ("fuzz.params", "fuzz_out-symbol.json", "fuzz_out-0000.params")]
    assert not leftovers, leftovers


def test_packed_models_build_load_and_run_without_warnings(exported, tmp_path):
    """convert_block and import_block declare the input float32: MXNet can infer every type
    and prints no "Cannot decide type" warning (SymbolBlock.imports does, for any model)."""
    import warnings
    prefix, shape = exported[1]["lenet"]
    symbol_out, params_out, _ = bmxnet.convert(prefix + "-symbol.json", prefix + "-0000.params",
                                               str(tmp_path / "packed"))
    net = get_model("lenet_binary", channels=(37, 45), hidden=65)
    net.initialize()
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2,) + shape[1:]))
    net(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        block, _ = bmxnet.convert_block(net)
        block(x).wait_to_read()
        loaded = bmxnet.import_block(symbol_out, params_out)
        loaded(x).wait_to_read()


def test_report_counts_every_pass_in_the_order_passes_run(exported, tmp_path):
    from bmxnet import converter
    prefix, _ = exported[1]["resnet"]
    _, _, report = bmxnet.convert(prefix + "-symbol.json", prefix + "-0000.params", str(tmp_path / "packed"))
    assert [name for name, _ in report.pass_counts] == [name for name, _ in converter.PASSES]
    counts = dict(report.pass_counts)
    assert counts["residual adds absorbed by packed convs"] == report.residual_adds == 3
    assert counts["BatchNorm + sign folded into thresholds"] == len(report.folded)
    assert all(("%s:" % name in str(report)) == bool(count) for name, count in report.pass_counts)
