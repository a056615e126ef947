"""The binary LeNet trains: the loss falls on a small real or synthetic subset."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "example"))
import train_mnist  # noqa: E402

from bmxnet import datasets  # noqa: E402


@pytest.mark.slow
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
    from test_train_flags import usage_error
    err = usage_error(["--data-dir", str(tmp_path / "missing"), "--quiet", "--save-dir", str(tmp_path / "out")],
                      capsys, main=train_mnist.main)
    assert "does not exist" in err


def test_demo_pipeline_train_convert_evaluate(tmp_path, capsys):
    """What `make demo` runs, on small synthetic IDX files: packed accuracy equals float."""
    import evaluate_packed  # noqa: E402  (example/ is on sys.path above)
    from test_datasets import write_idx
    import bmxnet

    for split, count in (("train", 512), ("t10k", 128)):
        images, labels = datasets.dummy((28, 28), 10, count, seed=count)
        write_idx(str(tmp_path / ("%s-images-idx3-ubyte" % split)), images)
        write_idx(str(tmp_path / ("%s-labels-idx1-ubyte" % split)), labels)
    train_mnist.main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--num-epochs", "1",
                      "--quiet", "--save-dir", str(tmp_path)])
    prefix = str(tmp_path / "lenet_binary-mnist")
    bmxnet.convert(prefix + "-symbol.json", prefix + "-0000.params")
    rows = evaluate_packed.main([prefix, "--data-dir", str(tmp_path), "--batch-size", "64"])
    (_, float_accuracy, float_size, _, _), (_, packed_accuracy, packed_size, _, _) = rows
    assert packed_accuracy == float_accuracy and packed_size * 10 < float_size
    assert "same top-1 on 100.00% of images" in capsys.readouterr().out
