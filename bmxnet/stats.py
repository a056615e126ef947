"""Model statistics as in the BNN papers: binary MACs (BOPs), float MACs (FLOPs),
OPs = BOPs / 64 + FLOPs, parameters and size with 1-bit weights at 1 bit, all else at 32.

Counted from the network's symbol graph, so hybridized blocks, SymbolBlocks and symbol
files work alike. MACs count for convolutions and dense layers; a Q layer counts as binary
when both act_bit and weight_bit are 1 (k-bit layers count as float). BatchNorm, pooling
and element-wise ops have no MACs, but their parameters and running statistics count in size.
"""
import json

import mxnet as mx
import numpy as np

from .nn.composed import fold_composed_layers

CONV_OPS = ("Convolution", "QConvolution")
DENSE_OPS = ("FullyConnected", "QFullyConnected")
MIB = float(1 << 20)


class Summary:
    """Per-layer rows and totals; str() is the table, as_dict() the JSON form."""

    def __init__(self, rows, params_binary, params_float):
        self.rows = rows  # dicts: layer, op, output_shape, binary_macs, float_macs, binary_params, float_params
        self.params_binary = params_binary
        self.params_float = params_float
        self.bops = sum(r["binary_macs"] for r in rows)
        self.flops = sum(r["float_macs"] for r in rows)

    @property
    def ops(self):
        return self.bops / 64.0 + self.flops

    @property
    def size_mib(self):
        return (self.params_binary / 8.0 + self.params_float * 4.0) / MIB

    def as_dict(self):
        return {"bops": self.bops, "flops": self.flops, "ops": self.ops,
                "params_binary": self.params_binary, "params_float": self.params_float,
                "size_mib": self.size_mib, "layers": self.rows}

    def __str__(self):
        header = "%-44s %-16s %-20s %14s %14s %12s %12s" % (
            "layer", "op", "output", "binary MACs", "float MACs", "binary par.", "float par.")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append("%-44s %-16s %-20s %14d %14d %12d %12d" % (
                r["layer"][:44], r["op"], str(tuple(r["output_shape"])), r["binary_macs"],
                r["float_macs"], r["binary_params"], r["float_params"]))
        lines.append("-" * len(header))
        lines.append("BOPs %.4g | FLOPs %.4g | OPs (BOPs/64 + FLOPs) %.4g | params %d binary + %d float "
                     "| size %.3f MiB" % (self.bops, self.flops, self.ops, self.params_binary,
                                          self.params_float, self.size_mib))
        return "\n".join(lines)


def _is_binary(node):
    attrs = node.get("attrs", {})
    return (node["op"] in CONV_OPS + DENSE_OPS and node["op"].startswith("Q")
            and int(attrs.get("act_bit", 1)) == 1 and int(attrs.get("weight_bit", 1)) == 1)


def summary_of_symbol(symbol, input_shape, input_name="data"):
    """Summary of a symbol for one input of `input_shape` (MACs per batch of that shape)."""
    internals = symbol.get_internals()
    arg_shapes, out_shapes, aux_shapes = internals.infer_shape(**{input_name: tuple(input_shape)})
    shapes = dict(zip(internals.list_arguments(), arg_shapes))
    shapes.update(zip(internals.list_auxiliary_states(), aux_shapes))
    output_shapes = dict(zip(internals.list_outputs(), out_shapes))
    graph = json.loads(symbol.tojson())
    fold_composed_layers(graph)  # count composed binary layers as the QConvolution they stand for
    nodes = graph["nodes"]
    binary_weights = set()
    rows = []
    for node in nodes:
        if node["op"] not in CONV_OPS + DENSE_OPS:
            continue
        binary = _is_binary(node)
        weight = nodes[node["inputs"][1][0]]["name"]
        if binary:
            binary_weights.add(weight)
        out_shape = output_shapes[node["name"] + "_output"]
        weight_shape = shapes[weight]
        per_output = int(np.prod(weight_shape[1:]))  # (C/groups)*kh*kw, or in_features
        macs = int(np.prod(out_shape)) * per_output
        layer_params = [nodes[i[0]]["name"] for i in node["inputs"][1:] if nodes[i[0]]["op"] == "null"]
        float_params = sum(int(np.prod(shapes[p])) for p in layer_params if p != weight or not binary)
        rows.append({"layer": node["name"], "op": node["op"], "output_shape": list(out_shape),
                     "binary_macs": macs if binary else 0, "float_macs": 0 if binary else macs,
                     "binary_params": int(np.prod(weight_shape)) if binary else 0,
                     "float_params": float_params})
    params = {name: int(np.prod(shape)) for name, shape in shapes.items() if name != input_name}
    params_binary = sum(v for k, v in params.items() if k in binary_weights)
    return Summary(rows, params_binary, sum(params.values()) - params_binary)


def summary(net, input_shape):
    """Summary of a Gluon HybridBlock for an input of `input_shape` (e.g. (1, 3, 224, 224))."""
    data = mx.sym.var("data")
    out = net(data)
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    return summary_of_symbol(out, input_shape)
