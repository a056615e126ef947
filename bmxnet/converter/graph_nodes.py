"""Reading the converter's graphs (parsed MXNet symbol JSON): node attributes, edges, readers."""
import numpy as np


TRUE = ("true", "1")


ADD_OPS = ("elemwise_add", "_plus", "_Plus")


BMXNET_OPS = ("QConvolution", "QFullyConnected", "QActivation", "ChannelConcat", "PlainPooling", "PlainBatchNorm")


def attrs_of(node):
    return node.setdefault("attrs", node.pop("attr", None) or node.pop("param", None) or {})


def is_true(attrs, key):
    return str(attrs.get(key, "false")).lower() in TRUE


def edge(nodes, entry):
    """The node index an input entry refers to, or None for anything else."""
    if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], int) and 0 <= entry[0] < len(nodes):
        return entry[0]
    return None


def packed_conv(node):
    return node["op"] == "QConvolution" and is_true(attrs_of(node), "binarized_weights_only")


def attr_numbers(text):
    return [v for v in str(text).strip("()[] ").replace(" ", "").split(",") if v]


def readers_of(nodes, live):
    """{node index: [(reader index, input position), ...]} over the reader nodes in `live`."""
    readers = {}
    for index, node in enumerate(nodes):
        if index in live:
            for position, entry in enumerate(node.get("inputs", [])):
                if edge(nodes, entry) is not None:
                    readers.setdefault(entry[0], []).append((index, position))
    return readers


def identity_reshape(node):
    """A Reshape to its own shape: every dimension 0 ("keep")."""
    return node["op"] in ("Reshape", "reshape") and set(attr_numbers(attrs_of(node).get("shape", "()"))) == {"0"}


MX_DTYPE_CODES = {np.dtype(np.float32): "0", np.dtype(np.int64): "6"}


def describe_variable(variable, value):
    """Sets a variable node's recorded shape and dtype (which symbol-level shape inference
    reads) to those of its new value; returns the node."""
    attrs = attrs_of(variable)
    attrs["__shape__"] = str(tuple(int(d) for d in value.shape))
    attrs["__dtype__"] = MX_DTYPE_CODES[value.dtype]
    return variable
