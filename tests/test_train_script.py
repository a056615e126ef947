"""example/train_imagenet.py: resume equals an uninterrupted run, RecordIO training, padding,
two workers (bad input: test_train_flags.py, test_train_data.py, test_checkpoints.py)."""
import os
import re
import sys

import mxnet as mx
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "example"))
import train_imagenet  # noqa: E402

SMALL = ["--dataset", "dummy", "--dummy-shape", "28,28,1", "--model", "lenet_binary", "--batch-size", "64",
         "--optimizer", "adam", "--lr", "0.005", "--num-epochs", "3", "--save-frequency", "1", "--quiet",
         "--max-train-samples", "256", "--seed", "3", "--warmup-epochs", "1"]


def params_of(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    augmented = SMALL + ["--random-crop-pad", "2", "--random-flip"]
    train_imagenet.main(augmented + ["--save-dir", str(whole)])
    checkpoint = str(whole / "lenet_binary-dummy-0001")
    history = train_imagenet.main(augmented + ["--save-dir", str(resumed), "--resume-epoch", "1",
                                           "--resume-params", checkpoint + ".params",
                                           "--resume-states", checkpoint + ".states"])
    assert len(history["test_acc"]) == 3  # the first epoch's record comes from the checkpoint
    expected = params_of(str(whole / "lenet_binary-dummy-0003.params"))
    actual = params_of(str(resumed / "lenet_binary-dummy-0003.params"))
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    for suffix in ("-symbol.json", "-0000.params", "-curves.png", "-best.params"):
        assert os.path.isfile(str(resumed / ("lenet_binary-dummy" + suffix)))
    assert "[epoch 3]" in open(str(resumed / "train.log")).read()
    assert not [name for name in os.listdir(str(resumed)) if name.startswith(".bmxnet-tmp-")]


def make_recordio(directory, name, count, classes=4):
    """A small indexed RecordIO set of random JPEGs, as im2rec writes it."""
    prefix = os.path.join(str(directory), name)
    record = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    rng = np.random.RandomState(0)
    for i in range(count):
        image = rng.randint(0, 255, (40, 40, 3)).astype(np.uint8)
        header = mx.recordio.IRHeader(0, float(i % classes), i, 0)
        record.write_idx(i, mx.recordio.pack_img(header, image, quality=90, img_fmt=".jpg"))
    record.close()
    return prefix + ".rec"


def test_trains_from_recordio_files(tmp_path):
    train = make_recordio(tmp_path, "train", 16)
    val = make_recordio(tmp_path, "val", 8)
    history = train_imagenet.main(["--dataset", "imagenet", "--rec-train", train, "--rec-val", val,
                                   "--model", "resnete18", "--initial-layers", "thumbnail",
                                   "--input-size", "32", "--batch-size", "8", "--num-epochs", "1",
                                   "--quiet", "--save-dir", str(tmp_path / "out")])
    assert len(history["train_loss"]) == 1 and np.isfinite(history["train_loss"][0])
    assert os.path.isfile(str(tmp_path / "out" / "resnete18-imagenet-symbol.json"))


def test_pad_to_makes_28x28_images_32x32_for_cifar_style_networks():
    from bmxnet.train import cli, data
    args = cli.argument_parser("test").parse_args(
        ["--dataset", "dummy", "--dummy-shape", "28,28,1", "--pad-to", "32", "--batch-size", "16"])
    train, val, classes, shape = data.load_data(args)
    assert shape == (1, 32, 32)
    images, _ = next(val.batches(0))
    assert images.shape == (16, 1, 32, 32)
    border = images.asnumpy()[:, :, :2, :]
    np.testing.assert_allclose(border, border.min())  # black, normalised like the images


@pytest.mark.slow
def test_dist_sync_two_workers_one_server_on_localhost(tmp_path):
    """python -m bmxnet.launch (MXNet's launcher, local launcher on 127.0.0.1)."""
    import json
    import subprocess
    root = os.path.join(os.path.dirname(__file__), "..")
    command = [sys.executable, "-m", "bmxnet.launch", "-n", "2", "-s", "1", "--launcher", "local",
               sys.executable, "example/train_imagenet.py", "--kvstore", "dist_sync"] + SMALL + \
              ["--save-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    final = [params_of(str(tmp_path / ("rank%d" % r) / "lenet_binary-dummy-0003.params")) for r in (0, 1)]
    for name in final[0]:
        if "running" not in name:  # BatchNorm statistics are each worker's own
            np.testing.assert_array_equal(final[0][name], final[1][name], err_msg=name)
    for rank in (0, 1):
        losses = json.load(open(str(tmp_path / ("rank%d" % rank) / "lenet_binary-dummy-0003.json")))["history"]["train_loss"]
        assert losses[-1] < 0.5 * losses[0]


def test_no_progress_bar_when_the_output_is_not_a_terminal(tmp_path):
    """Without --quiet, a piped run (CI logs) gets the epoch lines, not a progress bar's updates."""
    import subprocess
    root = os.path.join(os.path.dirname(__file__), "..")
    flags = [f for f in SMALL if f != "--quiet"]
    flags[flags.index("--num-epochs") + 1] = "2"
    result = subprocess.run([sys.executable, "example/train_imagenet.py"] + flags + ["--save-dir", str(tmp_path)],
                            cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not re.search(r"it/s|s/it|\r", result.stderr + result.stdout), result.stderr[-500:]
