"""Inference rewrites around packed layers, used by model-converter (here, in
batchnorm_passes and in concat_passes; onednn_layouts models MXNet's layouts, graph_nodes
reads the graph; pipeline.PASSES is their order).
None changes a value:

- a packed layer takes the signs of its input itself, so a 1-bit QActivation that only
  feeds it is skipped (sign(sign(x)) = sign(x));
- a BatchNorm that only feeds packed convolutions is folded into per-channel sign
  thresholds (sign_thresholds.py, exact for every float input);
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
  reorders the tensor to a blocked layout and back, or averages it in reference code; so
  does a Pooling of a oneDNN convolution's output that only a BatchNorm read, on that
  output transposed to NHWC, a plain copy (ResNetE's stem);
- a tensor that an MXNet operator hands to several inputs of bmxnet operators goes
  through one copy (a ChannelConcat of one input) first: MXNet converts a oneDNN-blocked
  tensor to NCHW for each extension-operator input on its own, and a packed ResNetE's
  first block, whose data and residual are the stem's output, converted it twice.

The graph is parsed symbol JSON; new variables are placed as dicts in a node's input
list, where the converter's rebuild turns them into nodes.
"""
from .graph_nodes import (ADD_OPS, BMXNET_OPS, attr_numbers, attrs_of, edge, identity_reshape, is_true, packed_conv,
                          readers_of)
from .onednn_layouts import reads_plain_nchw

POOLING_ATTRS = ("kernel", "stride", "pad", "pool_type", "global_pool", "pooling_convention", "count_include_pad")


def skip_sign_activation(nodes, layer, consumers):
    """Make `layer` read the input of a 1-bit QActivation that feeds only it."""
    source = edge(nodes, layer["inputs"][0])
    if source is None:
        return
    activation = nodes[source]
    attrs = attrs_of(activation)
    if (activation["op"] == "QActivation" and consumers.get(source) == 1
            and str(attrs.get("act_bit", "1")) == "1" and not is_true(attrs, "backward_only")
            and activation.get("inputs")):
        layer["inputs"][0] = list(activation["inputs"][0])


def _channel_slice(nodes, entry, consumers):
    """(the sliced tensor's entry, begin, end as text) when `entry` is a slice_axis(axis=1)
    that nothing else reads, else None."""
    source = edge(nodes, entry)
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
            source = edge(nodes, mine)
            if source is None or mine[1] != 0 or consumers.get(source) != 1:
                continue
            conv = nodes[source]
            if packed_conv(conv) and not is_true(attrs_of(conv), "residual"):
                sliced = _trailing_channels(nodes, other, consumers)
                conv["inputs"].append(sliced[0] if sliced else list(other))
                attrs_of(conv)["residual"] = "True"
                if sliced:
                    attrs_of(conv)["residual_offset"] = str(sliced[1])
                    in_place += 1
                absorbed[index] = source
                break
    return absorbed, in_place


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
                    not reads_plain_nchw(nodes, found[0], absorbed):
                continue
            node["inputs"][position] = found[0]
            take[position] = int(found[2])
            taken += 1
        if any(take):
            attrs_of(node)["take_channels"] = "(%s)" % ", ".join(map(str, take))
    return taken


def _plain_pooling_attrs(attrs):
    """PlainPooling's attributes for a Pooling node's, or None when it does something else
    (sum or lp pooling, 1-D/3-D, another layout, a pad as large as the kernel, global
    pooling without a kernel)."""
    def numbers(key, default):
        values = [int(v) for v in attr_numbers(attrs.get(key, default))]
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
    if is_true(attrs, "global_pool") and "kernel" not in attrs:
        return None  # MXNet runs its own loop then, which sums in another order
    return {key: value for key, value in attrs.items() if key in POOLING_ATTRS}


def replace_poolings(nodes, absorbed):
    """Pooling of a plain NCHW tensor -> PlainPooling where it has the same meaning;
    returns how many."""
    replaced = 0
    for node in nodes:
        if node["op"] == "Pooling" and node.get("inputs") and reads_plain_nchw(nodes, node["inputs"][0], absorbed):
            attrs = _plain_pooling_attrs(attrs_of(node))
            if attrs is not None:
                node["op"], node["attrs"] = "PlainPooling", attrs
                replaced += 1
    return replaced


def pool_channels_last(nodes, heads, live):
    """A Pooling that only a PlainBatchNorm's transpose to NHWC reads (replace_batchnorms:
    a BatchNorm of a oneDNN convolution's output, ResNetE's stem) -> the transpose moves in
    front of it and the Pooling becomes PlainPooling with layout="NHWC", which the
    PlainBatchNorm reads as it is: MXNet's pooling of that output reorders it to a blocked
    layout and back, where the transpose is a plain copy (oneDNN's convolutions keep their
    output NHWC inside) and max pooling the same on any layout. Returns how many."""
    readers = readers_of(nodes, live)
    outputs = {entry[0] for entry in heads}
    moved = 0
    for node in (nodes[i] for i in sorted(live)):
        transpose = node["inputs"][0] if node["op"] == "PlainBatchNorm" and node.get("inputs") else None
        if not (isinstance(transpose, dict) and transpose["op"] == "transpose" and is_true(attrs_of(node), "channels_last")):
            continue
        source = edge(nodes, transpose["inputs"][0])
        pool = nodes[source] if source is not None else None
        if pool is None or pool["op"] != "Pooling" or source in outputs or readers.get(source) or \
                transpose["inputs"][0][1] != 0:
            continue
        attrs = _plain_pooling_attrs(attrs_of(pool))
        if attrs is None:
            continue
        pool["op"], pool["attrs"] = "PlainPooling", dict(attrs, layout="NHWC")
        pool["inputs"][0] = dict(transpose, name=pool["name"] + "_nhwc", inputs=[list(pool["inputs"][0])])
        node["inputs"][0] = [source, 0, 0]
        moved += 1
    return moved


def skip_identity_reshapes(nodes, live):
    """A Reshape to its own shape (every dimension 0: "keep") whose readers among the `live`
    nodes are all bmxnet operators is skipped: it only turns a oneDNN-blocked tensor into a
    plain one (with a copy after the conversion: MeliusNet's grouped stem convs, see
    PlainLayoutConv2D), which MXNet does for an extension operator's input anyway. Returns
    how many."""
    readers = readers_of(nodes, live)
    skipped = 0
    for index, node in enumerate(nodes):
        if not identity_reshape(node) or index not in live or not node.get("inputs") or not readers.get(index) or \
                not all(nodes[r]["op"] in BMXNET_OPS for r, _ in readers[index]):
            continue
        for reader, position in readers[index]:
            nodes[reader]["inputs"][position] = list(node["inputs"][0])
        skipped += 1
    return skipped


def copy_shared_inputs(nodes, absorbed, live):
    """Every output of an MXNet operator that is not plain NCHW (`reads_plain_nchw`;
    `absorbed` maps adds to the packed convolutions that took their place) read by two or
    more inputs of bmxnet operators among the `live` nodes (a skipped sign activation reads
    nothing any more) is read through one new ChannelConcat node (num_args 1), a dict in
    their input lists that the converter's rebuild turns into a node. Returns how many."""
    readers = {}
    for index, node in enumerate(nodes):
        if node["op"] not in BMXNET_OPS or index not in live:
            continue
        for position, entry in enumerate(node.get("inputs", [])):
            source = edge(nodes, entry)
            if source is None or reads_plain_nchw(nodes, entry, absorbed):  # MXNet converts only blocked ones
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
