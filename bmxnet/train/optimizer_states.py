"""A gluon.Trainer's states (the optimizer's per-parameter state arrays and its update counts,
which are also the LR schedule's position) in an MXNet NDArray file: reading one cannot run
code, unlike the pickle of gluon.Trainer.save_states, which is refused.

The file holds the state arrays, named "state/<parameter index>[/<k>...]", and META_NAME, a
uint8 array of UTF-8 JSON: {"format", "version", "optimizer", "num_update",
"begin_num_update", "index_update_counts": [[device id, [[parameter index, count], ...]], ...],
"states": [[parameter index, layout], ...], "parameters": [name of each index or null]}, where
a layout is null (no state), the name of an array, or {"tuple": [layouts]} / {"list": [layouts]}
(e.g. Adam's (mean, variance)). A parameter index is the trainer's; the trainer orders its
parameters by their global names, which depend on how many blocks the process made before,
so "parameters" keeps each index's name as save_parameters writes it ("features.0.weight")
and loading into a net maps the states by those names."""
import json

import mxnet as mx
import numpy as np

from .. import ndarray_file

FORMAT = "bmxnet-trainer-states"
VERSION = 1
META_NAME = "__bmxnet_trainer_states__"
_PICKLE_PROTOCOL_OPCODE = 0x80  # first byte of every pickle of protocol 2 or later
MAX_NESTING = 8  # MXNet's optimizers nest two deep (multi-precision: (weight copy, (mean, var)))


def _updaters(trainer):
    """The updaters holding the optimizer states: the trainer's own, or its kvstore's."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, "_updater", None)
        if updater is None:
            raise ValueError("the optimizer runs on the parameter servers; its states are not here to save")
        return [updater]
    return trainer._updaters


def num_update(trainer):
    """How many updates the trainer's optimizer has made: the LR schedule's position."""
    return trainer._optimizer.num_update


def _structural_names(trainer, net):
    """The name save_parameters gives each of the trainer's parameters (None without a net)."""
    if net is None:
        return None
    by_parameter = {id(param): name for name, param in net._collect_params_with_prefix().items()}
    return [by_parameter.get(id(param)) for param in trainer._params]


def _flatten(state, name, arrays):
    """The layout of one parameter's state; its arrays go into `arrays` by name."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        if state.stype != "default":
            raise ValueError("optimizer state %s is sparse (%s); only dense states are saved" % (name, state.stype))
        arrays[name] = state
        return name
    if isinstance(state, (tuple, list)):
        parts = [_flatten(part, "%s/%d" % (name, k), arrays) for k, part in enumerate(state)]
        return {"tuple" if isinstance(state, tuple) else "list": parts}
    raise ValueError("optimizer state %s is a %s, which the states file cannot hold" % (name, type(state).__name__))


def save(trainer, path, net=None):
    """Writes the trainer's optimizer states and update counts to path (an NDArray file); with
    the net, the states can be loaded into another instance of the model by parameter name."""
    updater = _updaters(trainer)[0]  # every device's updater holds the same states, as in Trainer.save_states
    optimizer = updater.optimizer
    arrays, layouts = {}, []
    for index in sorted(updater.states, key=lambda i: (type(i).__name__, i)):
        layouts.append([index, _flatten(updater.states[index], "state/%s" % index, arrays)])
    counts = [[device, sorted(([i, n] for i, n in per_index.items()), key=lambda p: (type(p[0]).__name__, p[0]))]
              for device, per_index in sorted(optimizer._all_index_update_counts.items())]
    meta = {"format": FORMAT, "version": VERSION, "optimizer": type(optimizer).__name__.lower(),
            "num_update": optimizer.num_update, "begin_num_update": optimizer.begin_num_update,
            "index_update_counts": counts, "states": layouts, "parameters": _structural_names(trainer, net)}
    arrays[META_NAME] = mx.nd.array(np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8), dtype=np.uint8)
    mx.nd.save(path, arrays)


def check_format(path):
    """ValueError unless path begins like a trainer-states file; a pickle (never unpickled) is named as one."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as error:
        raise ValueError("%s: cannot read (%s)" % (path, error.strerror or error)) from None
    if head[:1] == bytes([_PICKLE_PROTOCOL_OPCODE]):
        raise ValueError("%s is a pickle (gluon.Trainer.save_states, the format of earlier bmxnet checkpoints), "
                         "refused because unpickling can run code; resume from a checkpoint written by this "
                         "version, or from the .params alone with --restart-schedule" % path)
    if len(head) < 8 or int.from_bytes(head, "little") != ndarray_file.LIST_MAGIC:
        raise ValueError("%s: not a trainer-states file (no MXNet NDArray file header)" % path)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_meta(record, path):
    def expect(condition, what):
        if not condition:
            raise ValueError("%s: damaged trainer-states record (%s)" % (path, what))

    expect(record is not None and record.dtype == np.uint8 and record.ndim == 1,
           "no %s entry: is it a .params file?" % META_NAME)
    try:
        meta = json.loads(record.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        meta = None
    expect(isinstance(meta, dict), "not JSON")
    expect(meta.get("format") == FORMAT, "format %r" % (meta.get("format"),))
    expect(meta.get("version") == VERSION, "version %r; this bmxnet reads %d" % (meta.get("version"), VERSION))
    expect(isinstance(meta.get("optimizer"), str), "optimizer name")
    expect(_is_count(meta.get("num_update")) and _is_count(meta.get("begin_num_update")), "update counts")
    expect(isinstance(meta.get("states"), list) and all(isinstance(p, list) and len(p) == 2 and _is_count(p[0])
                                                        for p in meta["states"]), "state list")
    expect(len({p[0] for p in meta["states"]}) == len(meta["states"]), "a parameter listed twice")
    counts = meta.get("index_update_counts")
    expect(isinstance(counts, list), "per-parameter update counts")
    for entry in counts:
        expect(isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int) and isinstance(entry[1], list)
               and all(isinstance(p, list) and len(p) == 2 and _is_count(p[0]) and _is_count(p[1]) for p in entry[1]),
               "per-parameter update counts")
        expect(all(n <= meta["num_update"] for _, n in entry[1]), "a parameter updated more often than the optimizer")
    names = meta.get("parameters")
    expect(names is None or isinstance(names, list) and all(n is None or isinstance(n, str) for n in names),
           "parameter names")
    return meta


def _index_map(meta, trainer, net, path):
    """index in the file -> index in the trainer: by parameter name where both sides have names."""
    saved, current = meta["parameters"], _structural_names(trainer, net)
    count = len(trainer._params)
    if saved is None or current is None:
        def same(index):
            if index >= count:
                raise ValueError("%s: states of parameter %d, but the model has %d (a different model?)"
                                 % (path, index, count))
            return index
        return same
    position = {name: i for i, name in enumerate(current) if name is not None}

    def by_name(index):
        name = saved[index] if index < len(saved) else None
        if name not in position:
            raise ValueError("%s: states of parameter %s, which the model does not have (a different model?)"
                             % (path, name if name is not None else "#%d" % index))
        return position[name]
    return by_name


def _rebuild(layout, arrays, used, shape, path, depth=0):
    """The state of one parameter from its layout, as new NDArrays (on the CPU; the updater
    moves them to its device on first use)."""
    if depth > MAX_NESTING:
        raise ValueError("%s: damaged trainer-states record (states nested %d deep)" % (path, depth))
    if layout is None:
        return None
    if isinstance(layout, str):
        if layout not in arrays or layout in used:
            raise ValueError("%s: damaged trainer-states record (array %r missing or used twice)" % (path, layout))
        used.add(layout)
        array = arrays[layout]
        if array.shape != tuple(shape):
            raise ValueError("%s: state %s has shape %s but its parameter %s (a different model or flags?)"
                             % (path, layout, array.shape, tuple(shape)))
        return mx.nd.array(array, dtype=array.dtype)
    if isinstance(layout, dict) and len(layout) == 1 and set(layout) <= {"tuple", "list"}:
        kind, parts = next(iter(layout.items()))
        if isinstance(parts, list):
            rebuilt = [_rebuild(part, arrays, used, shape, path, depth + 1) for part in parts]
            return tuple(rebuilt) if kind == "tuple" else rebuilt
    raise ValueError("%s: damaged trainer-states record (layout %r)" % (path, layout))


def load(trainer, path, net=None):
    """Restores states written by save() into the trainer (every device's updater, the update
    counts and so the LR schedule), mapped by parameter name when the net is given; returns
    the number of updates made. ValueError (one line) if the file is a pickle, damaged, of
    another optimizer or of another model."""
    check_format(path)
    arrays = ndarray_file.load(path)
    meta = _read_meta(arrays.pop(META_NAME, None), path)
    updaters = _updaters(trainer)
    optimizer = updaters[0].optimizer
    if meta["optimizer"] != type(optimizer).__name__.lower():
        raise ValueError("%s: states of optimizer %s, but this run uses %s"
                         % (path, meta["optimizer"], type(optimizer).__name__.lower()))
    to_trainer = _index_map(meta, trainer, net, path)
    shapes = [param.shape for param in trainer._params]
    for updater in updaters:  # each device gets arrays of its own, as Trainer.load_states gives
        used = set()
        updater.states = {to_trainer(index): _rebuild(layout, arrays, used, shapes[to_trainer(index)], path)
                          for index, layout in meta["states"]}
        updater.states_synced = dict.fromkeys(updater.states, False)
        if used != set(arrays):
            raise ValueError("%s: damaged trainer-states record (arrays %s are not in it)"
                             % (path, ", ".join(sorted(set(arrays) - used))))
    optimizer.begin_num_update = meta["begin_num_update"]
    optimizer.num_update = meta["num_update"]
    optimizer._all_index_update_counts = {device: {to_trainer(index): n for index, n in pairs}
                                          for device, pairs in meta["index_update_counts"]}
    optimizer._all_index_update_counts.setdefault(0, {})
    optimizer._index_update_count = optimizer._all_index_update_counts[0]  # each update re-points it at its device
    return optimizer.num_update
