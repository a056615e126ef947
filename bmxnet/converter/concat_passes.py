"""The converter's rewrites of channel concats into pieces: a ChannelConcat that only packed
convolutions, PlainPoolings and other ChannelConcats read is not made; its readers take its
inputs where they lie (`data_pieces`), so MeliusNet's dense blocks copy no feature map."""
from .graph_nodes import ADD_OPS, attr_numbers, attrs_of, edge, identity_reshape, is_true, packed_conv, readers_of
from .onednn_layouts import LAYOUT_KEEPING_OPS


MAX_DATA_PIECES = 16  # QConvolution's limit (kernels/channel_pieces.h)


MAX_CONCAT_PIECES = 32  # MeliusNet-59's concats take up to 17; a bound keeps chains of concats from growing
# the graph quadratically


SAME_CHANNEL_OPS = LAYOUT_KEEPING_OPS + ADD_OPS + ("Pooling", "PlainPooling", "QActivation", "BlockGrad", "identity")


def _channels(nodes, entry, known=None):
    """The channel count of the tensor `entry` where its producers tell it (convolutions,
    concats, and operators that keep their input's channels), else None. `known` keeps the
    counts found, by node, for later calls while no rewrite changes a count."""
    def keeps_channels(node):
        attrs = attrs_of(node)
        return node.get("inputs") and (
            node["op"] in SAME_CHANNEL_OPS or (node["op"] == "PlainBatchNorm" and not is_true(attrs, "channels_last"))
            or identity_reshape(node))
    known = {} if known is None else known
    source, path = edge(nodes, entry), []
    while source is not None and source not in known and keeps_channels(nodes[source]) \
            and nodes[source]["op"] not in ADD_OPS:
        path.append(source)
        source = edge(nodes, nodes[source]["inputs"][0])
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
    takes = [int(v) for v in attr_numbers(attrs_of(concat).get("take_channels", "()"))]
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
        elif (packed_conv(node) or node["op"] == "PlainPooling") and position in _data_positions(node):
            if len(_data_positions(node)) + len(pieces) - 1 > MAX_DATA_PIECES:
                return None
            plans.append((reader, position, "data", None))
        elif packed_conv(node) and is_true(attrs_of(node), "residual") and \
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
    return {edge(nodes, e) for i in live for entry in nodes[i].get("inputs", []) if isinstance(entry, dict)
            for e in entry.get("inputs", [])}


def _reread(readers, nodes, reader, old_inputs):
    """Updates `readers` ({node index: {(reader, input position)}}) for node `reader`, whose
    inputs were `old_inputs`."""
    for inputs, change in ((old_inputs, -1), (nodes[reader]["inputs"], 1)):
        for position, entry in enumerate(inputs):
            source = edge(nodes, entry)
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
    readers = {source: set(reads) for source, reads in readers_of(nodes, live).items()}  # kept up to date below
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
