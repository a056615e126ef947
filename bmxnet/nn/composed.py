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
    JSON graph into the QConvolution / QFullyConnected node it stands for, with the weight
    variable as its weight input. The sign_ste nodes become unreachable. Returns the count."""
    nodes = graph["nodes"]
    folded = 0
    for node in nodes:
        attrs = node.get("attrs") or {}
        if MARK not in attrs or node["op"] not in ("Convolution", "FullyConnected"):
            continue
        spec = json.loads(attrs.pop(MARK))
        node["op"] = spec.pop("op")
        attrs.update({key: str(value) for key, value in spec.items()})
        node["attrs"] = attrs
        node["inputs"][1] = [_only_variable(nodes, node["inputs"][1][0], node["name"]), 0, 0]
        folded += 1
    return folded


def _only_variable(nodes, start, layer):
    """Index of the single variable feeding the weight expression that starts at `start`."""
    seen, stack, variables = set(), [start], set()
    while stack:
        index = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        if nodes[index]["op"] == "null":
            variables.add(index)
        stack.extend(edge[0] for edge in nodes[index].get("inputs", []))
    if len(variables) != 1:
        raise ValueError("layer %s: its weight expression reads %d variables, expected 1" % (layer, len(variables)))
    return variables.pop()
