"""IDX reading: real files when present, clear errors for broken ones."""
import gzip
import os

import numpy as np
import pytest

from bmxnet import datasets


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)
    return data


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / ("a.idx" + (".gz" if compress else "")))
    write_idx(path, array, compress)
    np.testing.assert_array_equal(datasets.read_idx(path), array)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    path = str(tmp_path / "a.idx")
    data = write_idx(path, np.zeros((5, 4), np.uint8))
    open(path, "wb").write(data[:-3])
    with pytest.raises(ValueError, match="header promises 20"):
        datasets.read_idx(path)
    open(path, "wb").write(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(path)
    open(path + ".gz", "wb").write(b"not gzip")
    with pytest.raises(ValueError, match="cannot read IDX file"):
        datasets.read_idx(path + ".gz")


def test_load_mnist_like_reports_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.load_mnist_like(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.load_mnist_like(str(tmp_path))


def test_load_mnist_like_checks_image_and_label_counts(tmp_path):
    write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), np.zeros((3, 28, 28), np.uint8))
    write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), np.zeros((2,), np.uint8))
    with pytest.raises(ValueError, match="3 images of shape"):
        datasets.load_mnist_like(str(tmp_path), train=False)


@pytest.mark.skipif(not os.path.isdir(datasets.FASHION_MNIST_DIR),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_loads():
    images, labels = datasets.load_mnist_like(datasets.FASHION_MNIST_DIR, train=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert set(np.unique(labels)) == set(range(10))
