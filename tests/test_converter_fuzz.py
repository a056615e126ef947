"""Fuzz test of model-converter (issue 20): random mutations of a small valid model's symbol
JSON and params (attributes, shapes, node references, types, nesting, dtypes, values, file
bytes) either convert or fail with one ConversionError line; nothing else may happen.

A converted case must load as a SymbolBlock, and (for a sample) predict what the mutated
float model predicts wherever that one runs. Every 16th case goes through files and the
command line (in this process), which must exit 0 or 1 with one line and leave the inputs
and the directory as they were. The cases run in one child process (a crash names the last
case) with a fixed seed: at least MIN_CASES, then more until SECONDS have passed.
Run alone: python tests/test_converter_fuzz.py SEED MIN_CASES SECONDS WORKDIR
"""
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time
import traceback

import pytest

SEED, MIN_CASES, SECONDS = 20, 1000, 25


@pytest.mark.slow
def test_converter_fuzz_never_crashes(tmp_path):
    log = tmp_path / "cases.log"
    result = subprocess.run([sys.executable, __file__, str(SEED), str(MIN_CASES), str(SECONDS), str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    last_case = log.read_text().splitlines()[-1] if log.exists() else "none"
    assert result.returncode == 0, "last case: %s\n%s" % (last_case, result.stderr[-4000:])
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["cases"] >= MIN_CASES, counts
    assert counts["refused"] > counts["cases"] // 3 and counts["converted"] > counts["cases"] // 20, counts
    assert counts["compared"] >= 30 and counts["files"] >= MIN_CASES // 20, counts


# --- the mutations ------------------------------------------------------------------------------

ATTR_TEXTS = ["0", "1", "-1", "2", "3", "5", "8", "33", "(0, 0)", "(1, 1)", "(2, 2)", "(3, 3)", "(3,)", "(3, 3, 3)",
              "(1, -1)", "()", "[2, 2]", "3", "None", "True", "False", "true", "TRUE", "1.5", "-0", "0.0", "-1.0",
              "nan", "inf", "-inf", "1e309", "1e-45", "99999999999999999999", "2147483648", "(4294967296, 3)", "",
              " ", "x", "none", "xnor", "XNOR", "max", "avg", "sum", "lp", "full", "relu", "NCHW", "NHWC", "'1'", "1 ",
              "\n", "\x00", "\ud800", "(1,\n1)", "(0, 0, 0, 0)", "(0, -1)", "(0, -4, 2, -1, -2)", "\u00e9", "{",
              "[[[[", "1" * 500]
ATTR_KEYS = ["kernel", "stride", "pad", "dilate", "num_filter", "num_group", "no_bias", "act_bit", "weight_bit",
             "scaling", "pad_value", "binarized_weights_only", "residual", "data_threshold", "data_pieces", "axis",
             "eps", "fix_gamma", "use_global_stats", "output_mean_var", "pool_type", "global_pool",
             "pooling_convention", "dim", "num_args", "begin", "end", "flatten", "num_hidden", "shape", "act_type",
             "method", "clip", "backward_only", "layout", "__shape__", "__dtype__", "__storage_type__", "__init__",
             "__bmxnet_layer__", "colour", "__x__", "__foo", ""]
OPS = ["Convolution", "FullyConnected", "BatchNorm", "Pooling", "QConvolution", "QFullyConnected", "QActivation",
       "Activation", "Concat", "slice_axis", "Reshape", "Flatten", "relu", "elemwise_add", "broadcast_add",
       "_mul_scalar", "BlockGrad", "null", "ChannelConcat", "PlainPooling", "PlainBatchNorm", "Nope", "", "Custom",
       "Embedding", "_contrib_quantize_v2", "SoftmaxOutput", "Dropout", "transpose", "mean"]
TAGS = ['{"act_bit": 2, "op": "QConvolution", "pad_value": 0.0, "scaling": "none", "weight_bit": 1}',
        '{"act_bit": 1, "op": "QConvolution", "pad_value": -1.0, "scaling": "none", "weight_bit": 1}',
        '{"act_bit": 1, "op": "QConvolution", "pad_value": 0.0, "scaling": "xnor", "weight_bit": 1}',
        '{"act_bit": 1, "op": "QFullyConnected", "scaling": "none", "weight_bit": 1}',
        '{"act_bit": true, "op": "QConvolution", "pad_value": 0, "scaling": "none", "weight_bit": 1}',
        '{"act_bit": 1, "op": "QConvolution", "pad_value": 0.0, "scaling": "none", "weight_bit": 1, "x": 1}',
        "{", "null", "1", "[" * 5000 + "]" * 5000, '{"op": "QConvolution"}']
DTYPES = ["float16", "float64", "int32", "int64", "uint8", "int8"]


def nested(rng):
    value = rng.choice([[], {}, "x", 0])
    for _ in range(rng.choice([2, 50, 3000])):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def _short(value):
    """A value as a case description shows it (nested junk only by its type)."""
    return type(value).__name__ if isinstance(value, (list, dict)) else repr(value)[:40]


def junk(rng):
    """A value of a type or size the graph does not expect there."""
    return rng.choice([1, -1, 1.5, None, True, [], {}, [1, 2], {"a": "b"}, "x", 10 ** 30, float("nan"), nested(rng)])


def some_node(rng, graph, with_attrs=False):
    nodes = [n for n in graph["nodes"] if isinstance(n, dict)] if isinstance(graph.get("nodes"), list) else []
    if with_attrs:
        nodes = [n for n in nodes if isinstance(n.get("attrs"), dict) and n["attrs"]] or nodes
    return rng.choice(nodes) if nodes else None


def entry(rng, count):
    index = rng.choice([rng.randrange(-3, count + 3), count - 1, 0, rng.randrange(count)])
    return rng.choice([[index, 0, 0], [index, 0, 0], [index, rng.choice([1, 2, 64]), 0], [index, 0, 1], [index],
                       [index, 0, 0, 0], [str(index), 0, 0], [float(index), 0, 0], [True, 0, 0], junk(rng)])


def mutate_attr(rng, graph, params):
    node = some_node(rng, graph, with_attrs=True)
    if node is None:
        return "no node"
    attrs = node.setdefault("attrs", {}) if isinstance(node.get("attrs", {}), dict) else {}
    key = rng.choice(list(attrs) * 3 + ATTR_KEYS) if attrs else rng.choice(ATTR_KEYS)
    if key == "__bmxnet_layer__":
        value = rng.choice(TAGS)
    elif rng.random() < 0.1:
        value = junk(rng)
    else:
        value = rng.choice(ATTR_TEXTS + [str(rng.randint(-3, 200))])
    if rng.random() < 0.15 and key in attrs:
        del attrs[key]
        return "del %s.%s" % (_short(node.get("name")), key)
    attrs[key] = value
    return "%s.%s=%s" % (_short(node.get("name")), key, _short(value))


def mutate_tag(rng, graph, params):
    tagged = [n for n in graph["nodes"] if "__bmxnet_layer__" in n.get("attrs", {})]
    node = rng.choice(tagged)
    node["attrs"]["__bmxnet_layer__"] = rng.choice(TAGS)
    return "tag of %s" % node["name"]


def mutate_op(rng, graph, params):
    node = some_node(rng, graph)
    node["op"] = rng.choice(OPS) if rng.random() < 0.95 else junk(rng)
    return "op of %s -> %s" % (_short(node["name"]), _short(node["op"]))


def mutate_input(rng, graph, params):
    nodes = [n for n in graph["nodes"] if n.get("inputs")]
    node = rng.choice(nodes)
    inputs, count = node["inputs"], len(graph["nodes"])
    choice = rng.random()
    if choice < 0.6:
        inputs[rng.randrange(len(inputs))] = entry(rng, count)
    elif choice < 0.75:
        inputs.pop(rng.randrange(len(inputs)))
    elif choice < 0.9:
        inputs.append(entry(rng, count))
    else:
        node["inputs"] = junk(rng)
    return "inputs of %s" % _short(node["name"])


def mutate_graph(rng, graph, params):
    """Heads, names, node order and the graph's own keys."""
    nodes, choice = graph["nodes"], rng.randrange(9)
    if choice == 0:
        graph["heads"] = rng.choice([[], [entry(rng, len(nodes))], [[len(nodes) - 1, 0, 0]] * 2, junk(rng)])
    elif choice == 1:
        some_node(rng, graph)["name"] = rng.choice([nodes[rng.randrange(len(nodes))]["name"], "", "a\nb", "x" * 600,
                                                    "\ud800", "caf\u00e9", junk(rng)])
    elif choice == 2:
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif choice == 3:
        del nodes[rng.randrange(len(nodes))]
    elif choice == 4:
        nodes.insert(rng.randrange(len(nodes)), copy.deepcopy(rng.choice(nodes)))
    elif choice == 5:
        key = rng.choice(["nodes", "heads", "arg_nodes", "node_row_ptr", "attrs", "extra"])
        if key in graph and rng.random() < 0.5:
            del graph[key]
        else:
            graph[key] = junk(rng)
    elif choice == 6:
        node = some_node(rng, graph)
        key = rng.choice(["op", "name", "inputs", "attrs", "attr", "param", "subgraphs", "control_deps"])
        if key in node and rng.random() < 0.5:
            del node[key]
        else:
            node[key] = junk(rng)
    elif choice == 7:
        graph["node_row_ptr"] = rng.choice([list(range(len(nodes) + 1)), [0] * (len(nodes) + 1), junk(rng)])
    else:
        graph["attrs"] = rng.choice([{"mxnet_version": ["int", rng.choice([0, 10500, 10901, 99999, -1])]},
                                     {"mxnet_version": ["float", 1.0]}, {}, junk(rng)])
    return "graph change %d" % choice


def mutate_param(rng, params):
    import numpy as np
    if not params:
        return "no params"
    key = rng.choice(sorted(params))
    value, choice = params[key], rng.randrange(8)
    if choice == 0:  # another shape
        shape = list(value.shape)
        how = rng.randrange(5)
        if how == 0 and shape:
            i = rng.randrange(len(shape))
            shape[i] = max(0, shape[i] + rng.choice([-1, 1, 7]))
        elif how == 1 and shape:
            shape.pop(rng.randrange(len(shape)))
        elif how == 2:
            shape.insert(rng.randrange(len(shape) + 1), rng.choice([1, 2]))
        elif how == 3 and len(shape) > 1:
            shape = shape[::-1]
        else:
            shape = [0] + shape
        params[key] = np.resize(value, shape) if value.size and all(shape) else np.zeros(shape, value.dtype)
    elif choice == 1:
        params[key] = value.astype(rng.choice(DTYPES))
    elif choice == 2:
        del params[key]
    elif choice == 3:
        params[rng.choice(["arg:", "aux:", "", "foo:"]) + key.split(":", 1)[-1]] = params.pop(key)
    elif choice == 4:
        params[rng.choice(["arg:stranger", "arg:data", "aux:" + key.split(":", 1)[-1]])] = value
    else:  # values: extreme, zero, negative statistics, NaN
        value = value.astype(value.dtype, copy=True)
        if value.size:
            flat = value.reshape(-1)
            extremes = [0.0, -1.0, 1e30, -1e-30, 65504.0, float("nan"), float("inf"), -3.0]
            for _ in range(rng.randint(1, 3)):
                flat[rng.randrange(flat.size)] = rng.choice(extremes if value.dtype.kind == "f" else [0, 1, -1])
        params[key] = value
    return "param %s change %d" % (key, choice)


GRAPH_MUTATIONS = [mutate_attr] * 6 + [mutate_tag, mutate_op, mutate_op, mutate_input, mutate_input, mutate_input,
                                       mutate_graph, mutate_graph]


def mutate(rng, graph, params):
    """1 to 3 random mutations; returns what they did."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if rng.random() < 0.3:
            done.append(mutate_param(rng, params))
        else:
            try:
                done.append(rng.choice(GRAPH_MUTATIONS)(rng, graph, params))
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                done.append("(a mutation that did not apply)")  # an earlier one broke the structure it expects
    return "; ".join(done)


# --- the checks ---------------------------------------------------------------------------------

class Fuzz:
    def __init__(self, seed, workdir):
        import mxnet as mx
        import numpy as np
        from tiny_model import INPUT_SHAPE, export_tiny, load_model
        self.seed, self.workdir = seed, workdir
        os.makedirs(os.path.join(workdir, "model"), exist_ok=True)
        self.prefix = export_tiny(os.path.join(workdir, "model"), 8, seed=seed)
        self.graph, self.params = load_model(self.prefix)
        with open(self.prefix + "-symbol.json", "rb") as f:
            self.symbol_bytes = f.read()
        with open(self.prefix + "-0000.params", "rb") as f:
            self.params_bytes = f.read()
        self.x = mx.nd.array(np.random.RandomState(seed).uniform(-2, 2, size=INPUT_SHAPE))
        self.counts = dict(cases=0, refused=0, converted=0, compared=0, float_failed=0, files=0)

    def case(self, index):
        rng = random.Random("%d-%d" % (self.seed, index))
        graph, params = copy.deepcopy(self.graph), dict(self.params)
        what = mutate(rng, graph, params)
        self.counts["cases"] += 1
        try:
            if index % 16 == 15:
                self.through_files(rng, graph, params, what)
            else:
                self.in_memory(graph, params, what)
        except AssertionError:
            raise
        except BaseException:
            raise AssertionError("case %d (%s) crashed:\n%s" % (index, what, traceback.format_exc()))

    def in_memory(self, graph, params, what):
        from bmxnet.converter import ConversionError, convert_graph
        before = _snapshot(graph, params)
        try:
            new_graph, new_params, _ = convert_graph(graph, params)
        except ConversionError as error:
            assert str(error) and "\n" not in str(error), (what, str(error))
            self.counts["refused"] += 1
            return
        assert _snapshot(graph, params) == before, "the input changed (%s)" % what
        self.counts["converted"] += 1
        packed = _symbol_block(json.dumps(new_graph, ensure_ascii=False), new_params)
        if self.counts["compared"] < 30 or self.counts["converted"] % 4 == 0:
            self.compare(graph, params, packed, what)

    def compare(self, graph, params, packed, what):
        """Where the mutated float model runs, the packed one gives its predictions."""
        import mxnet as mx
        import numpy as np
        try:
            expected = _outputs(_symbol_block(json.dumps(graph, ensure_ascii=False), params), self.x)
        except (mx.base.MXNetError, ValueError, AssertionError, RuntimeError):
            self.counts["float_failed"] += 1
            return
        got = _outputs(packed, self.x)  # its inputs are the float model's
        assert len(got) == len(expected), what
        for a, b in zip(got, expected):
            scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 1.0
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale, equal_nan=True, err_msg=what)
        self.counts["compared"] += 1

    def through_files(self, rng, graph, params, what):
        """The command line on written (or damaged) files: exit 0 or 1, one line, inputs kept."""
        from smd import model_converter
        directory = os.path.join(self.workdir, "files")
        os.makedirs(directory, exist_ok=True)
        symbol, params_file = os.path.join(directory, "in-symbol.json"), os.path.join(directory, "in-0000.params")
        _write(symbol, _damaged(rng, self.symbol_bytes) if rng.random() < 0.3 else _json_bytes(graph))
        _write(params_file, _damaged(rng, self.params_bytes) if rng.random() < 0.3 else
               _params_bytes(params, os.path.join(self.workdir, "encoded.params")))
        out = rng.choice([os.path.join(directory, "out"), os.path.join(directory, "in"),
                          os.path.join(directory, "..", "files", "in")])
        before = {path: _sha(path) for path in (symbol, params_file)}
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = model_converter.main([symbol, params_file, "-o", out, "-q"])
        message = err.getvalue()
        assert code in (0, 1), (what, code, message)
        assert (code == 0) == (message == "") and message.count("\n") <= 1, (what, message)
        assert "please report" not in message and "Traceback" not in message, (what, message)
        assert {path: _sha(path) for path in before} == before, "an input changed (%s)" % what
        expected = {"in-symbol.json", "in-0000.params"} | (
            {"out-symbol.json", "out-0000.params"} if code == 0 else set())
        assert set(os.listdir(directory)) == expected, (what, os.listdir(directory))
        if code == 0:
            import mxnet as mx
            saved = {key.split(":", 1)[-1] for key in mx.nd.load(out + "-0000.params")}
            inputs = [name for name in mx.sym.load(out + "-symbol.json").list_inputs() if name not in saved]
            mx.gluon.SymbolBlock.imports(out + "-symbol.json", inputs, out + "-0000.params")
            for name in ("out-symbol.json", "out-0000.params"):
                os.remove(os.path.join(directory, name))
        self.counts["files"] += 1


def _snapshot(graph, params):
    try:
        text = json.dumps(graph)
    except (ValueError, TypeError, RecursionError):
        text = None
    return text, sorted((str(k), id(v)) for k, v in params.items())


def _symbol_block(symbol_json, params):
    """A SymbolBlock of the symbol with the params (their saved dtypes), as imports() makes."""
    import mxnet as mx
    from bmxnet.converter.shape_check import param_key
    symbol = mx.sym.load_json(symbol_json)
    free = [name for name in symbol.list_inputs() if param_key(params, name) is None]
    block = mx.gluon.SymbolBlock(symbol, [mx.sym.var(name) for name in free])
    block.free_inputs = free
    block.collect_params().load_dict({k.split(":", 1)[-1]: mx.nd.array(v, dtype=v.dtype) for k, v in params.items()},
                                     cast_dtype=True, dtype_source="saved")
    return block


def _outputs(block, x):
    """The outputs of a block of the one input data for x, as numpy arrays."""
    if block.free_inputs != ["data"]:
        raise ValueError("inputs %s" % block.free_inputs)
    outputs = block(x)
    return [o.asnumpy() for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _json_bytes(graph):
    try:
        return json.dumps(graph).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return b"[" * 100000


def _params_bytes(params, path):
    """The params as mx.nd.save writes them (through the file `path`)."""
    import mxnet as mx
    mx.nd.save(path, {key: mx.nd.array(value, dtype=value.dtype) for key, value in params.items()})
    with open(path, "rb") as f:
        return f.read()


def _damaged(rng, data):
    data = bytearray(data)
    if rng.random() < 0.5:
        return bytes(data[:rng.randrange(len(data))])
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(seed, min_cases, seconds, workdir):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import bmxnet  # noqa: F401  (registers the operators)
    fuzz = Fuzz(seed, workdir)
    start, index = time.time(), 0
    with open(os.path.join(workdir, "cases.log"), "w") as log:
        while index < min_cases or time.time() - start < seconds:
            log.write("%d\n" % index)
            log.flush()
            fuzz.case(index)
            index += 1
    fuzz.counts["seconds"] = round(time.time() - start, 1)
    print(json.dumps(fuzz.counts))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
