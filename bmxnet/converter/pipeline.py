"""model-converter's pipeline: packs the 1-bit weights of a trained model into bits, then
runs the rewrite PASSES.

Every QConvolution / QFullyConnected with act_bit=1 and weight_bit=1 gets
binarized_weights_only=True and its weight replaced by the packed int64 tensor
(bmxnet.packing); with scaling="xnor" a float `<weight>_scale` input carries the
per-channel scale the packed signs no longer hold. The PASSES (passes.py,
batchnorm_passes.py, concat_passes.py) then hand the packed layers what they can do
themselves (sign activations, BatchNorm + sign, residual adds, ...) and run MXNet's
remaining operators where bmxnet's compute the same values faster, without changing a
value. Everything else is kept as it is.

The input is untrusted: the whole graph and its parameters are checked first (graph_check,
shape_check), the converted graph must load in MXNet, and only then are the two output files
written, as one change (model_files).
"""
import copy
import json
import os
import re
import shutil
import tempfile

import mxnet as mx

from .. import packing
from . import model_files
from .conversion_error import ConversionError, mxnet_message
from .passes import (absorb_residual_adds, copy_shared_inputs, pool_channels_last, replace_channel_concats,
                     replace_poolings, skip_identity_reshapes, skip_sign_activation, take_leading_slices)
from .batchnorm_passes import fold_batchnorm_signs, fuse_batchnorm_relus, pool_before_batchnorm, replace_batchnorms
from .concat_passes import read_concat_pieces
from .graph_check import ATTR_KEYS, GraphError, check_nodes, check_structure
from .graph_nodes import describe_variable
from ..nn.composed import fold_composed_layers
from .onednn_layouts import float_batchnorm_layouts
from .op_specs import BINARY_OPS
from .shape_check import ParamsError, check_params, param_key, param_name

_MXNET_VERSION = int("%d%02d%02d" % tuple(int(part) for part in
                                          re.match(r"(\d+)\.(\d+)\.(\d+)", mx.__version__).groups()))
__all__ = ["ConversionError", "ConversionReport", "convert", "convert_block", "convert_graph", "default_out_prefix"]


class ConversionReport:
    """What a conversion did: converted layers, parameter counts and bytes before/after."""

    def __init__(self):
        self.layers = []  # (name, op, weight shape, packed shape, bytes before, bytes after)
        self.kept = []    # names of Q layers left in float (more than 1 bit)
        self.folded = []  # BatchNorms folded into the packed layers' sign thresholds
        self.residual_adds = 0  # elemwise adds absorbed by packed convolutions
        self.residual_slices = 0  # ... whose other operand, a channel slice, is read in place
        self.channel_concats = 0  # Concat(dim=1) run as ChannelConcat
        self.slices_in_place = 0  # leading-channel slices a ChannelConcat reads in place
        self.concats_as_pieces = 0  # ChannelConcats whose readers take its pieces instead
        self.poolings = 0  # Pooling run as PlainPooling
        self.poolings_first = 0  # max poolings moved before the BatchNorm they followed
        self.poolings_channels_last = 0  # ... of oneDNN convolution outputs, as NHWC PlainPooling
        self.batchnorms = 0  # BatchNorm run as PlainBatchNorm
        self.relus_fused = 0  # ReLUs that PlainBatchNorms apply in the same pass
        self.reshapes_skipped = 0  # identity reshapes in front of bmxnet operators
        self.shared_copies = 0  # outputs of MXNet ops copied once for several bmxnet inputs
        self.bytes_before = self.bytes_after = 0
        self.values = 0
        self.pass_counts = []  # (pass name, what it changed), in the order PASSES run

    def __str__(self):
        lines = ["%-40s %-16s %-18s %-18s %12s %10s" % ("layer", "op", "weight", "packed", "bytes", "packed")]
        for name, op, shape, packed, before, after in self.layers:
            lines.append("%-40s %-16s %-18s %-18s %12d %10d" % (name, op, shape, packed, before, after))
        for name in self.kept:
            lines.append("%-40s kept in float (more than 1 bit)" % name)
        for name, count in self.pass_counts:
            if count:
                lines.append("%-44s %d" % (name + ":", count))
        lines.append("%d binary layers converted; %d parameter values; params data %d -> %d bytes (%.1fx smaller)"
                     % (len(self.layers), self.values, self.bytes_before, self.bytes_after,
                        self.bytes_before / max(self.bytes_after, 1)))
        return "\n".join(lines)


def _checked_input(graph, params, where, params_where):
    """A copy of `graph`, its composed layers folded, and of `params`, once both are checked
    (graph_check, shape_check), and the BatchNorm layouts of the float graph
    (onednn_layouts.float_batchnorm_layouts); ConversionError naming the file otherwise."""
    try:
        check_structure(graph)
    except GraphError as error:
        raise ConversionError("%s: %s" % (where, error)) from None
    if not isinstance(params, dict):
        raise ConversionError("%s: params are a %s, expected a dict of arrays" % (params_where, type(params).__name__))
    graph = copy.deepcopy(graph)
    for node in graph["nodes"]:  # one name for the attributes: "attrs"
        present = [key for key in ATTR_KEYS if key in node]
        if present and (present[0] != "attrs" or node["attrs"] is None):
            node["attrs"] = node.pop(present[0]) or {}
    try:
        float_layouts = float_batchnorm_layouts(graph["nodes"])  # composed layers are Convolutions here
    except ValueError:
        float_layouts = None  # an attribute int() cannot read, which check_nodes reports
    try:
        check_nodes(graph, composed_weights=True)  # as MXNet runs the float model
        fold_composed_layers(graph)  # Convolution(QActivation, sign_ste(W)) -> QConvolution
        checked = check_nodes(graph)  # as the converter reads it
    except ValueError as error:
        raise ConversionError("%s: %s" % (where, error)) from None
    try:
        check_params(graph["nodes"], checked, params)
    except ParamsError as error:
        raise ConversionError("%s: %s" % (params_where, error)) from None
    return graph, dict(params), float_layouts


def convert_graph(graph, params, where="model", params_where=None):
    """Converts a symbol graph (parsed JSON) and its params (dict of numpy arrays).

    Returns (new graph, new params, ConversionReport); the inputs are not modified.
    Raises ConversionError (naming `where`, or `params_where` for the params) for anything
    it cannot convert exactly.
    """
    graph, params, float_layouts = _checked_input(graph, params, where, params_where or where)
    try:
        report = _convert_checked(graph, params, float_layouts, where)
    except RecursionError:
        raise ConversionError("%s: the graph nests too deeply to convert" % where) from None
    graph["attrs"] = {"mxnet_version": ["int", _MXNET_VERSION]}  # its format: MXNet applies no legacy upgrade
    _check_output(graph, params, where)
    return graph, params, report


class _Conversion:
    """What the rewrite passes share: the graph (changed in place), consumer counts and
    parameters, the float model's BatchNorm layouts, and what earlier passes found."""

    def __init__(self, graph, params, consumers, float_layouts):
        self.graph, self.nodes, self.params = graph, graph["nodes"], params
        self.consumers, self.float_layouts = consumers, float_layouts
        self.absorbed = {}  # index of an add a packed conv absorbed -> that conv
        self.folded = set()  # names of BatchNorms folded into sign thresholds
        self.live = None  # reachable nodes, worked out again where a pass needs it

    def reachable(self):
        self.live = _reachable(self.graph)  # the passes add nodes but leave no bmxnet operator unreachable
        return self.live


def _fold(c, report):
    report.folded = fold_batchnorm_signs(c.nodes, c.consumers, c.params, c.float_layouts)
    c.folded = set(report.folded)
    return len(report.folded)


def _absorb(c, report):
    c.absorbed, report.residual_slices = absorb_residual_adds(c.nodes, c.consumers)
    report.residual_adds = len(c.absorbed)
    return report.residual_adds


def _counted(field, run):
    """A pass whose count is also the report's `field`."""
    def counted(c, report):
        setattr(report, field, run(c))
        return getattr(report, field)
    return counted


# The rewrites after the binary layers are packed, in the order they run (each returns what
# it changed). Max poolings move first: a BatchNorm that then feeds a packed layer folds into
# it. The layout-dependent passes see the graph as MXNet will run it (passes.py has why).
PASSES = (
    ("max poolings moved before their BatchNorm",
     _counted("poolings_first", lambda c: pool_before_batchnorm(c.nodes, c.consumers, c.params))),
    ("BatchNorm + sign folded into thresholds", _fold),
    ("residual adds absorbed by packed convs", _absorb),
    ("Concat run as ChannelConcat", _counted("channel_concats", lambda c: replace_channel_concats(c.nodes))),
    ("channel slices read in place",
     _counted("slices_in_place", lambda c: take_leading_slices(c.nodes, c.consumers, c.absorbed))),
    ("Pooling of plain tensors as PlainPooling",
     _counted("poolings", lambda c: replace_poolings(c.nodes, c.absorbed))),
    ("BatchNorm of plain tensors as PlainBatchNorm",
     _counted("batchnorms", lambda c: replace_batchnorms(c.nodes, c.float_layouts, c.absorbed, c.params, c.folded,
                                                         c.reachable()))),
    ("Pooling of convolution outputs as NHWC PlainPooling",
     _counted("poolings_channels_last", lambda c: pool_channels_last(c.nodes, c.graph["heads"], c.live))),
    ("ReLUs fused into PlainBatchNorm",
     _counted("relus_fused", lambda c: fuse_batchnorm_relus(c.nodes, c.graph["heads"], c.live))),
    ("ChannelConcats read as their pieces",
     _counted("concats_as_pieces", lambda c: read_concat_pieces(c.nodes, [h[0] for h in c.graph["heads"]],
                                                                 c.absorbed))),
    ("identity reshapes skipped",
     _counted("reshapes_skipped", lambda c: skip_identity_reshapes(c.nodes, c.reachable()))),
    ("shared inputs copied once",
     _counted("shared_copies", lambda c: copy_shared_inputs(c.nodes, c.absorbed, c.live))),
)


def _convert_checked(graph, params, float_layouts, where):
    """convert_graph on a checked copy of the graph and params (changed in place)."""
    nodes = graph["nodes"]
    consumers = _consumer_counts(graph)
    report = ConversionReport()
    report.values = int(sum(v.size for v in params.values()))
    report.bytes_before = int(sum(v.nbytes for v in params.values()))
    for node in nodes:
        attrs = node.get("attrs") or {}
        if node["op"] not in BINARY_OPS:
            continue
        if (int(attrs.get("act_bit", 1)), int(attrs.get("weight_bit", 1))) != (1, 1):
            report.kept.append(node["name"])
            continue
        weight_variable = nodes[node["inputs"][1][0]]
        key = param_key(params, weight_variable["name"])
        weight = params[key]
        pack = packing.pack_conv_weight if node["op"] == "QConvolution" else packing.pack_dense_weight
        packed = pack(weight)
        params[key] = packed
        describe_variable(weight_variable, packed)
        attrs["binarized_weights_only"] = "True"
        # the packed shape cannot tell 32 from 64 channels: the operator checks this against the data
        attrs["packed_channels" if node["op"] == "QConvolution" else "packed_features"] = str(weight.shape[1])
        node["attrs"] = attrs
        if str(attrs.get("scaling", "none")).lower() == "xnor":
            scale_name = weight_variable["name"] + "_scale"
            params["arg:" + scale_name] = packing.xnor_scale(weight)
            node["inputs"].insert(2, describe_variable({"op": "null", "name": scale_name, "inputs": []},
                                                       params["arg:" + scale_name]))
        skip_sign_activation(nodes, node, consumers)
        report.layers.append((node["name"], node["op"], _shape_text(weight.shape),
                              _shape_text(packed.shape), weight.nbytes, packed.nbytes))
    if not report.layers:
        raise ConversionError("%s: no binary layer to convert (QConvolution / QFullyConnected with "
                              "act_bit=1 and weight_bit=1)" % where)
    conversion = _Conversion(graph, params, consumers, float_layouts)
    for name, run in PASSES:
        report.pass_counts.append((name, run(conversion, report)))
    absorbed = conversion.absorbed
    reachable, moved = _reachable(graph), set(absorbed.values())
    _rebuild(graph, [(absorbed.get(index, index), index) for index in range(len(nodes))
                     if index in reachable and index not in moved])
    variables = {node["name"] for node in graph["nodes"] if node["op"] == "null"}
    for key in [key for key in params if param_name(key) not in variables]:
        del params[key]  # of folded BatchNorms, and of layers no output depends on
    report.bytes_after = int(sum(v.nbytes for v in params.values()))
    return report


def _check_output(graph, params, where):
    """The converted graph is well formed, loads in MXNet (whose parsers, bmxnet's among
    them, check every attribute) and has a variable for every parameter."""
    try:
        check_structure(graph)
        symbol = mx.sym.load_json(json.dumps(graph, ensure_ascii=False))  # MXNet reads no \u escapes
    except GraphError as error:
        raise ConversionError("%s: the converted graph is not valid (%s)" % (where, error)) from None
    except mx.base.MXNetError as error:
        raise ConversionError("%s: the converted graph does not load (%s)" % (where, mxnet_message(error))) from None
    variables = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    stray = [key for key in params if param_name(key) not in variables]
    if stray:
        raise ConversionError("%s: the converted graph has no variable for the parameter %s" % (where, stray[0]))


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _consumer_counts(graph):
    counts = {}
    try:
        for edge in [e for n in graph["nodes"] for e in n.get("inputs", [])] + list(graph["heads"]):
            counts[edge[0]] = counts.get(edge[0], 0) + 1
    except (KeyError, IndexError, TypeError):
        raise ConversionError("symbol graph has bad input references") from None
    return counts


def _reachable(graph):
    """Indices of the nodes some output depends on: not the weight expressions of folded
    layers, nor skipped sign activations."""
    nodes, reachable = graph["nodes"], set()
    try:
        stack = [head[0] for head in graph["heads"]]
        while stack:
            index = stack.pop()
            if index not in reachable:
                reachable.add(index)
                for edge in nodes[index].get("inputs", []):  # new nodes (dicts) read old ones
                    stack.extend([e[0] for e in edge.get("inputs", [])] if isinstance(edge, dict) else [edge[0]])
    except (KeyError, IndexError, TypeError):
        raise ConversionError("symbol graph has bad input references") from None
    return reachable


def _rebuild(graph, kept):
    """Replaces the node list by the old nodes of `kept`, (old index, place) in order;
    references to `place` (the node itself, or an add it absorbed) point to it. New nodes,
    dicts in a node's inputs (variables, or operators reading old nodes that come before),
    become nodes right before their first user. Renumbers every reference (inputs, heads,
    arg_nodes, node_row_ptr)."""
    old_nodes = graph["nodes"]
    row_ptr = graph.get("node_row_ptr")
    outputs = ([row_ptr[i + 1] - row_ptr[i] for i in range(len(old_nodes))]
               if isinstance(row_ptr, list) and len(row_ptr) == len(old_nodes) + 1 else None)
    new_index, nodes, new_outputs, added = {}, [], [], {}
    try:
        for old, place in kept:
            inputs = []
            for entry in old_nodes[old].get("inputs", []):
                if isinstance(entry, dict):  # a new node, shared by all its users
                    if id(entry) not in added:
                        added[id(entry)] = len(nodes)
                        nodes.append(dict(entry, inputs=[[new_index[e[0]]] + list(e[1:])
                                                         for e in entry.get("inputs", [])]))
                        new_outputs.append(1)
                    inputs.append([added[id(entry)], 0, 0])
                else:
                    inputs.append([new_index[entry[0]]] + list(entry[1:]))
            node = dict(old_nodes[old], inputs=inputs)
            new_index[old] = new_index[place] = len(nodes)
            nodes.append(node)
            new_outputs.append(outputs[old] if outputs else 1)
        graph["heads"] = [[new_index[h[0]]] + list(h[1:]) for h in graph["heads"]]
    except (KeyError, IndexError, TypeError):
        raise ConversionError("symbol graph is not in topological order or has bad input references") from None
    graph["nodes"] = nodes
    graph["arg_nodes"] = [i for i, n in enumerate(nodes) if n["op"] == "null"]
    if outputs:
        graph["node_row_ptr"] = [0]
        for count in new_outputs:
            graph["node_row_ptr"].append(graph["node_row_ptr"][-1] + count)


def default_out_prefix(symbol_file):
    """binarized_<prefix> next to the input: net-symbol.json -> binarized_net."""
    directory, name = os.path.split(symbol_file)
    prefix = name[:-len("-symbol.json")] if name.endswith("-symbol.json") else os.path.splitext(name)[0]
    return os.path.join(directory, "binarized_" + prefix)


def convert(symbol_file, params_file, out_prefix=None):
    """Converts PREFIX-symbol.json + PREFIX-EPOCH.params into packed files.

    Writes <out_prefix>-symbol.json and <out_prefix>-0000.params (default out_prefix:
    binarized_PREFIX next to the input) as one change, once everything is checked; an
    output that is an input is refused. Returns (symbol path, params path,
    ConversionReport). Raises ConversionError.
    """
    symbol_file = model_files.path_text(symbol_file, "symbol file")
    params_file = model_files.path_text(params_file, "params file")
    prefix = model_files.path_text(out_prefix, "output prefix") if out_prefix else default_out_prefix(symbol_file)
    symbol_out, params_out = prefix + "-symbol.json", prefix + "-0000.params"
    model_files.check_output_paths([symbol_out, params_out], [symbol_file, params_file])
    graph = model_files.read_symbol(symbol_file)
    params = model_files.read_params(params_file)
    new_graph, new_params, report = convert_graph(graph, params, where=symbol_file, params_where=params_file)
    model_files.write_model(symbol_out, params_out, new_graph, new_params)
    return symbol_out, params_out, report


def convert_block(net, input_names=("data",)):
    """Packed SymbolBlock of a hybridized Gluon network that has run at least once.

    Goes through the same files as `convert` (in a temporary directory).
    Returns (SymbolBlock, hybridized as import_block leaves it; ConversionReport).
    """
    directory = tempfile.mkdtemp(prefix="bmxnet-convert-")
    try:
        try:
            net.export(os.path.join(directory, "model"))
        except RuntimeError as error:
            raise ConversionError("cannot export the network (%s); call net.hybridize() and run "
                                  "it once first" % str(error).splitlines()[0]) from None
        symbol_file, params_file, report = convert(os.path.join(directory, "model-symbol.json"),
                                                   os.path.join(directory, "model-0000.params"))
        block = model_files.import_block(symbol_file, params_file, input_names)
        return block, report
    finally:
        shutil.rmtree(directory, ignore_errors=True)
