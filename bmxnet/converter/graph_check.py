"""Checks of a parsed symbol JSON graph before the converter reads it.

check_structure: the JSON has the shape MXNet writes (types, node references in range and in
topological order, unique names, bounded sizes), so that no later step meets a surprise.
check_nodes: every operator is known (op_specs), with known attributes of the right types
and ranges, the number of inputs its attributes call for, and parameters that are variables.
Both raise GraphError with a one-line message.
"""
import re

from .conversion_error import shown
from ..nn.composed import MARK
from .op_specs import BINARY_OPS, CONVERTED_OPS, HIDDEN_ATTRS, KNOWN_OPS

MAX_NODES = 100000  # the largest zoo model has about 3,000
MAX_NAME = 512
MAX_ATTR_TEXT = 65536
MAX_OUTPUTS = 64
GRAPH_KEYS = ("nodes", "arg_nodes", "node_row_ptr", "heads", "attrs")
NODE_KEYS = ("op", "name", "inputs", "attrs", "attr", "param")
ATTR_KEYS = ("attrs", "attr", "param")  # MXNet's JSON has used all three names
# printable: MXNet's JSON reader takes no \u escapes, which json writes for control characters
# (and lone surrogates cannot be written at all)
_PRINTABLE_NAME = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,%d}\Z" % MAX_NAME)
_PRINTABLE_TEXT = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]*\Z")


class GraphError(ValueError):
    """A symbol graph the converter refuses; the message is one line."""


def _is_int(value):
    return type(value) is int  # not bool


def _check_entry(entry, before, count, what):
    """An input or head entry: [node, output(, version)] with node < `before` (of `count`)."""
    if not isinstance(entry, list) or len(entry) not in (2, 3) or not all(_is_int(v) for v in entry):
        raise GraphError("%s is %s, expected [node, output, version]" % (what, shown(entry)))
    if not 0 <= entry[0] < before:
        raise GraphError("%s refers to node %d, %s" % (what, entry[0], "which does not exist"
                                                        if not 0 <= entry[0] < count else "which comes later"))
    if not 0 <= entry[1] < MAX_OUTPUTS or (len(entry) == 3 and not 0 <= entry[2] < 1024):  # version: 1 for aux
        raise GraphError("%s is %s: bad output index or version" % (what, shown(entry)))


def _check_attrs(node, index):
    present = [key for key in ATTR_KEYS if key in node]
    if len(present) > 1:
        raise GraphError("node %d has both %s and %s" % (index, present[0], present[1]))
    attrs = node.get(present[0]) if present else None
    if attrs is None:
        return
    if not isinstance(attrs, dict):
        raise GraphError("node %s: attributes are %s, expected an object of strings"
                         % (node["name"], type(attrs).__name__))
    for key, value in attrs.items():
        if not isinstance(value, str) or not _PRINTABLE_NAME.match(key):
            raise GraphError("node %s: attribute %s is %s, expected a string"
                             % (node["name"], shown(key), shown(value)))
        if len(value) > MAX_ATTR_TEXT:
            raise GraphError("node %s: attribute %s is longer than %d characters" % (node["name"], key, MAX_ATTR_TEXT))
        if not _PRINTABLE_TEXT.match(value):
            raise GraphError("node %s: attribute %s=%s holds control characters" % (node["name"], key, shown(value)))


def check_structure(graph):
    """Raises GraphError unless `graph` is a symbol graph as MXNet writes it."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list) or \
            not isinstance(graph.get("heads"), list):
        raise GraphError("not an MXNet symbol file (needs 'nodes' with op, name, inputs and 'heads')")
    unknown = sorted(str(key) for key in graph if key not in GRAPH_KEYS)
    if unknown:
        raise GraphError("unknown top-level key %s" % shown(unknown[0]))
    nodes = graph["nodes"]
    if not 0 < len(nodes) <= MAX_NODES:
        raise GraphError("has %d nodes (expected 1 to %d)" % (len(nodes), MAX_NODES))
    names = set()
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("op"), str) or not isinstance(node.get("name"), str) \
                or not isinstance(node.get("inputs"), list):
            raise GraphError("node %d is not an object with op, name and inputs" % index)
        extra = [key for key in node if key not in NODE_KEYS]
        if extra:
            raise GraphError("node %d has the unknown key %s" % (index, shown(extra[0])))
        if not _PRINTABLE_NAME.match(node["name"]) or not _PRINTABLE_NAME.match(node["op"]):
            raise GraphError("node %d has the name %s and op %s (expected 1 to %d printable characters)"
                             % (index, shown(node["name"]), shown(node["op"]), MAX_NAME))
        if node["name"] in names:
            raise GraphError("two nodes are named %s" % shown(node["name"]))
        names.add(node["name"])
        _check_attrs(node, index)
        for position, entry in enumerate(node["inputs"]):
            _check_entry(entry, index, len(nodes), "input %d of node %s" % (position, node["name"]))
    if not graph["heads"]:
        raise GraphError("has no outputs ('heads' is empty)")
    for position, entry in enumerate(graph["heads"]):
        _check_entry(entry, len(nodes), len(nodes), "output %d ('heads')" % position)
    _check_optional_lists(graph, len(nodes))


def _check_optional_lists(graph, count):
    """arg_nodes, node_row_ptr and the graph attributes (mxnet_version), where present."""
    arg_nodes = graph.get("arg_nodes", [])
    if not isinstance(arg_nodes, list) or not all(_is_int(i) and 0 <= i < count and graph["nodes"][i]["op"] == "null"
                                                  for i in arg_nodes):
        raise GraphError("'arg_nodes' is not a list of the indices of variables")
    row_ptr = graph.get("node_row_ptr")
    if row_ptr is not None and (
            not isinstance(row_ptr, list) or len(row_ptr) != count + 1 or not all(_is_int(v) for v in row_ptr)
            or row_ptr[0] != 0 or not all(0 < b - a <= MAX_OUTPUTS for a, b in zip(row_ptr, row_ptr[1:]))):
        raise GraphError("'node_row_ptr' does not match the nodes")
    attrs = graph.get("attrs", {})
    version = attrs.get("mxnet_version") if isinstance(attrs, dict) else None
    if not isinstance(attrs, dict) or set(attrs) - {"mxnet_version"} or (
            version is not None and not (isinstance(version, list) and len(version) == 2 and version[0] == "int"
                                         and _is_int(version[1]) and 10000 <= version[1] < 30000)):
        raise GraphError("graph attributes %s are not {\"mxnet_version\": [\"int\", 1xxxx]}" % shown(attrs))


def read_attrs(node, spec):
    """{attribute: value} of a node, the op's defaults filled in; GraphError for unknown
    attributes, unreadable values and missing required ones."""
    values = {key: attr.default for key, attr in spec.attrs.items()}
    for key, text in (node.get("attrs") or {}).items():
        hidden = len(key) > 4 and key.startswith("__") and key.endswith("__")
        attr = HIDDEN_ATTRS.get(key) if hidden else spec.attrs.get(key)
        if attr is None and hidden:
            continue  # MXNet keeps and ignores hidden attributes it does not use
        if attr is None:
            what = "a variable" if node["op"] == "null" else node["op"]
            raise GraphError("node %s: unknown attribute %s for %s" % (node["name"], shown(key), what))
        try:
            values[key] = attr.read(text)
        except ValueError as error:
            raise GraphError("node %s (%s): invalid %s=%s: %s" % (node["name"], node["op"], key, shown(text), error)) \
                from None
    missing = [key for key, attr in spec.attrs.items() if attr.required and key not in (node.get("attrs") or {})]
    if missing:
        raise GraphError("node %s (%s) lacks the required attribute %s" % (node["name"], node["op"], missing[0]))
    return values


def _check_not_converted(node):
    """A packed layer or an operator only the converter makes means a converted model."""
    if node["op"] in CONVERTED_OPS:
        raise GraphError("already converted (node %s is a %s, which only model-converter makes)"
                         % (node["name"], node["op"]))
    packed = str((node.get("attrs") or {}).get("binarized_weights_only")).lower() in ("true", "1")
    if node["op"] in BINARY_OPS and packed:
        raise GraphError("already converted (layer %s has binarized_weights_only=True)" % node["name"])


def _check_layer_attrs(node, values):
    """Relations between attributes that each alone cannot break."""
    if "num_group" in values and values["num_filter"] % values["num_group"]:
        raise GraphError("layer %s: num_filter=%d is not divisible by num_group=%d"
                         % (node["name"], values["num_filter"], values["num_group"]))
    kernel = values.get("kernel")
    if node["op"] == "Pooling" and not values["global_pool"] and not kernel:
        raise GraphError("pooling %s has no kernel (and is not global)" % node["name"])
    for key in ("stride", "dilate", "pad"):
        if kernel and values.get(key) and len(values[key]) != len(kernel):
            raise GraphError("node %s: %s %s does not have the kernel's %d dimensions"
                             % (node["name"], key, values[key], len(kernel)))


def check_nodes(graph, composed_weights=False):
    """[(spec, attribute values)] per node; GraphError for anything op_specs does not allow.
    With composed_weights, the weight of a composed binary layer (see nn.composed) may be
    an expression, as in the float model before fold_composed_layers."""
    nodes, checked = graph["nodes"], []
    for node in nodes:
        _check_not_converted(node)
        spec = KNOWN_OPS.get(node["op"])
        if spec is None:
            raise GraphError("node %s has the operator %s, which model-converter does not know"
                             % (shown(node["name"]), shown(node["op"])))
        values = read_attrs(node, spec)
        _check_layer_attrs(node, values)
        roles = spec.roles(values)
        if len(node["inputs"]) != len(roles):
            raise GraphError("node %s (%s) has %d inputs, expected %d (%s)" % (
                node["name"], node["op"], len(node["inputs"]), len(roles), ", ".join(roles) or "none"))
        for entry, role in zip(node["inputs"], roles):
            _check_output_index(nodes, checked, entry, "input %s of node %s" % (role, node["name"]))
            expression_allowed = composed_weights and role == "weight" and MARK in (node.get("attrs") or {})
            if role not in ("data", "label") and nodes[entry[0]]["op"] != "null" and not expression_allowed:
                raise GraphError("layer %s: its %s is computed by node %s, not a parameter variable"
                                 % (node["name"], role, nodes[entry[0]]["name"]))
        checked.append((spec, values))
    for entry in graph["heads"]:
        _check_output_index(nodes, checked, entry, "an output ('heads')")
    return checked


def _check_output_index(nodes, checked, entry, what):
    spec, values = checked[entry[0]]
    if entry[1] >= spec.outputs(values):
        raise GraphError("%s reads output %d of node %s, which has %d" % (
            what, entry[1], nodes[entry[0]]["name"], spec.outputs(values)))
