"""Training flags are checked before anything is loaded or trained: every bad value stops the
script with one line "error: ..." on stderr and exit code 2."""
import os
import sys

import mxnet as mx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "example"))
import train_imagenet  # noqa: E402

TINY = ["--dataset", "dummy", "--dummy-shape", "28,28,1", "--model", "lenet_binary", "--batch-size", "16",
        "--optimizer", "adam", "--num-epochs", "2", "--quiet", "--max-train-samples", "32"]


def usage_error(argv, capsys, during_training=False, main=train_imagenet.main):
    """The stderr line of a run of train_imagenet.py that must stop with a usage error (before
    training, so nothing else is on stderr, unless the error can only show during training)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, (argv, stop.value.code, err)
    if during_training:
        err = err.splitlines(keepends=True)[-1]
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, (argv, err)
    return err.strip()


NO_GPU = "gpu(%d)" % mx.context.num_gpus()  # one past the last GPU: on the CPU-only wheel gpu(0)

BAD_FLAGS = [
    (["--save-frequency", "0"], "--save-frequency must be in [1, inf), got 0"),
    (["--save-frequency", "-1"], "--save-frequency must be in [1, inf), got -1"),
    (["--clip-threshold", "-1"], "--clip-threshold must be in (0, inf), got -1.0"),
    (["--clip-threshold", "inf"], "--clip-threshold must be in (0, inf), got inf"),
    (["--ctx", NO_GPU], "--ctx %s: this machine (or this MXNet build) has" % NO_GPU),
    (["--ctx", "cpu,cpu"], "names a device twice"),
    (["--num-gpus", str(mx.context.num_gpus() + 1)], "--num-gpus %d: this machine" % (mx.context.num_gpus() + 1)),
    (["--lr", "-0.1"], "--lr must be in (0, inf), got -0.1"),
    (["--lr", "nan"], "--lr must be in (0, inf), got nan"),
    (["--lr", "0"], "--lr must be in (0, inf), got 0.0"),
    (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
    (["--wd=-1e-4"], "--wd must be in [0, 1), got -0.0001"),
    (["--lr-decay", "inf"], "--lr-decay must be in (0, inf), got inf"),
    (["--lr-decay-epoch", "10,nan"], "--lr-decay-epoch: expected comma-separated integers"),
    (["--max-train-samples", "-5"], "--max-train-samples must be in [0, inf), got -5"),
    (["--seed", "-1"], "--seed must be in [0, 4294967296), got -1"),
    (["--kvstore", "nonsense"], "--kvstore nonsense: unknown; use one of local, device"),
    (["--kvstore", "dist_async"], "--kvstore dist_async: unknown"),
    (["--resume-epoch", "-1"], "--resume-epoch must be in [0, inf), got -1"),
    (["--resume-epoch", "2", "--resume-params", "x.params", "--resume-states", "x.states"],
     "--resume-epoch 2 leaves nothing to train with --num-epochs 2; raise --num-epochs"),
    (["--resume-epoch", "5", "--resume-params", "x.params", "--resume-states", "x.states"],
     "--resume-epoch 5 leaves nothing to train"),
    (["--resume-epoch", "1", "--resume-params", "x.params"], "--resume-params without --resume-states would restart"),
    (["--resume-states", "x.states"], "--resume-states needs --resume-params"),
    (["--resume-params", "x.params", "--resume-states", "x.states"], "--resume-states needs --resume-epoch"),
    (["--resume-epoch", "1", "--resume-params", "x.params", "--resume-states", "x.states", "--restart-schedule"],
     "leave out --resume-states or the flag"),
    (["--restart-schedule"], "--restart-schedule is for resuming"),
    (["--resume-epoch", "3"], "--resume-epoch needs --resume-params"),
    (["--warmup-epochs", "2"], "--warmup-epochs (2) must be below --num-epochs (2)"),
    (["--bits-a", "0"], "--bits-a must be in [1, 32], got 0"),
    (["--approximation", "binet"], "binet"),
    (["--model", "resnet99"], "unknown model 'resnet99'"),
    (["--initial-layers", "thumbnail"], "--model lenet_binary"),
    (["--random-crop-pad", "-1"], "--random-crop-pad must be in [0, inf), got -1"),
    (["--random-crop-pad", "1000"], "--random-crop-pad 1000 must be in [0, 28) for 28x28 images"),
    (["--pad-to", "20"], "--pad-to 20 is smaller"),
    (["--pad-to", "100000"], "--pad-to 100000: 288 images of 100000x100000x1 need"),
    (["--dummy-shape", "100000,100000,3"], "--dummy-shape: 1280 images of 100000x100000x3 need"),
    (["--dummy-shape", "28,x,1"], "--dummy-shape: expected comma-separated integers"),
    (["--dummy-shape", "2,2,1"], "--model lenet_binary cannot take inputs of shape (1, 2, 2) (C,H,W)"),
    (["--dummy-classes", "0"], "--dummy-classes must be in [1, inf), got 0"),
    (["--batch-size", "0"], "--batch-size must be in [1, inf), got 0"),
    (["--wd", "1e300"], "--wd must be in [0, 1), got 1e+300"),
    (["--lr", "1e39"], "--lr 1e+39 is beyond the float32 numbers"),
    (["--model", "binary_densenet", "--growth-rate", "-1"], "--growth-rate must be in [1, inf), got -1"),
    (["--model", "binary_densenet", "--init-features", "-3"], "--init-features must be in [1, inf), got -3"),
    (["--model", "binary_densenet", "--block-config", "6,0"], "--block-config: every value must be positive"),
    (["--model", "binary_densenet", "--reduction=-2,1,1"], "--reduction: every value must be positive"),
    (["--model", "meliusnet22", "--downsample-sc-groups", "-1"], "--downsample-sc-groups must be in [1, inf), got -1"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_stops_with_one_line_before_training(flags, message, tmp_path, capsys):
    err = usage_error(TINY + flags + ["--save-dir", str(tmp_path / "out")], capsys)
    assert message in err, err


def test_save_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("a file, not a directory")
    err = usage_error(TINY + ["--save-dir", str(target)], capsys)
    assert "--save-dir %s exists and is not a directory" % target in err
    assert target.read_text() == "a file, not a directory"


def bad_data_cases(tmp_path):
    not_rec = tmp_path / "fake.rec"
    not_rec.write_bytes(b"JFIF not a record file")
    fifo = tmp_path / "fifo.rec"
    os.mkfifo(str(fifo))  # reading it would wait for a writer forever
    return [
        (["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")], "does not exist"),
        (["--dataset", "cifar10", "--data-dir", str(tmp_path)], "data_batch_1: missing"),
        (["--dataset", "cifar10"], "needs --data-dir"),
        (["--dataset", "imagenet"], "needs --rec-train and --rec-val"),
        (["--dataset", "imagenet", "--rec-train", str(not_rec), "--rec-val", str(not_rec)], "not a RecordIO file"),
        (["--dataset", "imagenet", "--rec-train", str(tmp_path / "x.rec"), "--rec-val", str(not_rec)], "cannot read"),
        (["--dataset", "imagenet", "--random-crop-pad", "4"], "in-memory datasets"),
        (["--dataset", "imagenet", "--rec-train", str(fifo), "--rec-val", str(not_rec)], "not a regular file"),
    ]


def test_bad_data_flags_stop_with_one_line_before_training(tmp_path, capsys):
    for argv, message in bad_data_cases(tmp_path):
        err = usage_error(argv + ["--quiet", "--save-dir", str(tmp_path / "out")], capsys)
        assert message in err, (argv, err)


def test_one_batch_per_epoch_trains_through_warmup_and_schedule(tmp_path):
    """GluonCV's schedules divide by (updates - 1): a phase of one update must not."""
    history = train_imagenet.main(TINY + ["--max-train-samples", "8", "--num-epochs", "2", "--warmup-epochs", "1",
                                          "--save-dir", str(tmp_path)])
    assert len(history["train_loss"]) == 2
