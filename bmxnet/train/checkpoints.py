"""Checkpoints as sets of three files, and resuming from one.

PREFIX-NAME.params (the weights), PREFIX-NAME.states (optimizer_states.py) and
PREFIX-NAME.json, the record: epoch, history, update count and the size and sha256 of the
other two. The record marks the set complete. Saving writes all three to temporaries, removes
the old record, renames weights and states into place and the record last: whenever a record
exists, the files it lists are there and of its epoch, so `best` is replaced as a unit and
never mixes epochs (a save killed half-way leaves no record, and resuming refuses the set).
"""
import hashlib
import json
import os

import mxnet as mx

from .. import ndarray_file
from . import optimizer_states
from .cli import UsageError
from ..fileio import finish_file, remove_quietly, sync_directory, temp_beside

FORMAT = "bmxnet-checkpoint"
VERSION = 1
HISTORY_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
MAX_RECORD_BYTES = 1 << 26  # a record is a few KB; anything near this is not one


class Checkpoints:
    """The checkpoint sets PREFIX-NAME.{params,states,json} of one run in its directory."""

    def __init__(self, directory, prefix):
        self.directory, self.prefix = directory, prefix

    def base(self, name):
        """PREFIX-NAME in the directory: the set's paths without their suffixes."""
        return os.path.join(self.directory, "%s-%s" % (self.prefix, name))

    def save(self, name, net, trainer, epoch, history, batches_per_epoch):
        """Writes the set NAME (e.g. "0003" or "best") of the net and trainer after `epoch`."""
        base = self.base(name)
        temps = {}
        try:
            temps["params"] = temp_beside(base + ".params")
            net.save_parameters(temps["params"])
            temps["states"] = temp_beside(base + ".states")
            optimizer_states.save(trainer, temps["states"], net)
            files = {}
            for kind in ("params", "states"):
                finish_file(temps[kind])
                files[kind] = dict(name=os.path.basename(base + "." + kind), **digest(temps[kind]))
            record = {"format": FORMAT, "version": VERSION, "epoch": epoch, "history": history,
                      "num_update": optimizer_states.num_update(trainer), "batches_per_epoch": batches_per_epoch,
                      "files": files}
            temps["json"] = temp_beside(base + ".json")
            with open(temps["json"], "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            remove_quietly(base + ".json")  # from here until the new record no set NAME exists
            sync_directory(self.directory)
            for kind in ("params", "states", "json"):
                os.replace(temps[kind], base + "." + kind)
                del temps[kind]
            sync_directory(self.directory)
        finally:
            for temp in temps.values():
                remove_quietly(temp)


def digest(path):
    """{"bytes": size, "sha256": hex digest} of a file."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return {"bytes": size, "sha256": sha.hexdigest()}


def _damaged(path, what):
    return ValueError("%s: not a complete checkpoint record of this bmxnet (%s)" % (path, what))


def _check_record(record, path):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise _damaged(path, "format %r" % (record.get("format") if isinstance(record, dict) else None))
    if record.get("version") != VERSION:
        raise _damaged(path, "version %r" % (record.get("version"),))
    epoch = record.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise _damaged(path, "epoch %r" % (epoch,))
    history = record.get("history")
    if not isinstance(history, dict) or set(history) != set(HISTORY_KEYS):
        raise _damaged(path, "history must have %s" % ", ".join(HISTORY_KEYS))
    for key, values in history.items():  # a diverged run has NaN losses: numbers, not necessarily finite
        if not isinstance(values, list) or len(values) != epoch or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise _damaged(path, "history %s must be %d numbers, one per epoch" % (key, epoch))
    for key in ("num_update", "batches_per_epoch"):
        if not isinstance(record.get(key), int) or record[key] < 0:
            raise _damaged(path, key)
    files = record.get("files")
    for kind in ("params", "states"):
        entry = files.get(kind) if isinstance(files, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or \
                not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("name"), str):
            raise _damaged(path, "no size and sha256 of the %s file" % kind)


def read_record(params_path, states_path=None):
    """The record of the checkpoint set whose weights are params_path, after checking that it
    is complete and that params_path (and states_path, if given) are the files it lists.
    ValueError (one line) otherwise."""
    path = os.path.splitext(params_path)[0] + ".json"
    if not os.path.isfile(path):
        raise ValueError("%s: missing; a checkpoint is complete only with its record, written last "
                         "(without it the save was interrupted or the files come from elsewhere)" % path)
    if os.path.getsize(path) > MAX_RECORD_BYTES:
        raise _damaged(path, "%d bytes" % os.path.getsize(path))
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _damaged(path, "not JSON: %s" % str(error).splitlines()[0]) from None
    _check_record(record, path)
    for kind, given in (("params", params_path), ("states", states_path)):
        if given and digest(given) != {key: record["files"][kind][key] for key in ("bytes", "sha256")}:
            raise ValueError("%s is not the %s file its record %s lists (size or sha256 differ): the files "
                             "come from different saves" % (given, kind, path))
    return record


def _load_parameters(net, path, ctx):
    # ndarray_file checks every size against the file; mx.nd.load would trust a damaged header.
    ndarray_file.load(path)
    try:
        net.load_parameters(path, ctx=ctx)
    except (AssertionError, ValueError, KeyError, mx.base.MXNetError) as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise ValueError("%s: does not fit --model (%s)" % (path, lines[-1] if lines else type(error).__name__)) from None


def resume(args, net, trainer, batches_per_epoch, ctx):
    """(epochs done, history) after loading --resume-params and --resume-states into the net and
    the trainer; UsageError unless the set is complete and matches the flags and the data."""
    try:
        history = {}
        for flag, path in (("--resume-params", args.resume_params), ("--resume-states", args.resume_states)):
            if path and not os.path.isfile(path):  # a FIFO or device would block the readers
                raise ValueError("%s %s: no such file (or not a regular file)" % (flag, path))
        if args.resume_states:
            optimizer_states.check_format(args.resume_states)  # an old pickle gets its own message
        if args.resume_epoch > 0:
            record = read_record(args.resume_params, args.resume_states or None)
            if record["epoch"] != args.resume_epoch:
                raise ValueError("--resume-epoch %d, but the checkpoint %s is of epoch %d"
                                 % (args.resume_epoch, args.resume_params, record["epoch"]))
            history = record["history"]
        _load_parameters(net, args.resume_params, ctx)
        if args.resume_states:
            done = optimizer_states.load(trainer, args.resume_states, net)
            expected = args.resume_epoch * batches_per_epoch
            if done != expected:
                raise ValueError("%s: the optimizer made %d updates, but %d epochs of %d batches make %d "
                                 "(another --batch-size, --max-train-samples, dataset or number of workers?)"
                                 % (args.resume_states, done, args.resume_epoch, batches_per_epoch, expected))
    except (ValueError, OSError) as error:
        raise UsageError("cannot resume: %s" % error) from None
    return args.resume_epoch, history
