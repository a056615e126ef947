"""Checkpoint sets: the record (.json) is written last and lists the other files; `best` never
mixes epochs, even when a save dies half-way; temporaries of killed runs are removed (and only
they); resuming refuses sets that are incomplete, mixed or do not match the flags."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from bmxnet import fileio
from bmxnet.train import checkpoints
from test_train_flags import TINY, usage_error
from test_train_states import tiny_trainer, train_steps

import train_imagenet  # noqa: E402  (example/ is on sys.path through test_train_flags)

PREFIX = "lenet_binary-dummy"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch run with a checkpoint set after every epoch (2 batches per epoch)."""
    directory = tmp_path_factory.mktemp("run")
    train_imagenet.main(TINY + ["--save-frequency", "1", "--save-dir", str(directory)])
    return directory


def copy_of(run, tmp_path, names=("0001", "0002")):
    for name in names:
        for suffix in (".params", ".states", ".json"):
            shutil.copy(str(run / (PREFIX + "-" + name + suffix)), str(tmp_path))
    return lambda name, suffix: str(tmp_path / (PREFIX + "-" + name + suffix))


def test_a_run_writes_complete_sets_and_no_temporaries(run):
    for name, epoch in (("0001", 1), ("0002", 2)):
        base = str(run / (PREFIX + "-" + name))
        record = checkpoints.read_record(base + ".params", base + ".states")
        assert record["epoch"] == epoch and len(record["history"]["test_acc"]) == epoch
        assert record["num_update"] == 2 * epoch and record["batches_per_epoch"] == 2
        assert record["files"]["params"]["name"] == PREFIX + "-" + name + ".params"
    assert checkpoints.read_record(str(run / (PREFIX + "-best.params")), str(run / (PREFIX + "-best.states")))
    assert not [n for n in os.listdir(str(run)) if n.startswith(fileio.TEMP_PREFIX)]


def test_the_record_is_renamed_into_place_last_after_the_old_one_is_removed(tmp_path, monkeypatch):
    net, trainer = tiny_trainer("adam", {})
    train_steps(net, trainer, 1, seed=0)
    sets = checkpoints.Checkpoints(str(tmp_path), "tiny")
    history = {key: [0.5] for key in checkpoints.HISTORY_KEYS}
    sets.save("best", net, trainer, 1, history, 1)
    events = []
    real_replace, real_remove = os.replace, fileio.remove_quietly
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", os.path.basename(b))), real_replace(a, b)))
    monkeypatch.setattr(checkpoints, "remove_quietly",
                        lambda p: (events.append(("remove", os.path.basename(p))), real_remove(p)))
    sets.save("best", net, trainer, 1, history, 1)
    assert events[:4] == [("remove", "tiny-best.json"), ("replace", "tiny-best.params"),
                          ("replace", "tiny-best.states"), ("replace", "tiny-best.json")]


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs, not even the clean-up of temporaries."""


@pytest.mark.parametrize("renames_done", [0, 1, 2, 3])
def test_best_never_mixes_epochs_when_a_save_dies_half_way(tmp_path, monkeypatch, renames_done):
    net, trainer = tiny_trainer("adam", {})
    train_steps(net, trainer, 1, seed=0)
    sets = checkpoints.Checkpoints(str(tmp_path), "tiny")
    sets.save("best", net, trainer, 1, {key: [0.5] for key in checkpoints.HISTORY_KEYS}, 1)
    train_steps(net, trainer, 1, seed=1)
    done, real_replace = [], os.replace

    def replace_then_die(source, target):
        if len(done) == renames_done:
            raise Killed()
        done.append(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_then_die)
    # the old record is removed before the renames; the clean-up of temporaries never runs
    monkeypatch.setattr(checkpoints, "remove_quietly",
                        lambda path: os.remove(path) if os.path.basename(path) == "tiny-best.json" else None)
    try:
        sets.save("best", net, trainer, 2, {key: [0.5, 0.6] for key in checkpoints.HISTORY_KEYS}, 1)
    except Killed:
        pass
    monkeypatch.undo()
    base = str(tmp_path / "tiny-best")
    if os.path.exists(base + ".json"):
        record = checkpoints.read_record(base + ".params", base + ".states")  # the files are the record's
        assert record["epoch"] == (2 if renames_done == 3 else 1)
    else:
        with pytest.raises(ValueError, match="missing; a checkpoint is complete only with its record"):
            checkpoints.read_record(base + ".params", base + ".states")
    assert os.path.exists(base + ".json") == (renames_done == 3)  # no record while the set is half-replaced
    assert len(fileio.remove_leftovers(str(tmp_path))) == 3 - renames_done
    assert all(name.startswith("tiny-best.") for name in os.listdir(str(tmp_path)))


KILL_DURING_SAVE = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_train_states import tiny_trainer, train_steps
from bmxnet.train import checkpoints
net, trainer = tiny_trainer("adam", {{}})
train_steps(net, trainer, 1, seed=0)
sets = checkpoints.Checkpoints({directory!r}, "lenet_binary-dummy")
history = {{key: [0.5] for key in checkpoints.HISTORY_KEYS}}
real_replace = os.replace
def replace_then_kill(source, target):
    if target.endswith(".states"):
        os.kill(os.getpid(), signal.SIGKILL)  # weights renamed, states and record not
    real_replace(source, target)
os.replace = replace_then_kill
sets.save("best", net, trainer, 1, history, 1)
"""


def test_kill_9_during_a_checkpoint_leaves_temporaries_that_the_next_run_removes(tmp_path):
    directory = str(tmp_path)
    script = KILL_DURING_SAVE.format(tests=os.path.dirname(__file__), directory=directory)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    left = [n for n in os.listdir(directory) if n.startswith(fileio.TEMP_PREFIX)]
    assert len(left) == 2 and not os.path.exists(os.path.join(directory, PREFIX + "-best.json"))
    live = "%s%d-abc-%s-0001.params" % (fileio.TEMP_PREFIX, os.getppid(), PREFIX)  # a running process's
    for name in (live, "tmpk3j2.png", "notes.txt"):
        open(os.path.join(directory, name), "w").write("not ours to remove")
    train_imagenet.main(TINY + ["--num-epochs", "1", "--save-dir", directory])
    names = os.listdir(directory)
    assert not set(left) & set(names) and {live, "tmpk3j2.png", "notes.txt"} <= set(names)
    assert "removed 2 temporary files of an interrupted run" in open(os.path.join(directory, "train.log")).read()
    assert checkpoints.read_record(os.path.join(directory, PREFIX + "-best.params"),
                                   os.path.join(directory, PREFIX + "-best.states"))["epoch"] == 1


def resume_flags(path, epoch=1, states=True):
    flags = TINY + ["--num-epochs", "3", "--resume-epoch", str(epoch), "--resume-params", path("%04d" % epoch, ".params")]
    return flags + (["--resume-states", path("%04d" % epoch, ".states")] if states else [])


def damage_record(change):
    def damage(path):
        record = json.load(open(path("0001", ".json")))
        change(record)
        json.dump(record, open(path("0001", ".json"), "w"))
    return damage


RESUME_CASES = {
    "record missing": (lambda p: os.remove(p("0001", ".json")), [],
                       "0001.json: missing; a checkpoint is complete only with its record"),
    "record not json": (lambda p: open(p("0001", ".json"), "wb").write(b"\x00\xffgarbage"), [], "not JSON"),
    "record truncated": (lambda p: open(p("0001", ".json"), "w").write(open(p("0002", ".json")).read()[:50]), [],
                         "not JSON"),
    "record of an earlier bmxnet": (lambda p: open(p("0001", ".json"), "w").write('{"epoch": 1, "history": {}}'), [],
                                    "not a complete checkpoint record of this bmxnet (format None)"),
    "history shorter than the epoch": (damage_record(lambda r: r["history"]["train_loss"].pop()), [],
                                       "history train_loss must be 1 numbers, one per epoch"),
    "epoch differs": (lambda p: None, ["--resume-epoch", "2"], "--resume-epoch 2, but the checkpoint"),
    "states of another save": (lambda p: shutil.copy(p("0002", ".states"), p("0001", ".states")), [],
                               "0001.states is not the states file its record"),
    "params of another save": (lambda p: shutil.copy(p("0002", ".params"), p("0001", ".params")), [],
                               "0001.params is not the params file its record"),
    "states a FIFO": (lambda p: (os.remove(p("0001", ".states")), os.mkfifo(p("0001", ".states"))), [],
                      "0001.states: no such file (or not a regular file)"),
    "states an old pickle": (lambda p: open(p("0001", ".states"), "wb").write(b"\x80\x02}q\x00."), [],
                             "is a pickle (gluon.Trainer.save_states"),
    "other batch size": (lambda p: None, ["--batch-size", "8"], "the optimizer made 2 updates, but 1 epochs of 4 batches"),
    "other optimizer": (lambda p: None, ["--optimizer", "sgd"], "states of optimizer adam, but this run uses sgd"),
    "other model": (lambda p: None, ["--dummy-classes", "5"], "0001.params: does not fit --model"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_refuses_incomplete_mixed_or_mismatched_checkpoints(run, tmp_path, capsys, case):
    damage, flags, message = RESUME_CASES[case]
    path = copy_of(run, tmp_path)
    damage(path)
    err = usage_error(resume_flags(path) + flags + ["--save-dir", str(tmp_path / "out")], capsys)
    assert message in err and err.startswith("error: cannot resume: "), err


def test_crafted_pickle_as_resume_states_does_not_run_code(run, tmp_path, capsys):
    import pickle
    from test_datasets import RunsCode
    marker = tmp_path / "code-ran"
    path = copy_of(run, tmp_path)
    open(path("0001", ".states"), "wb").write(pickle.dumps(RunsCode(os.system, "touch %s" % marker), protocol=2))
    err = usage_error(resume_flags(path) + ["--save-dir", str(tmp_path / "out")], capsys)
    assert "refused because unpickling can run code" in err and not marker.exists()


def test_restart_schedule_resumes_from_the_weights_alone(run, tmp_path):
    path = copy_of(run, tmp_path)
    os.remove(path("0001", ".states"))
    history = train_imagenet.main(resume_flags(path, states=False) + ["--restart-schedule", "--save-dir",
                                                                      str(tmp_path / "out")])
    assert len(history["train_loss"]) == 3  # epoch 1 from the record, then 2 and 3
    os.remove(path("0001", ".json"))  # weights from elsewhere: no record, start at epoch 1
    history = train_imagenet.main(TINY + ["--num-epochs", "1", "--resume-params", path("0001", ".params"),
                                          "--restart-schedule", "--save-dir", str(tmp_path / "fresh")])
    assert len(history["train_loss"]) == 1
