"""Readers for datasets stored as local files (no downloads)."""
import gzip
import os

import numpy as np

# Debian's dataset-fashion-mnist package puts the IDX files here.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a numpy array.

    Raises ValueError naming the file when it is truncated or not IDX.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise ValueError("%s: cannot read IDX file (%s)" % (path, error)) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError("%s: not an IDX file (bad magic number)" % path)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError("%s: truncated IDX header" % path)
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError("%s: IDX data has %d bytes, the header promises %d (shape %s)"
                         % (path, len(raw) - header, expected, shape))
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("%s: no %s(.gz) in %s" % (data_dir, stem, data_dir))


def load_mnist_like(data_dir, train=True):
    """(images uint8 [N, 28, 28], labels int32 [N]) of an MNIST-format directory."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError("dataset directory %s does not exist" % data_dir)
    prefix = "train" if train else "t10k"
    images = read_idx(_find(data_dir, prefix + "-images-idx3-ubyte"))
    labels = read_idx(_find(data_dir, prefix + "-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError("%s: %d images of shape %s but %d labels"
                         % (data_dir, len(images), images.shape[1:], len(labels)))
    return images, labels.astype(np.int32)


def load_cifar(data_dir, classes=10, train=True):
    """(images uint8 [N, 32, 32, 3], labels int32 [N]) of the CIFAR python version
    (cifar-10-batches-py: data_batch_1..5, test_batch; cifar-100-python: train, test)."""
    import pickle

    if not os.path.isdir(data_dir):
        raise FileNotFoundError("dataset directory %s does not exist" % data_dir)
    if classes == 10:
        names = ["data_batch_%d" % i for i in range(1, 6)] if train else ["test_batch"]
        label_key = b"labels"
    else:
        names, label_key = (["train"] if train else ["test"]), b"fine_labels"
    images, labels = [], []
    for name in names:
        path = os.path.join(data_dir, name)
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            label = np.asarray(batch[label_key], dtype=np.int32)
        except FileNotFoundError:
            raise FileNotFoundError("%s: missing (expected the CIFAR-%d python files in %s)"
                                    % (path, classes, data_dir)) from None
        except Exception as error:  # pickle raises many kinds on foreign files
            raise ValueError("%s: not a CIFAR-%d python batch (%s)" % (path, classes, error)) from None
        if len(data) != len(label):
            raise ValueError("%s: %d images but %d labels" % (path, len(data), len(label)))
        images.append(data.transpose(0, 2, 3, 1))
        labels.append(label)
    return np.concatenate(images), np.concatenate(labels)


def dummy(shape, classes, count, seed=0):
    """Synthetic, learnable images: noise plus a bright patch whose position is the label.

    shape is (H, W, C); returns (images uint8 [count, H, W, C], labels int32 [count])."""
    rng = np.random.RandomState(seed)
    height, width = shape[0], shape[1]
    labels = rng.randint(0, classes, count).astype(np.int32)
    images = rng.randint(0, 128, (count,) + tuple(shape)).astype(np.uint8)
    side = int(np.ceil(np.sqrt(classes)))
    cell_h, cell_w = max(1, height // side), max(1, width // side)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), side)
        image[row * cell_h:(row + 1) * cell_h, col * cell_w:(col + 1) * cell_w] = 255
    return images, labels
