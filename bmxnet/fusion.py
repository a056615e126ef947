"""Inference rewrites around packed layers, used by model-converter. None changes a value:

- a packed layer takes the signs of its input itself, so a 1-bit QActivation that only
  feeds it is skipped (sign(sign(x)) = sign(x));
- a BatchNorm that only feeds packed convolutions is folded into per-channel sign
  thresholds (bmxnet.sign_thresholds, exact for every float input);
- a packed convolution whose only consumer is an elemwise_add absorbs it: the add's other
  operand becomes a `residual` input, added in the kernel's output loop with the same
  single float rounding (read in place with `residual_offset` when it is a slice of an
  input's last channels);
- Concat along channels becomes bmxnet's ChannelConcat: the same copy, without the
  overhead of MXNet's oneDNN Concat (MeliusNet's dense blocks concatenate once per layer);
- a slice of an input's leading channels that only a ChannelConcat reads is read in place
  (`take_channels`), not copied first;
- a ChannelConcat that only packed convolutions, PlainPoolings and other ChannelConcats
  read is not made: they read its inputs where they lie (`data_pieces`), so MeliusNet's
  dense blocks no longer copy their feature maps;
- a max pooling after a BatchNorm (and ReLUs) moves before it when no gamma is negative:
  the maximum of a non-decreasing per-channel function's values is that function of the
  maximum, so the BatchNorm then normalizes a quarter of the values (ResNetE's stem,
  MeliusNet's stem and transitions);
- a BatchNorm of a tensor the packed model hands on as plain NCHW becomes bmxnet's
  PlainBatchNorm with the formula MXNet used in the float-simulated model, which depends on
  the layout MXNet's BatchNorm was handed there (oneDNN computes fma(x - mean, scale, beta)
  on its blocked tensors and rounds the product on plain ones: packed ResNetE's head had
  differed by up to 1e-5 in its logits). `float_batchnorm_layouts` follows oneDNN's
  layouts through the float graph for that;
- Pooling (2-D, max or avg) of a plain NCHW tensor, such as bmxnet's layers hand on,
  becomes bmxnet's PlainPooling: the same values, where MXNet's oneDNN pooling first
  reorders the tensor to a blocked layout and back, or averages it in reference code;
- a tensor that an MXNet operator hands to several inputs of bmxnet operators goes
  through one copy (a ChannelConcat of one input) first: MXNet converts a oneDNN-blocked
  tensor to NCHW for each extension-operator input on its own, and a packed ResNetE's
  first block, whose data and residual are the stem's output, converted it twice.

The graph is parsed symbol JSON; new variables are placed as dicts in a node's input
list, where the converter's rebuild turns them into nodes.
"""
import mxnet as mx
import numpy as np

from .sign_thresholds import sign_thresholds

TRUE = ("true", "1")
ADD_OPS = ("elemwise_add", "_plus", "_Plus")
BMXNET_OPS = ("QConvolution", "QFullyConnected", "QActivation", "ChannelConcat", "PlainPooling", "PlainBatchNorm")
LAYOUT_KEEPING_OPS = ("BatchNorm", "Activation", "LeakyReLU", "relu", "sigmoid", "tanh", "clip", "Dropout")
POOLING_ATTRS = ("kernel", "stride", "pad", "pool_type", "global_pool", "pooling_convention", "count_include_pad")
# MXNet operators whose output is plain NCHW whatever their input's layout (no oneDNN kernel)
PLAIN_OUTPUT_OPS = ("Reshape", "reshape", "Flatten", "flatten", "FullyConnected", "slice_axis", "slice")
NON_DECREASING_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softrelu", "softsign")


def attrs_of(node):
    return node.setdefault("attrs", node.pop("attr", None) or node.pop("param", None) or {})


def is_true(attrs, key):
    return str(attrs.get(key, "false")).lower() in TRUE


MX_DTYPE_CODES = {np.dtype(np.float32): "0", np.dtype(np.int64): "6"}


def describe_variable(variable, value):
    """Sets a variable node's recorded shape and dtype (which symbol-level shape inference
    reads) to those of its new value; returns the node."""
    attrs = attrs_of(variable)
    attrs["__shape__"] = str(tuple(int(d) for d in value.shape))
    attrs["__dtype__"] = MX_DTYPE_CODES[value.dtype]
    return variable


def _edge(nodes, entry):
    """The node index an input entry refers to, or None for anything else."""
    if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], int) and 0 <= entry[0] < len(nodes):
        return entry[0]
    return None


def _packed_conv(node):
    return node["op"] == "QConvolution" and is_true(attrs_of(node), "binarized_weights_only")


def skip_sign_activation(nodes, layer, consumers):
    """Make `layer` read the input of a 1-bit QActivation that feeds only it."""
    source = _edge(nodes, layer["inputs"][0])
    if source is None:
        return
    activation = nodes[source]
    attrs = attrs_of(activation)
    if (activation["op"] == "QActivation" and consumers.get(source) == 1
            and str(attrs.get("act_bit", "1")) == "1" and not is_true(attrs, "backward_only")
            and activation.get("inputs")):
        layer["inputs"][0] = list(activation["inputs"][0])


def fold_batchnorm_signs(nodes, consumers, params, float_layouts):
    """BatchNorms whose every consumer is the data of a packed convolution: the convolutions
    read the BatchNorm's input and get a `<name>_sign_threshold` input (2, C) with
    data_threshold=True, found with the BatchNorm formula of the float model
    (`float_layouts`, see float_batchnorm_layouts). Returns the names of the folded
    BatchNorms; their parameters are left for the caller to drop once nothing uses them."""
    readers = {}
    for index, node in enumerate(nodes):
        if _packed_conv(node) and node.get("inputs"):
            source = _edge(nodes, node["inputs"][0])
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
        source = _edge(nodes, entry)
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


def _channel_slice(nodes, entry, consumers):
    """(the sliced tensor's entry, begin, end as text) when `entry` is a slice_axis(axis=1)
    that nothing else reads, else None."""
    source = _edge(nodes, entry)
    if source is None or nodes[source]["op"] != "slice_axis" or consumers.get(source) != 1 or entry[1] != 0 \
            or not nodes[source].get("inputs"):
        return None
    attrs = attrs_of(nodes[source])
    if str(attrs.get("axis")) != "1":
        return None
    return list(nodes[source]["inputs"][0]), str(attrs.get("begin", "0")), str(attrs.get("end", "None"))


def _trailing_channels(nodes, entry, consumers):
    """(the sliced tensor's entry, k) when `entry` is a slice_axis(axis=1, begin=k > 0,
    end=None) that nothing else reads, else None."""
    found = _channel_slice(nodes, entry, consumers)
    if found is None or found[2] != "None" or not found[1].isdigit() or found[1] == "0":
        return None
    return found[0], int(found[1])


def absorb_residual_adds(nodes, consumers):
    """Packed convolutions whose output only feeds an elemwise add take the add's other
    operand as their last input (residual=True); an operand that is the channels k.. of a
    tensor (slice_axis(axis=1, begin=k), read by nothing else: MeliusNet's improvement
    blocks) is read in place instead, as that tensor with residual_offset=k. Returns
    ({add index: conv index}, how many were read in place): the conv moves to the add's
    place, where both operands exist."""
    absorbed, in_place = {}, 0
    for index, node in enumerate(nodes):
        inputs = node.get("inputs", [])
        if node["op"] not in ADD_OPS or len(inputs) != 2:
            continue
        for mine, other in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
            source = _edge(nodes, mine)
            if source is None or mine[1] != 0 or consumers.get(source) != 1:
                continue
            conv = nodes[source]
            if _packed_conv(conv) and not is_true(attrs_of(conv), "residual"):
                sliced = _trailing_channels(nodes, other, consumers)
                conv["inputs"].append(sliced[0] if sliced else list(other))
                attrs_of(conv)["residual"] = "True"
                if sliced:
                    attrs_of(conv)["residual_offset"] = str(sliced[1])
                    in_place += 1
                absorbed[index] = source
                break
    return absorbed, in_place


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
        source = _edge(nodes, entry)
        while source is not None and entry[1] == 0 and consumers.get(source) == 1 \
                and _non_decreasing_activation(nodes[source]) and len(nodes[source].get("inputs", [])) == 1:
            chain.append(source)
            entry = nodes[source]["inputs"][0]
            source = _edge(nodes, entry)
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


def replace_channel_concats(nodes):
    """Concat(dim=1) -> ChannelConcat (attribute num_args); returns how many."""
    replaced = 0
    for node in nodes:
        if node["op"] == "Concat" and str(attrs_of(node).get("dim", "1")).strip() == "1" and node.get("inputs"):
            node["op"] = "ChannelConcat"
            node["attrs"] = {"num_args": str(len(node["inputs"]))}
            replaced += 1
    return replaced


def take_leading_slices(nodes, consumers, absorbed):
    """A slice_axis(axis=1, begin=0, end=k) of a plain NCHW tensor (a blocked one MXNet
    would convert whole for the concat) whose only consumer is a ChannelConcat input becomes
    that input's take_channels=k, read in place (MeliusNet's improvement blocks:
    concat(x[:, :k], ...)); returns how many."""
    taken = 0
    for node in nodes:
        if node["op"] != "ChannelConcat":
            continue
        take = [0] * len(node["inputs"])
        for position, entry in enumerate(node["inputs"]):
            found = _channel_slice(nodes, entry, consumers)
            if found is None or found[1] != "0" or not found[2].isdigit() or found[2] == "0" or \
                    not _reads_plain_nchw(nodes, found[0], absorbed):
                continue
            node["inputs"][position] = found[0]
            take[position] = int(found[2])
            taken += 1
        if any(take):
            attrs_of(node)["take_channels"] = "(%s)" % ", ".join(map(str, take))
    return taken


def _plain_pooling_attrs(attrs):
    """PlainPooling's attributes for a Pooling node's, or None when it does something else
    (sum or lp pooling, 1-D/3-D, another layout, a pad as large as the kernel)."""
    def numbers(key, default):
        values = [int(v) for v in _numbers(attrs.get(key, default))]
        return values * 2 if len(values) == 1 else values
    try:
        kernel, pad = numbers("kernel", "(1, 1)"), numbers("pad", "(0, 0)")
    except ValueError:
        return None
    if str(attrs.get("pool_type", "max")) not in ("max", "avg") or \
            str(attrs.get("pooling_convention", "valid")) not in ("valid", "full") or \
            str(attrs.get("layout", "NCHW")) not in ("NCHW", "None") or len(kernel) != 2 or len(pad) not in (0, 2):
        return None
    if not is_true(attrs, "global_pool") and any(p >= k for p, k in zip(pad, kernel)):
        return None
    return {key: value for key, value in attrs.items() if key in POOLING_ATTRS}


def _reads_plain_nchw(nodes, entry, absorbed):
    """Whether the tensor `entry` is in plain NCHW when MXNet runs the graph: a variable's,
    a bmxnet operator's (also an add that a packed convolution absorbed: `absorbed` maps
    those to the conv) or a reshape's output, or the output of an operator that keeps its
    input's layout (BatchNorm, activations) applied to one. Outputs of oneDNN's convolution
    and pooling are blocked, and MXNet converts a blocked input of an extension operator
    into a NCHW array on every call, which costs more than PlainPooling saves (ResNetE's
    stem: docs/performance.md)."""
    source = _layout_source(nodes, entry)
    return source is not None and (source in absorbed or nodes[source]["op"] in BMXNET_OPS + PLAIN_OUTPUT_OPS + ("null",))


def _layout_source(nodes, entry):
    """The node that set the layout of the tensor `entry`: the first one back from it that is
    not a LAYOUT_KEEPING_OPS operator (None for anything but a node)."""
    source = _edge(nodes, entry)
    while source is not None and nodes[source]["op"] in LAYOUT_KEEPING_OPS and nodes[source].get("inputs"):
        source = _edge(nodes, nodes[source]["inputs"][0])
    return source


def float_batchnorm_layouts(nodes):
    """{BatchNorm name: whether MXNet hands it a oneDNN-blocked tensor (True), a plain one
    (False) or either (None)} in the float graph `nodes` (before any rewrite: composed binary
    layers are MXNet Convolutions there). Measured on MXNet 1.9 with oneDNN: an ungrouped
    convolution hands on a blocked tensor when its filters are a multiple of 8, else a plain
    one; variables, bmxnet operators and PLAIN_OUTPUT_OPS plain ones; BatchNorm, activations
    and Pooling keep their input's; an add of two blocked (plain) operands is blocked (plain);
    a Concat is blocked when all its inputs are, plain when one is (whatever the others are:
    MeliusNet's concat(x[:, :k], x[:, k:] + conv(x)), whose add is either). The rest is
    unknown."""
    blocked = []
    for node in nodes:
        op = node["op"]
        inputs = [blocked[e[0]] if _edge(nodes, e) is not None and e[0] < len(blocked) else None
                  for e in node.get("inputs", [])]
        if op == "null" or op in BMXNET_OPS + PLAIN_OUTPUT_OPS:
            value = False
        elif op == "Convolution" and str(attrs_of(node).get("num_group", "1")) == "1":
            value = int(attrs_of(node).get("num_filter", 0)) % 8 == 0
        elif op in LAYOUT_KEEPING_OPS + ("Pooling",):
            value = inputs[0] if inputs else None
        elif op in ADD_OPS and inputs and len(set(inputs)) == 1:
            value = inputs[0]  # a plain and a blocked operand: either, by MXNet's internals
        elif op == "Concat" and False in inputs:
            value = False  # whatever the others are
        elif op == "Concat" and inputs and None not in inputs:
            value = True
        else:
            value = None
        blocked.append(value)
    return {node["name"]: blocked[node["inputs"][0][0]] for node in nodes
            if node["op"] == "BatchNorm" and node.get("inputs") and _edge(nodes, node["inputs"][0]) is not None}


def _from_2d_onednn_layers(nodes, entry):
    """Whether the tensor `entry` comes from a 2-D Convolution or Pooling through operators
    that keep its layout (so it is 4-D)."""
    source = _layout_source(nodes, entry)
    return source is not None and nodes[source]["op"] in ("Convolution", "Pooling") and \
        len(_numbers(attrs_of(nodes[source]).get("kernel", "()"))) == 2


def _numbers(text):
    return [v for v in str(text).strip("()[] ").replace(" ", "").split(",") if v]


def _readers(nodes, live):
    """{node index: [(reader index, input position), ...]} over the reader nodes in `live`."""
    readers = {}
    for index, node in enumerate(nodes):
        if index in live:
            for position, entry in enumerate(node.get("inputs", [])):
                if _edge(nodes, entry) is not None:
                    readers.setdefault(entry[0], []).append((index, position))
    return readers


def replace_batchnorms(nodes, float_layouts, absorbed, params, folded, live):
    """BatchNorms (axis 1, not among `folded`) whose float-graph layout is known and that read
    a plain NCHW tensor, or a 2-D convolution's or pooling's output (through a transpose to
    NHWC, see below), or whose output reaches only bmxnet operators among the `live` nodes,
    directly or through activations (MXNet hands those a converted copy anyway: ResNetE's
    stem and shortcuts) -> PlainBatchNorm (eps, fix_gamma; blocked as in the float graph).
    Their moving statistics become arguments (`params` keys aux: -> arg:). Returns how
    many."""
    readers = _readers(nodes, live - set(absorbed))  # an absorbed add's operands went to its conv

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
        plain = _reads_plain_nchw(nodes, node["inputs"][0], absorbed)
        from_2d_layers = _from_2d_onednn_layers(nodes, node["inputs"][0])
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
    readers = _readers(nodes, live)
    outputs = {entry[0] for entry in heads}

    def sole_input(index):  # the node index reads, if it alone reads it and it is no output
        source = _edge(nodes, nodes[index]["inputs"][0]) if nodes[index].get("inputs") else None
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


def replace_poolings(nodes, absorbed):
    """Pooling of a plain NCHW tensor -> PlainPooling where it has the same meaning;
    returns how many."""
    replaced = 0
    for node in nodes:
        if node["op"] == "Pooling" and node.get("inputs") and _reads_plain_nchw(nodes, node["inputs"][0], absorbed):
            attrs = _plain_pooling_attrs(attrs_of(node))
            if attrs is not None:
                node["op"], node["attrs"] = "PlainPooling", attrs
                replaced += 1
    return replaced


MAX_DATA_PIECES = 16  # QConvolution's limit (kernels/channel_pieces.h)
MAX_CONCAT_PIECES = 32  # MeliusNet-59's concats take up to 17; a bound keeps chains of concats from growing
# the graph quadratically
SAME_CHANNEL_OPS = LAYOUT_KEEPING_OPS + ADD_OPS + ("Pooling", "PlainPooling", "QActivation", "BlockGrad", "identity")


def _identity_reshape(node):
    """A Reshape to its own shape: every dimension 0 ("keep")."""
    return node["op"] in ("Reshape", "reshape") and set(_numbers(attrs_of(node).get("shape", "()"))) == {"0"}


def _channels(nodes, entry, known=None):
    """The channel count of the tensor `entry` where its producers tell it (convolutions,
    concats, and operators that keep their input's channels), else None. `known` keeps the
    counts found, by node, for later calls while no rewrite changes a count."""
    def keeps_channels(node):
        attrs = attrs_of(node)
        return node.get("inputs") and (
            node["op"] in SAME_CHANNEL_OPS or (node["op"] == "PlainBatchNorm" and not is_true(attrs, "channels_last"))
            or _identity_reshape(node))
    known = {} if known is None else known
    source, path = _edge(nodes, entry), []
    while source is not None and source not in known and keeps_channels(nodes[source]) \
            and nodes[source]["op"] not in ADD_OPS:
        path.append(source)
        source = _edge(nodes, nodes[source]["inputs"][0])
    if source is None:
        count = None
    elif source in known:
        count = known[source]
    else:
        count = known[source] = _channels_made_by(nodes, source, known)
    for index in path:  # every node of the chain has the same count
        known[index] = count
    return count


def _channels_made_by(nodes, source, known):
    """_channels of the output of node `source`, which does not keep its input's count
    (or is an add, whose operands have the count)."""
    node, attrs = nodes[source], attrs_of(nodes[source])
    if node["op"] in ADD_OPS and node.get("inputs"):  # either operand tells
        counts = [_channels(nodes, e, known) for e in node["inputs"]]
        return next((count for count in counts if count is not None), None)
    if node["op"] in ("QConvolution", "Convolution"):
        return int(attrs["num_filter"]) if str(attrs.get("num_filter", "")).isdigit() else None
    if node["op"] == "ChannelConcat":
        counts = [take or _channels(nodes, e, known) for e, take in zip(node["inputs"], _takes(node))]
        return None if None in counts else sum(counts)
    return None


def _takes(concat):
    """A ChannelConcat's take_channels, one per input (0: all its channels)."""
    takes = [int(v) for v in _numbers(attrs_of(concat).get("take_channels", "()"))]
    return takes if len(takes) == len(concat["inputs"]) else [0] * len(concat["inputs"])


def _data_positions(conv):
    """Input positions of a QConvolution's (or PlainPooling's) data pieces: 0 and the last
    data_pieces - 1."""
    count, inputs = int(attrs_of(conv).get("data_pieces", 1)), len(conv["inputs"])
    return [0] + list(range(inputs - count + 1, inputs))


def _set_data(conv, pieces):
    """Gives a QConvolution (or PlainPooling) the data `pieces` (entries), in their order."""
    others = conv["inputs"][1:len(conv["inputs"]) - len(_data_positions(conv)) + 1]
    conv["inputs"] = [pieces[0]] + others + pieces[1:]
    if len(pieces) > 1:
        attrs_of(conv)["data_pieces"] = str(len(pieces))
    else:
        attrs_of(conv).pop("data_pieces", None)


def _leading_pieces(pieces, channels, count):
    """The (entry, take) pieces that make up the first `count` channels of `pieces` (whose
    channel counts are `channels`; take 0: all of a piece), or None when that is not known."""
    taken, total = [], 0
    for entry, size in zip(pieces, channels):
        if total >= count:
            break
        if size is None:
            return None
        taken.append((entry, 0 if total + size <= count else count - total))
        total += size
    return taken


def _piece_reads(nodes, index, pieces, readers, known):
    """How each of its `readers` would read the pieces of ChannelConcat `index`
    instead: [(reader, position, kind, detail)] with kind "concat" (detail: the (entry,
    take) pieces it takes), "data" or "residual" (detail: the piece holding the channels);
    None when some reader cannot. `known`: see _channels."""
    channels = [_channels(nodes, e, known) for e in pieces]
    starts = [None if None in channels[:i] else sum(channels[:i]) for i in range(len(pieces) + 1)]
    plans = []
    for reader, position in sorted(readers.get(index, ())):
        node = nodes[reader]
        if node["op"] == "ChannelConcat":
            if len(node["inputs"]) + len(pieces) - 1 > MAX_CONCAT_PIECES:
                return None
            take = _takes(node)[position]
            plans.append((reader, position, "concat",
                          [(e, 0) for e in pieces] if take == 0 else _leading_pieces(pieces, channels, take)))
        elif (_packed_conv(node) or node["op"] == "PlainPooling") and position in _data_positions(node):
            if len(_data_positions(node)) + len(pieces) - 1 > MAX_DATA_PIECES:
                return None
            plans.append((reader, position, "data", None))
        elif _packed_conv(node) and is_true(attrs_of(node), "residual") and \
                position == len(node["inputs"]) - len(_data_positions(node)):
            offset, filters = int(attrs_of(node).get("residual_offset", 0)), int(attrs_of(node)["num_filter"])
            holding = [i for i in range(len(pieces)) if starts[i + 1] is not None and
                       starts[i] <= offset and offset + filters <= starts[i + 1]]
            plans.append((reader, position, "residual", (holding[0], offset - starts[holding[0]]) if holding else None))
        else:
            return None
    if not plans or any(kind != "data" and detail is None for _, _, kind, detail in plans):
        return None
    return plans


def _live_without_adds(nodes, heads, absorbed):
    """Indices of the nodes the `heads` depend on once each add a convolution `absorbed`
    is that convolution (the add's other operand, a slice read in place, is then gone)."""
    live, stack = set(), list(heads)
    while stack:
        index = stack.pop()
        index = absorbed.get(index, index)
        if index in live:
            continue
        live.add(index)
        for entry in nodes[index].get("inputs", []):
            if isinstance(entry, dict):  # a new node, reading old ones
                stack.extend(e[0] for e in entry.get("inputs", []))
            else:
                stack.append(entry[0])
    return live


def _read_by_new_nodes(nodes, live):
    """The nodes that a new node (a dict in a `live` node's inputs) reads."""
    return {_edge(nodes, e) for i in live for entry in nodes[i].get("inputs", []) if isinstance(entry, dict)
            for e in entry.get("inputs", [])}


def _reread(readers, nodes, reader, old_inputs):
    """Updates `readers` ({node index: {(reader, input position)}}) for node `reader`, whose
    inputs were `old_inputs`."""
    for inputs, change in ((old_inputs, -1), (nodes[reader]["inputs"], 1)):
        for position, entry in enumerate(inputs):
            source = _edge(nodes, entry)
            if source is None:
                continue
            if change < 0:
                readers[source].discard((reader, position))
            else:
                readers.setdefault(source, set()).add((reader, position))


def read_concat_pieces(nodes, heads, absorbed):
    """A ChannelConcat of two or more whole inputs that is no output (`heads`), and whose
    readers (the nodes the heads depend on, an add that a convolution `absorbed` being that
    convolution) are all packed QConvolutions reading it as data or residual, PlainPoolings
    or ChannelConcats, is not computed: each reader takes its pieces instead. A convolution
    or pooling reads them as data_pieces (a convolution's residual from the one piece
    holding the residual's channels), a concat as inputs of its own (the leading channels it
    took, as the pieces up to there). Visited in graph order, later concats of a chain take
    the earlier ones' pieces: MeliusNet's dense blocks then hand theirs on to the
    transition's pooling, and no copy of a stage's feature map is made. Returns how many."""
    live, removed, known = _live_without_adds(nodes, heads, absorbed), 0, {}
    readers = {source: set(reads) for source, reads in _readers(nodes, live).items()}  # kept up to date below
    read_by_new = _read_by_new_nodes(nodes, live)
    for index, concat in enumerate(nodes):
        if concat["op"] != "ChannelConcat" or len(concat["inputs"]) < 2 or index not in live or index in heads \
                or any(_takes(concat)):
            continue
        pieces = [list(e) for e in concat["inputs"]]
        plans = _piece_reads(nodes, index, pieces, readers, known)
        if plans is None or index in read_by_new:
            continue
        old_inputs = {reader: list(nodes[reader]["inputs"]) for reader, _, _, _ in plans}
        for reader, position, kind, detail in sorted(plans, key=lambda plan: -plan[1]):  # later inputs first
            node = nodes[reader]
            if kind == "concat":
                takes = _takes(node)
                node["inputs"][position:position + 1] = [list(e) for e, _ in detail]
                takes[position:position + 1] = [take for _, take in detail]
                attrs = attrs_of(node)
                attrs["num_args"] = str(len(node["inputs"]))
                attrs.pop("take_channels", None)
                if any(takes):
                    attrs["take_channels"] = "(%s)" % ", ".join(map(str, takes))
            elif kind == "data":
                data = [node["inputs"][i] for i in _data_positions(node)]
                at = _data_positions(node).index(position)
                _set_data(node, data[:at] + [list(e) for e in pieces] + data[at + 1:])
            else:
                node["inputs"][position] = list(pieces[detail[0]])
                attrs_of(node).pop("residual_offset", None)
                if detail[1]:
                    attrs_of(node)["residual_offset"] = str(detail[1])
        for reader, inputs in old_inputs.items():
            _reread(readers, nodes, reader, inputs)
        removed += 1
    return removed


def skip_identity_reshapes(nodes, live):
    """A Reshape to its own shape (every dimension 0: "keep") whose readers among the `live`
    nodes are all bmxnet operators is skipped: it only turns a oneDNN-blocked tensor into a
    plain one (with a copy after the conversion: MeliusNet's grouped stem convs, see
    PlainLayoutConv2D), which MXNet does for an extension operator's input anyway. Returns
    how many."""
    readers = _readers(nodes, live)
    skipped = 0
    for index, node in enumerate(nodes):
        if not _identity_reshape(node) or index not in live or not node.get("inputs") or not readers.get(index) or \
                not all(nodes[r]["op"] in BMXNET_OPS for r, _ in readers[index]):
            continue
        for reader, position in readers[index]:
            nodes[reader]["inputs"][position] = list(node["inputs"][0])
        skipped += 1
    return skipped


def copy_shared_inputs(nodes, absorbed, live):
    """Every output of an MXNet operator that is not plain NCHW (`_reads_plain_nchw`;
    `absorbed` maps adds to the packed convolutions that took their place) read by two or
    more inputs of bmxnet operators among the `live` nodes (a skipped sign activation reads
    nothing any more) is read through one new ChannelConcat node (num_args 1), a dict in
    their input lists that the converter's rebuild turns into a node. Returns how many."""
    readers = {}
    for index, node in enumerate(nodes):
        if node["op"] not in BMXNET_OPS or index not in live:
            continue
        for position, entry in enumerate(node.get("inputs", [])):
            source = _edge(nodes, entry)
            if source is None or _reads_plain_nchw(nodes, entry, absorbed):  # MXNet converts only blocked ones
                continue
            readers.setdefault((source, entry[1]), []).append((index, position))
    copies = 0
    for (source, output), inputs in readers.items():
        if len(inputs) < 2:
            continue
        copy = {"op": "ChannelConcat", "name": "%s_output%d_nchw" % (nodes[source]["name"], output),
                "attrs": {"num_args": "1"}, "inputs": [[source, output, 0]]}
        for index, position in inputs:
            nodes[index]["inputs"][position] = copy
        copies += 1
    return copies
