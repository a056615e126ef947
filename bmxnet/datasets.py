"""Readers for datasets stored as local files (no downloads); files are untrusted input:
sizes are checked against what the headers promise and nothing in them is run."""
import gzip
import os
import zlib

import numpy as np

from . import plain_pickle

# Debian's dataset-fashion-mnist package puts the IDX files here.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_IMAGE_SHAPE = (28, 28)
# MNIST's largest file is 47 MB; a header promising more than this is refused before reading.
MAX_IDX_BYTES = 1 << 32
# CIFAR-100's training batch, the largest, is 155 MB.
MAX_CIFAR_BATCH_BYTES = 1 << 29
CIFAR_IMAGE_BYTES = 3 * 32 * 32

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20


def _read_at_most(f, size):
    """Up to `size` bytes of f, read in chunks: a gzip bomb is never expanded beyond them."""
    data = bytearray()
    while len(data) < size:
        chunk = f.read(min(_CHUNK, size - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def read_idx(path, max_bytes=MAX_IDX_BYTES):
    """Reads an IDX file (optionally gzip-compressed) into a numpy array.

    Raises ValueError naming the file when it is truncated, longer than its header says,
    promises more than max_bytes, or is not IDX.
    """
    if not os.path.isfile(path):  # a FIFO or device would block or never end
        raise ValueError("%s: cannot read IDX file (no such file, or not a regular file)" % path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
                raise ValueError("%s: not an IDX file (bad magic number)" % path)
            ndim = magic[3]
            dims = f.read(4 * ndim)
            if ndim == 0 or len(dims) < 4 * ndim:
                raise ValueError("%s: truncated IDX header" % path)
            shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if expected > max_bytes:
                raise ValueError("%s: the IDX header promises %d bytes (shape %s), more than the %d accepted"
                                 % (path, expected, shape, max_bytes))
            data = _read_at_most(f, expected)
            longer = bool(f.read(1))
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError("%s: cannot read IDX file (%s)" % (path, error)) from None
    if len(data) != expected:
        raise ValueError("%s: IDX data has %d bytes, the header promises %d (shape %s)"
                         % (path, len(data), expected, shape))
    if longer:
        raise ValueError("%s: IDX data goes on beyond the %d bytes its header promises (shape %s)"
                         % (path, expected, shape))
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("%s: no %s(.gz) in %s" % (data_dir, stem, data_dir))


def load_mnist_like(data_dir, train=True, image_shape=MNIST_IMAGE_SHAPE):
    """(images uint8 [N, 28, 28], labels int32 [N]) of an MNIST-format directory; image_shape
    None accepts IDX images of any size."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError("dataset directory %s does not exist" % data_dir)
    prefix = "train" if train else "t10k"
    images = read_idx(_find(data_dir, prefix + "-images-idx3-ubyte"))
    labels = read_idx(_find(data_dir, prefix + "-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError("%s: %d images of shape %s but %d labels"
                         % (data_dir, len(images), images.shape[1:], len(labels)))
    if len(images) == 0:
        raise ValueError("%s: the %s-images file holds no images" % (data_dir, prefix))
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise ValueError("%s: %s images are %dx%d, MNIST-format data is %dx%d"
                         % (data_dir, prefix, images.shape[1], images.shape[2], image_shape[0], image_shape[1]))
    if labels.dtype.kind == "f":
        raise ValueError("%s: the %s-labels file holds floating-point numbers, not class numbers" % (data_dir, prefix))
    return images, labels.astype(np.int32)


def _cifar_batch(path, label_key):
    """(images uint8 [N, 32, 32, 3], labels int32 [N]) of one CIFAR python batch file."""
    batch = plain_pickle.load(path, MAX_CIFAR_BATCH_BYTES)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError("%s: not a CIFAR python batch (no %s and %s entries)" % (path, b"data", label_key))
    data, labels = batch[b"data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or \
            data.shape[1] != CIFAR_IMAGE_BYTES:
        raise ValueError("%s: the data entry is no uint8 array of rows of %d bytes (32x32x3)"
                         % (path, CIFAR_IMAGE_BYTES))
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise ValueError("%s: the %s entry is no list of class numbers" % (path, label_key))
    if len(data) != len(labels) or len(data) == 0:
        raise ValueError("%s: %d images but %d labels" % (path, len(data), len(labels)))
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max:
        raise ValueError("%s: class numbers beyond 32 bits" % path)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int32)


def load_cifar(data_dir, classes=10, train=True):
    """(images uint8 [N, 32, 32, 3], labels int32 [N]) of the CIFAR python version
    (cifar-10-batches-py: data_batch_1..5, test_batch; cifar-100-python: train, test), read
    without running code from the files (bmxnet.plain_pickle)."""
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
        if not os.path.isfile(path):
            raise FileNotFoundError("%s: missing (expected the CIFAR-%d python files in %s)"
                                    % (path, classes, data_dir))
        data, label = _cifar_batch(path, label_key)
        images.append(data)
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
