"""The binary LeNet trains: the loss falls on a small real or synthetic subset."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "example"))
import train_mnist  # noqa: E402

from bmxnet import datasets  # noqa: E402


def test_binary_lenet_loss_falls_and_model_is_exported(tmp_path):
    real = os.path.isdir(datasets.FASHION_MNIST_DIR)
    args = ["--num-epochs", "3", "--batch-size", "64", "--lr", "0.005", "--quiet",
            "--save-dir", str(tmp_path)]
    args += ["--max-train-samples", "2000"] if real else ["--dataset", "dummy"]
    history = train_mnist.main(args)
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    if real:
        assert history["test_acc"][-1] > 0.6  # chance is 0.1
    name = "lenet_binary-" + ("fashion-mnist" if real else "dummy")
    for suffix in ("-symbol.json", "-0000.params", "-curves.png"):
        assert os.path.getsize(str(tmp_path / (name + suffix))) > 0


def test_missing_data_dir_exits_with_one_line_error(tmp_path, capsys):
    try:
        train_mnist.main(["--data-dir", str(tmp_path / "missing"), "--quiet"])
    except SystemExit as stop:
        assert "does not exist" in str(stop.code) and "\n" not in str(stop.code)
    else:
        raise AssertionError("expected SystemExit")
