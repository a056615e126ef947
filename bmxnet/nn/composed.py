"""Binary layers that train through MXNet's own Convolution / FullyConnected.

A QConv2D / QDense with 1-bit weights and activations, no weight scaling and zero padding
runs ``Convolution(QActivation(x), sign_ste(W))``: MXNet's oneDNN kernels on the +-1
tensors instead of QConvolution's im2col + SGEMM. The forward values are identical (sums
of +-1 products are exact in float); gradients agree up to float summation order.

The Convolution / FullyConnected node carries the attribute ``__bmxnet_layer__`` with the
fused operator's name and quantization attributes; ``fold_composed_layers`` turns such
nodes of a symbol JSON graph back into QConvolution / QFullyConnected nodes, so the
converter and the statistics see the same graph as for the fused operators.
"""
import json

import mxnet as mx

MARK = "__bmxnet_layer__"


def sign_ste(F, weight):
    """sign(w) (0 -> +1, NaN -> -1) forward, identity gradient (the straight-through
    estimator of QConvolution's 1-bit weights). Exact: w - BlockGrad(w) is exactly 0."""
    sign = (weight >= 0) * 2 - 1
    return F.elemwise_add(F.BlockGrad(sign), F.elemwise_sub(weight, F.BlockGrad(weight)))


def marked(F, op_name, fused_attrs, *inputs, **attrs):
    """F.<op_name>(*inputs, **attrs), tagged with the fused operator it stands for."""
    spec = json.dumps(dict(fused_attrs, op="Q" + op_name), sort_keys=True)
    with mx.AttrScope(**{MARK: spec}):
        return getattr(F, op_name)(*inputs, **attrs)


def fold_composed_layers(graph):
    """Rewrites, in place, every tagged Convolution / FullyConnected node of a parsed symbol
    JSON graph (checked by graph_check.check_structure) into the QConvolution /
    QFullyConnected node it stands for, with the weight variable as its weight input. The
    sign_ste nodes become unreachable. Returns the count; ValueError for a tag or weight
    expression that composed layers do not write (the packed layer would compute something
    else than the float one)."""
    nodes = graph["nodes"]
    folded = 0
    for node in nodes:
        attrs = node.get("attrs") or {}
        if MARK not in attrs or node["op"] not in ("Convolution", "FullyConnected"):
            continue
        spec = _read_mark(node, attrs.pop(MARK))
        if len(node["inputs"]) < 2:
            raise ValueError("composed layer %s has no weight input" % node["name"])
        node["op"] = spec.pop("op")
        attrs.setdefault("no_bias", "False")  # MXNet's default, where bmxnet's is True
        attrs.update({key: str(value) for key, value in spec.items()})
        node["attrs"] = attrs
        node["inputs"][1] = [_sign_ste_variable(nodes, node["inputs"][1], node["name"]), 0, 0]
        folded += 1
    return folded


def _read_mark(node, text):
    """The fused attributes of a composed layer's tag: only the ones marked() writes (1-bit
    weights and activations, no scaling, zero padding), which the composed layer computes."""
    expected = {"op": "Q" + node["op"], "act_bit": 1, "weight_bit": 1, "scaling": "none"}
    if node["op"] == "Convolution":
        expected["pad_value"] = 0.0
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError):
        spec = None
    if not isinstance(spec, dict) or set(spec) != set(expected) or any(
            type(spec[key]) is not type(value) and not (type(value) is float and type(spec[key]) is int)
            or spec[key] != value for key, value in expected.items()):
        raise ValueError("composed layer %s has the tag %s=%r, which bmxnet's layers do not write"
                         % (node["name"], MARK, text[:80]))
    return spec


def _sign_ste_variable(nodes, entry, layer):
    """Index of the variable w of a weight input that is sign_ste(w):
    BlockGrad(((w >= 0) * 2) - 1) + (w - BlockGrad(w))."""
    def source(entry, op, inputs=1, scalar=None):
        node = nodes[entry[0]]
        if entry[1] != 0 or node["op"] != op or len(node["inputs"]) != inputs or (
                scalar is not None and _number((node.get("attrs") or {}).get("scalar")) != scalar):
            raise ValueError("composed layer %s: its weight is not sign_ste(weight)" % layer)
        return node
    add = source(entry, "elemwise_add", inputs=2)
    sign = source(source(add["inputs"][0], "BlockGrad")["inputs"][0], "_minus_scalar", scalar=1)
    doubled = source(source(sign["inputs"][0], "_mul_scalar", scalar=2)["inputs"][0], "_greater_equal_scalar", scalar=0)
    weight = doubled["inputs"][0]
    difference = source(add["inputs"][1], "elemwise_sub", inputs=2)
    held = source(difference["inputs"][1], "BlockGrad")["inputs"][0]
    if not weight[0] == difference["inputs"][0][0] == held[0] or nodes[weight[0]]["op"] != "null" or \
            weight[1] != 0 or difference["inputs"][0][1] != 0 or held[1] != 0:
        raise ValueError("composed layer %s: its weight is not sign_ste(weight)" % layer)
    return weight[0]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
