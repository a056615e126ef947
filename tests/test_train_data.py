"""Hostile or broken dataset files stop the training scripts with one line before training:
labels outside the classes, IDX files without images or of another size, gzip bombs, CIFAR
pickles that would run code, RecordIO sets with impossible labels."""
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

from bmxnet import datasets
from bmxnet.train.cli import UsageError
from bmxnet.train.data import check_labels
from test_datasets import RunsCode, cifar_batch, gzip_bomb, write_idx
from test_train_flags import usage_error

MNIST = ["--dataset", "mnist", "--model", "lenet_binary", "--batch-size", "16", "--num-epochs", "1", "--quiet"]


def mnist_dir(directory, train_labels=None, train_shape=(32, 28, 28)):
    for split, shape in (("train", train_shape), ("t10k", (16, 28, 28))):
        images, labels = datasets.dummy(shape[1:], 10, shape[0], seed=shape[0])
        if split == "train" and train_labels is not None:
            labels = train_labels
        write_idx(str(directory / ("%s-images-idx3-ubyte" % split)), images)
        write_idx(str(directory / ("%s-labels-idx1-ubyte" % split)), labels)
    return str(directory)


def test_labels_outside_the_classes_stop_training(tmp_path, capsys):
    labels = np.arange(32) % 11  # 10 is no class of MNIST
    err = usage_error(MNIST + ["--data-dir", mnist_dir(tmp_path, labels), "--save-dir", str(tmp_path / "out")], capsys)
    assert "training data: label 10 is not a class number in [0, 10)" in err


@pytest.mark.parametrize("labels, bad", [([0, 3, -1], "-1"), ([0, 4], "4"), ([0.0, 2.5], "2.5")])
def test_check_labels_names_the_first_label_that_is_no_class(labels, bad):
    with pytest.raises(UsageError, match=r"label %s is not a class number in \[0, 4\)" % bad):
        check_labels(np.array(labels), 4, "data")
    check_labels(np.array([0, 1, 2, 3]), 4, "data")


def test_idx_file_without_images_is_one_line(tmp_path, capsys):
    directory = mnist_dir(tmp_path, train_labels=np.zeros((0,), np.uint8), train_shape=(0, 28, 28))
    err = usage_error(MNIST + ["--data-dir", directory, "--save-dir", str(tmp_path / "out")], capsys)
    assert "train-images file holds no images" in err


def test_idx_images_of_another_size_are_one_line(tmp_path, capsys):
    directory = mnist_dir(tmp_path, train_shape=(32, 12, 12))
    err = usage_error(MNIST + ["--data-dir", directory, "--save-dir", str(tmp_path / "out")], capsys)
    assert "train images are 12x12, MNIST-format data is 28x28" in err


def test_gzip_bomb_among_the_idx_files_is_one_line(tmp_path, capsys):
    directory = mnist_dir(tmp_path)
    os.remove(os.path.join(directory, "train-images-idx3-ubyte"))
    gzip_bomb(os.path.join(directory, "train-images-idx3-ubyte.gz"), 32, 1 << 26)
    err = usage_error(MNIST + ["--data-dir", directory, "--save-dir", str(tmp_path / "out")], capsys)
    assert "goes on beyond the 25088 bytes its header promises" in err


def cifar_dir(directory, train_batch=None, test_batch=None):
    for i in range(1, 6):
        batch = train_batch if train_batch is not None and i == 3 else cifar_batch(count=4, seed=i)
        (directory / ("data_batch_%d" % i)).write_bytes(pickle.dumps(batch, protocol=2))
    (directory / "test_batch").write_bytes(pickle.dumps(test_batch or cifar_batch(count=4, seed=9), protocol=2))
    return str(directory)


def test_crafted_cifar_batch_stops_the_script_without_running_code(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    batch = cifar_batch()
    batch[b"data"] = RunsCode(os.system, "touch %s" % marker)
    directory = cifar_dir(tmp_path, train_batch=batch)
    err = usage_error(["--dataset", "cifar10", "--data-dir", directory, "--model", "lenet_binary", "--quiet",
                       "--save-dir", str(tmp_path / "out")], capsys)
    assert "data_batch_3: not a plain-data pickle (refuses to call posix.system" in err
    assert not marker.exists()


def test_cifar_labels_outside_the_classes_stop_training(tmp_path, capsys):
    batch = cifar_batch()
    batch[b"labels"][1] = 10
    directory = cifar_dir(tmp_path, test_batch=batch)
    err = usage_error(["--dataset", "cifar10", "--data-dir", directory, "--model", "lenet_binary", "--quiet",
                       "--save-dir", str(tmp_path / "out")], capsys)
    assert "validation data: label 10 is not a class number in [0, 10)" in err


def test_cifar_batches_train(tmp_path):
    import train_imagenet
    history = train_imagenet.main(["--dataset", "cifar10", "--data-dir", cifar_dir(tmp_path), "--model", "lenet_binary",
                                   "--batch-size", "8", "--num-epochs", "1", "--random-crop-pad", "4", "--random-flip",
                                   "--quiet", "--save-dir", str(tmp_path / "out")])
    assert len(history["train_loss"]) == 1 and np.isfinite(history["train_loss"][0])


def test_recordio_labels_outside_the_classes_stop_training(tmp_path, capsys):
    """RecordIO labels are checked batch by batch (reading them all first would read the whole set)."""
    from test_train_script import make_recordio
    train = make_recordio(tmp_path, "train", 8, classes=1)
    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / "bad.idx"), str(tmp_path / "bad.rec"), "w")
    image = np.zeros((40, 40, 3), np.uint8)
    for i, label in enumerate([3.0, 1000.0]):
        record.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, label, i, 0), image, img_fmt=".jpg"))
    record.close()
    err = usage_error(["--dataset", "imagenet", "--rec-train", train, "--rec-val", str(tmp_path / "bad.rec"),
                       "--model", "lenet_binary", "--input-size", "28", "--batch-size", "2", "--num-epochs", "1",
                       "--quiet", "--save-dir", str(tmp_path / "out")], capsys, during_training=True)
    assert "bad.rec: label 1000.0 is not a class number in [0, 1000)" in err


def test_recordio_set_smaller_than_a_batch_is_one_line(tmp_path, capsys):
    from test_train_script import make_recordio
    small = make_recordio(tmp_path, "small", 3)
    err = usage_error(["--dataset", "imagenet", "--rec-train", small, "--rec-val", small, "--model", "lenet_binary",
                       "--input-size", "28", "--batch-size", "8", "--quiet", "--save-dir", str(tmp_path / "out")],
                      capsys)
    assert "--rec-train %s: 3 images, fewer than --batch-size 8" % small in err
