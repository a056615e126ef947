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


def gzip_bomb(path, promised_images, expanded_bytes):
    """An IDX .gz whose header promises `promised_images` 28x28 images but whose data expands
    to `expanded_bytes`: one compressed member of zeros repeated (gzip reads members on)."""
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (promised_images, 28, 28))
    block = 1 << 24
    member = gzip.compress(bytes(block), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(expanded_bytes // block):
            f.write(member)


def test_read_idx_stops_expanding_a_gzip_bomb_at_the_size_its_header_promises(tmp_path):
    import tracemalloc
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    gzip_bomb(path, 10, 1 << 28)  # 7840 bytes promised, 256 MiB delivered
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="goes on beyond the 7840 bytes its header promises"):
            datasets.read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 24  # never more than a chunk or two of the 256 MiB


def test_read_idx_refuses_a_header_promising_more_than_the_limit(tmp_path):
    path = str(tmp_path / "huge.idx.gz")
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (0xFFFFFFFF, 0xFFFF, 0xFFFF))
    open(path, "wb").write(gzip.compress(header))
    with pytest.raises(ValueError, match="the IDX header promises .* more than the %d accepted" % datasets.MAX_IDX_BYTES):
        datasets.read_idx(path)


def write_mnist_dir(directory, images, labels, split="t10k"):
    write_idx(str(directory / ("%s-images-idx3-ubyte" % split)), images)
    write_idx(str(directory / ("%s-labels-idx1-ubyte" % split)), labels)


def test_load_mnist_like_refuses_files_without_images(tmp_path):
    write_mnist_dir(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8))
    with pytest.raises(ValueError, match="t10k-images file holds no images"):
        datasets.load_mnist_like(str(tmp_path), train=False)


def test_load_mnist_like_refuses_images_of_another_size(tmp_path):
    write_mnist_dir(tmp_path, np.zeros((3, 5, 7), np.uint8), np.zeros((3,), np.uint8))
    with pytest.raises(ValueError, match="t10k images are 5x7, MNIST-format data is 28x28"):
        datasets.load_mnist_like(str(tmp_path), train=False)
    images, _ = datasets.load_mnist_like(str(tmp_path), train=False, image_shape=None)
    assert images.shape == (3, 5, 7)


def cifar_batch(count=4, label_key=b"labels", seed=0):
    """A dict as in the CIFAR python files (bytes keys, uint8 rows of 3072, a list of ints)."""
    rng = np.random.RandomState(seed)
    return {b"batch_label": b"testing batch 1 of 1", label_key: [int(v) for v in rng.randint(0, 10, count)],
            b"data": rng.randint(0, 256, (count, 3072)).astype(np.uint8),
            b"filenames": [b"image_%d.png" % i for i in range(count)]}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_format_cifar_batch_loads_through_the_restricted_unpickler(tmp_path, protocol):
    import pickle
    batch = cifar_batch()
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = datasets.load_cifar(str(tmp_path), 10, train=False)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, batch[b"data"].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(labels, batch[b"labels"])


class RunsCode:
    """Unpickling this calls `call(*arguments)`, as a crafted dataset file would."""

    def __init__(self, call, *arguments):
        self.call, self.arguments = call, arguments

    def __reduce__(self):
        return self.call, self.arguments


def crafted_payloads(marker):
    import builtins
    import subprocess
    return {
        "os.system": RunsCode(os.system, "touch %s" % marker),
        "subprocess.call": RunsCode(subprocess.call, ["touch", marker]),
        "builtins.exec": RunsCode(builtins.exec, "open(%r, 'w').close()" % marker),
    }


@pytest.mark.parametrize("call", ["os.system", "subprocess.call", "builtins.exec"])
@pytest.mark.parametrize("where", [b"data", b"labels"])
def test_crafted_cifar_pickle_is_refused_without_running_code(tmp_path, call, where):
    import pickle
    marker = str(tmp_path / "code-ran")
    batch = cifar_batch()
    batch[where] = crafted_payloads(marker)[call]
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="refuses to call"):
        datasets.load_cifar(str(tmp_path), 10, train=False)
    assert not os.path.exists(marker)


def test_cifar_pickle_of_object_arrays_is_refused(tmp_path):
    import pickle
    batch = cifar_batch()
    batch[b"data"] = np.array([[1, "x"]], dtype=object)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="not a plain numeric type"):
        datasets.load_cifar(str(tmp_path), 10, train=False)


def test_cifar_batch_of_wrong_content_or_size_is_one_error(tmp_path, monkeypatch):
    import pickle
    path = tmp_path / "test_batch"
    for batch, message in (({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "rows of 3072 bytes"),
                           ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
                           ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, 1]}, "no list of class numbers"),
                           ([1, 2, 3], "not a CIFAR python batch")):
        path.write_bytes(pickle.dumps(batch, protocol=2))
        with pytest.raises(ValueError, match=message):
            datasets.load_cifar(str(tmp_path), 10, train=False)
    path.write_bytes(pickle.dumps(cifar_batch(), protocol=2)[:-20])
    with pytest.raises(ValueError, match="not a plain-data pickle"):
        datasets.load_cifar(str(tmp_path), 10, train=False)
    path.write_bytes(pickle.dumps(cifar_batch(), protocol=2))
    monkeypatch.setattr(datasets, "MAX_CIFAR_BATCH_BYTES", 1000)
    with pytest.raises(ValueError, match=r"too large \(\d+ bytes; the limit is 1000\)"):
        datasets.load_cifar(str(tmp_path), 10, train=False)


def python2_cifar_pickle(data, labels):
    """The bytes of a CIFAR batch as Python 2's cPickle wrote the real files (protocol 2,
    str as BINSTRING, numpy's array and dtype states), written opcode by opcode."""
    import struct

    def string(raw):
        return b"T" + struct.pack("<I", len(raw)) + raw

    def integer(value):
        return b"J" + struct.pack("<i", value)

    rows, columns = data.shape
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b") + b"\x87R"
             + b"(K\x01" + integer(rows) + integer(columns) + b"\x86"
             + b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + string(b"|") + b"NNN" + integer(-1) + integer(-1) + b"K\x00tb"
             + b"\x89" + string(data.tobytes()) + b"tb")
    label_list = b"](" + b"".join(integer(v) for v in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + label_list + b"u."


def test_python2_cifar_batch_loads(tmp_path):
    batch = cifar_batch(count=3, seed=4)
    (tmp_path / "test_batch").write_bytes(python2_cifar_pickle(batch[b"data"], batch[b"labels"]))
    images, labels = datasets.load_cifar(str(tmp_path), 10, train=False)
    np.testing.assert_array_equal(images, batch[b"data"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(labels, batch[b"labels"])
