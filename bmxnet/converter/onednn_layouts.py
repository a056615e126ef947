"""Which tensors MXNet 1.9.1 with oneDNN (its x86_64 wheel) hands on in a blocked layout and
which in plain NCHW. The converter needs it twice: a PlainBatchNorm must compute the BatchNorm
formula the float model's BatchNorm used, which depends on that layout (on aarch64 MXNet fuses
on every layout, see kernels/batchnorm.h), and a Pooling is replaced only where its input is
plain NCHW anyway. Measured on that version; another one may differ."""
from .graph_nodes import ADD_OPS, BMXNET_OPS, attrs_of, attr_numbers, edge


LAYOUT_KEEPING_OPS = ("BatchNorm", "Activation", "LeakyReLU", "relu", "sigmoid", "tanh", "clip", "Dropout")


PLAIN_OUTPUT_OPS = ("Reshape", "reshape", "Flatten", "flatten", "FullyConnected", "slice_axis", "slice")


def reads_plain_nchw(nodes, entry, absorbed):
    """Whether the tensor `entry` is in plain NCHW when MXNet runs the graph: a variable's,
    a bmxnet operator's (also an add that a packed convolution absorbed: `absorbed` maps
    those to the conv) or a reshape's output, or the output of an operator that keeps its
    input's layout (BatchNorm, activations) applied to one. Outputs of oneDNN's convolution
    and pooling are blocked, and MXNet converts a blocked input of an extension operator
    into a NCHW array on every call, which costs more than PlainPooling saves (ResNetE's
    stem: docs/performance.md)."""
    source = layout_source(nodes, entry)
    return source is not None and (source in absorbed or nodes[source]["op"] in BMXNET_OPS + PLAIN_OUTPUT_OPS + ("null",))


def layout_source(nodes, entry):
    """The node that set the layout of the tensor `entry`: the first one back from it that is
    not a LAYOUT_KEEPING_OPS operator (None for anything but a node)."""
    source = edge(nodes, entry)
    while source is not None and nodes[source]["op"] in LAYOUT_KEEPING_OPS and nodes[source].get("inputs"):
        source = edge(nodes, nodes[source]["inputs"][0])
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
        inputs = [blocked[e[0]] if edge(nodes, e) is not None and e[0] < len(blocked) else None
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
            if node["op"] == "BatchNorm" and node.get("inputs") and edge(nodes, node["inputs"][0]) is not None}


def from_2d_onednn_layers(nodes, entry):
    """Whether the tensor `entry` comes from a 2-D Convolution or Pooling through operators
    that keep its layout (so it is 4-D)."""
    source = layout_source(nodes, entry)
    return source is not None and nodes[source]["op"] in ("Convolution", "Pooling") and \
        len(attr_numbers(attrs_of(nodes[source]).get("kernel", "()"))) == 2
