"""The converter's BatchNorm rewrites: BatchNorm + sign folded into a packed layer's sign
thresholds, max pooling moved in front of a BatchNorm, the remaining BatchNorms of plain NCHW
tensors as PlainBatchNorm (with the formula of the float model, and a ReLU after it fused)."""
import mxnet as mx
import numpy as np

from .graph_nodes import BMXNET_OPS, attrs_of, describe_variable, edge, is_true, packed_conv, readers_of
from .onednn_layouts import LAYOUT_KEEPING_OPS, from_2d_onednn_layers, reads_plain_nchw
from .sign_thresholds import sign_thresholds


NON_DECREASING_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softrelu", "softsign")


def fold_batchnorm_signs(nodes, consumers, params, float_layouts):
    """BatchNorms whose every consumer is the data of a packed convolution: the convolutions
    read the BatchNorm's input and get a `<name>_sign_threshold` input (2, C) with
    data_threshold=True, found with the BatchNorm formula of the float model
    (`float_layouts`, see float_batchnorm_layouts). Returns the names of the folded
    BatchNorms; their parameters are left for the caller to drop once nothing uses them."""
    readers = {}
    for index, node in enumerate(nodes):
        if packed_conv(node) and node.get("inputs"):
            source = edge(nodes, node["inputs"][0])
            if source is not None and nodes[source]["op"] == "BatchNorm" and node["inputs"][0][1] == 0:
                readers.setdefault(source, []).append(node)
    folded = []
    for index, convs in readers.items():
        bn = nodes[index]
        if consumers.get(index) != len(convs):
            continue  # something else needs the normalized values
        thresholds = _thresholds(nodes, bn, params, float_layouts.get(bn["name"]))
        if thresholds is None:
            continue
        variable = describe_variable({"op": "null", "name": bn["name"] + "_sign_threshold", "inputs": []},
                                     thresholds)
        params["arg:" + variable["name"]] = thresholds
        for conv in convs:
            conv["inputs"][0] = list(bn["inputs"][0])
            conv["inputs"].append(variable)
            attrs_of(conv)["data_threshold"] = "True"
        folded.append(bn["name"])
    return folded


def _batchnorm_arrays(nodes, bn, params):
    """(attributes, [gamma, beta, moving mean, moving variance] as float32 NDArrays) of a
    BatchNorm node over axis 1 with one output and its parameters in `params`, or None."""
    attrs = {k: v for k, v in attrs_of(bn).items() if not k.startswith("__")}
    if str(attrs.get("axis", "1")).strip() != "1" or is_true(attrs, "output_mean_var") \
            or len(bn.get("inputs", [])) != 5:
        return None
    arrays = []
    for entry in bn["inputs"][1:]:
        source = edge(nodes, entry)
        if source is None or nodes[source]["op"] != "null":
            return None
        name = nodes[source]["name"]
        key = next((k for k in ("arg:" + name, "aux:" + name, name) if k in params), None)
        if key is None:
            return None
        arrays.append(mx.nd.array(params[key], dtype="float32"))
    if any(a.shape != arrays[0].shape or a.ndim != 1 for a in arrays):
        return None
    return attrs, arrays


def _plain_batchnorm_attrs(attrs, blocked):
    """PlainBatchNorm's attributes for a BatchNorm's (MXNet's defaults where it has none)."""
    return {"eps": str(attrs.get("eps", "0.001")), "fix_gamma": str(attrs.get("fix_gamma", "True")),
            "blocked": str(blocked)}


def _thresholds(nodes, bn, params, blocked):
    """Sign thresholds of one BatchNorm node (axis 1, one output) computed as the float model
    computed it (blocked: see PlainBatchNorm; None: unknown, so both ways, which must
    agree), or None."""
    found = _batchnorm_arrays(nodes, bn, params)
    if found is None:
        return None
    attrs, arrays = found
    results = []
    for layout in ([blocked] if blocked is not None else [False, True]):
        options = _plain_batchnorm_attrs(attrs, layout)
        try:
            results.append(sign_thresholds(lambda x: mx.nd.PlainBatchNorm(x, *arrays, **options), arrays[0].shape[0]))
        except mx.base.MXNetError:  # attributes it does not take: leave the BatchNorm alone
            return None
    if any(r is None or not np.array_equal(r, results[0]) for r in results):
        return None
    return results[0]


def _non_decreasing_activation(node):
    attrs = attrs_of(node)
    return node["op"] in NON_DECREASING_ACTIVATIONS or (
        node["op"] == "Activation" and str(attrs.get("act_type")) in NON_DECREASING_ACTIVATIONS)


def _max_pooling_over_space(node):
    """A max Pooling of an NC... tensor (it pools the axes after the channels)."""
    attrs = attrs_of(node)
    return (node["op"] == "Pooling" and str(attrs.get("pool_type", "max")) == "max" and len(node.get("inputs", [])) == 1
            and str(attrs.get("layout", "None")) in ("None", "NCW", "NCHW", "NCDHW"))


def pool_before_batchnorm(nodes, consumers, params):
    """Pooling(max) <- non-decreasing activations <- BatchNorm, each read only by the next:
    the pooling moves to the BatchNorm's input when the BatchNorm never decreases (fix_gamma,
    or no gamma below 0), and the BatchNorm and activations follow it in their order. The
    nodes keep their places (the chain's last place is the chain's output); returns how many
    chains moved."""
    moved = 0
    for index, pool in enumerate(nodes):
        if not _max_pooling_over_space(pool):
            continue
        chain, entry = [index], pool["inputs"][0]
        source = edge(nodes, entry)
        while source is not None and entry[1] == 0 and consumers.get(source) == 1 \
                and _non_decreasing_activation(nodes[source]) and len(nodes[source].get("inputs", [])) == 1:
            chain.append(source)
            entry = nodes[source]["inputs"][0]
            source = edge(nodes, entry)
        if source is None or entry[1] != 0 or consumers.get(source) != 1 or nodes[source]["op"] != "BatchNorm":
            continue
        found = _batchnorm_arrays(nodes, nodes[source], params)
        if found is None or (not is_true(found[0], "fix_gamma") and (found[1][0].asnumpy() < 0).any()):
            continue
        chain.append(source)
        places = sorted(chain)  # the BatchNorm's first, the pooling's last
        order = [pool, nodes[source]] + [nodes[i] for i in reversed(chain[1:-1])]
        reads = list(nodes[source]["inputs"][0])
        for place, node in zip(places, order):
            nodes[place] = dict(node, inputs=[reads] + [list(e) for e in node["inputs"][1:]])
            reads = [place, 0, 0]
        moved += 1
    return moved


def replace_batchnorms(nodes, float_layouts, absorbed, params, folded, live):
    """BatchNorms (axis 1, not among `folded`) whose float-graph layout is known and that read
    a plain NCHW tensor, or a 2-D convolution's or pooling's output (through a transpose to
    NHWC, see below), or whose output reaches only bmxnet operators among the `live` nodes,
    directly or through activations (MXNet hands those a converted copy anyway: ResNetE's
    stem and shortcuts) -> PlainBatchNorm (eps, fix_gamma; blocked as in the float graph).
    Their moving statistics become arguments (`params` keys aux: -> arg:). Returns how
    many."""
    readers = readers_of(nodes, live - set(absorbed))  # an absorbed add's operands went to its conv

    def for_bmxnet(index):
        return bool(readers.get(index)) and all(
            nodes[r]["op"] in BMXNET_OPS or (nodes[r]["op"] in LAYOUT_KEEPING_OPS and for_bmxnet(r))
            for r, _ in readers[index])
    replaced = 0
    for index, node in enumerate(nodes):
        layout = float_layouts.get(node["name"])
        if node["op"] != "BatchNorm" or node["name"] in folded or layout is None or index not in live:
            continue
        found = _batchnorm_arrays(nodes, node, params)
        plain = reads_plain_nchw(nodes, node["inputs"][0], absorbed)
        from_2d_layers = from_2d_onednn_layers(nodes, node["inputs"][0])
        if found is None or not (plain or from_2d_layers or for_bmxnet(index)):
            continue
        node["op"], node["attrs"] = "PlainBatchNorm", _plain_batchnorm_attrs(found[0], layout)
        if not plain and from_2d_layers:
            # oneDNN keeps such tensors NHWC inside: a transpose to NHWC is a plain copy, where
            # MXNet's conversion to NCHW for an extension input is a transposing reorder
            node["inputs"][0] = {"op": "transpose", "name": node["name"] + "_nhwc", "attrs": {"axes": "(0, 2, 3, 1)"},
                                 "inputs": [list(node["inputs"][0])]}
            node["attrs"]["channels_last"] = "True"
        for entry in node["inputs"][3:]:
            name = nodes[entry[0]]["name"]
            if "aux:" + name in params:
                params["arg:" + name] = params.pop("aux:" + name)
        replaced += 1
    return replaced


def _is_relu(node):
    return node["op"] == "relu" or (node["op"] == "Activation" and str(attrs_of(node).get("act_type")) == "relu")


def fuse_batchnorm_relus(nodes, heads, live):
    """A ReLU (Activation or relu) that reads a PlainBatchNorm, directly or through max
    PlainPoolings (which commute with it), each the only reader of the one before among the
    `live` nodes and none a graph output -> the PlainBatchNorm's act_type="relu" (one pass
    over the map where there were two: MeliusNet's stem and its transitions, whose pooling
    stays behind a BatchNorm with a negative gamma). The ReLU's readers and the graph outputs
    (`heads`, rewritten in place) read its input. Returns how many."""
    readers = readers_of(nodes, live)
    outputs = {entry[0] for entry in heads}

    def sole_input(index):  # the node index reads, if it alone reads it and it is no output
        source = edge(nodes, nodes[index]["inputs"][0]) if nodes[index].get("inputs") else None
        alone = source is not None and source not in outputs and readers.get(source) == [(index, 0)]
        return source if alone and nodes[index]["inputs"][0][1] == 0 else None
    fused = 0
    for index, node in enumerate(nodes):
        if index not in live or not _is_relu(node):
            continue
        source = sole_input(index)
        while source is not None and nodes[source]["op"] == "PlainPooling" and \
                str(attrs_of(nodes[source]).get("pool_type", "max")) == "max":
            source = sole_input(source)
        if source is None or nodes[source]["op"] != "PlainBatchNorm" or \
                str(attrs_of(nodes[source]).get("act_type", "none")) != "none":
            continue
        attrs_of(nodes[source])["act_type"] = "relu"
        for reader, position in readers.get(index, []):
            nodes[reader]["inputs"][position] = list(node["inputs"][0])
        for entry in heads:
            if entry[0] == index:
                entry[:2] = node["inputs"][0][:2]
        fused += 1
    return fused
