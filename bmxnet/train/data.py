"""The training scripts' data: in-memory datasets (IDX, CIFAR, dummy) or ImageNet RecordIO, as
batch sources whose order depends only on (seed, epoch); labels are checked against the
class count and sizes against the machine's memory before training starts."""
import os

import mxnet as mx
import numpy as np

from .. import augmentation, datasets
from .cli import UsageError, ints

RECORDIO_MAGIC = 0xCED7230A
IMAGENET_CLASSES = 1000
# Bytes per image value while preparing in-memory data: the uint8 images, their float32
# normalised copy and numpy's temporaries.
_BYTES_PER_VALUE = 9


def check_labels(labels, classes, what):
    """UsageError unless every label is a whole number in [0, classes)."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= classes) | (np.floor(labels) != labels)
    if bad.any():
        raise UsageError("%s: label %s is not a class number in [0, %d)" % (what, labels[bad][0], classes))


class ArraySource:
    """Batches of an in-memory dataset; the order of epoch e depends only on (seed, e), so
    an interrupted and resumed run sees the same batches."""

    def __init__(self, images, labels, batch_size, shuffle, seed=0, shard=(0, 1), augment=None):
        rank, workers = shard  # with several workers each trains on every workers-th sample
        self.images, self.labels = images[rank::workers], labels[rank::workers]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment  # augment(images, rng) -> images

    def __len__(self):
        """Batches per epoch."""
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    def batches(self, epoch):
        """(images, labels) NDArray batches of the epoch, shuffled by (seed, epoch) if asked."""
        order = np.arange(len(self.images))
        rng = np.random.RandomState(self.seed * 1000003 + epoch)
        if self.shuffle:
            rng.shuffle(order)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.augment:
                images = self.augment(images, rng)
            yield mx.nd.array(images), mx.nd.array(self.labels[index])


class RecordSource:
    """Batches of an ImageRecordIter (ImageNet RecordIO); labels are checked batch by batch,
    since reading them all up front would read the whole dataset."""

    def __init__(self, iterator, count, batch_size, path, classes=IMAGENET_CLASSES):
        self.iterator, self.count, self.batch_size = iterator, count, batch_size
        self.path, self.classes = path, classes

    def __len__(self):
        return (self.count + self.batch_size - 1) // self.batch_size

    def batches(self, epoch):
        """(images, labels) NDArray batches of the record iterator, labels checked."""
        self.iterator.reset()
        for batch in self.iterator:
            label = batch.label[0]
            check_labels(label.asnumpy(), self.classes, self.path)
            yield batch.data[0], label


def _check_recordio(path, flag):
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or device would block the reader
        raise UsageError("%s %s: not a regular file" % (flag, path))
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise UsageError("%s %s: cannot read (%s)" % (flag, path, error.strerror)) from None
    if len(head) < 4 or int.from_bytes(head, "little") != RECORDIO_MAGIC:
        raise UsageError("%s %s: not a RecordIO file (bad magic number)" % (flag, path))


def _count_records(path, flag):
    index = os.path.splitext(path)[0] + ".idx"
    if os.path.isfile(index):
        with open(index) as f:
            count = sum(1 for line in f if line.strip())
    else:
        count = 0
        record = mx.recordio.MXRecordIO(path, "r")
        while record.read() is not None:
            count += 1
        record.close()
    if count == 0:
        raise UsageError("%s %s: holds no images" % (flag, path))
    return count


def _imagenet(args):
    counts = {}
    for flag, path in (("--rec-train", args.rec_train), ("--rec-val", args.rec_val)):
        _check_recordio(path, flag)
        counts[flag] = _count_records(path, flag)
        if counts[flag] < args.batch_size:  # ImageRecordIter stops with an error on its first batch
            raise UsageError("%s %s: %d images, fewer than --batch-size %d"
                             % (flag, path, counts[flag], args.batch_size))
    size = args.input_size
    mean = dict(mean_r=123.68, mean_g=116.779, mean_b=103.939, std_r=58.393, std_g=57.12, std_b=57.375)
    try:
        train = mx.io.ImageRecordIter(path_imgrec=args.rec_train, data_shape=(3, size, size),
                                      batch_size=args.batch_size, shuffle=True, rand_crop=True,
                                      rand_mirror=True, seed=args.seed, **mean)
        val = mx.io.ImageRecordIter(path_imgrec=args.rec_val, data_shape=(3, size, size),
                                    batch_size=args.batch_size, shuffle=False, resize=size * 8 // 7, **mean)
    except mx.base.MXNetError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise UsageError("--rec-train/--rec-val: %s" % (lines[-1] if lines else "cannot be read")) from None
    return (RecordSource(train, counts["--rec-train"], args.batch_size, args.rec_train),
            RecordSource(val, counts["--rec-val"], args.batch_size, args.rec_val),
            IMAGENET_CLASSES, (3, size, size))


def _normaliser(train_images):
    """NHWC or NHW uint8 -> NCHW float32, normalised per channel with the statistics of the
    training images; also returns the value black becomes (padding of augmentation)."""
    if train_images.ndim == 3:
        train_images = train_images[..., None]
    mean = (train_images.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)
    std = (train_images.std(axis=(0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)
    std[std == 0] = 1  # images of one colour: nothing to scale

    def normalise(images):
        if images.ndim == 3:
            images = images[..., None]
        out = (images.astype(np.float32) / 255.0 - mean) / std
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return normalise, -mean / std


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(flag, images, height, width, channels):
    """UsageError (before allocating) if `images` images of that size cannot fit in memory."""
    needed = images * height * width * channels * _BYTES_PER_VALUE
    memory = _physical_memory()
    if memory and needed > memory:
        raise UsageError("%s: %d images of %dx%dx%d need %.3g GB, more than this machine's %.3g GB of memory"
                         % (flag, images, height, width, channels, needed / 1e9, memory / 1e9))


def _in_memory_dataset(args):
    """((train images, labels), (validation images, labels), classes) as uint8 NHW(C) arrays."""
    if args.dataset in ("mnist", "fashion-mnist"):
        directory = args.data_dir or datasets.FASHION_MNIST_DIR
        return datasets.load_mnist_like(directory, True), datasets.load_mnist_like(directory, False), 10
    if args.dataset in ("cifar10", "cifar100"):
        if not args.data_dir:
            raise UsageError("--dataset %s needs --data-dir with the CIFAR python files" % args.dataset)
        classes = 10 if args.dataset == "cifar10" else 100
        return (datasets.load_cifar(args.data_dir, classes, train=True),
                datasets.load_cifar(args.data_dir, classes, train=False), classes)
    shape = ints(args.dummy_shape, "--dummy-shape")
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError("--dummy-shape must be H,W,C, got %r" % args.dummy_shape)
    _check_fits_in_memory("--dummy-shape", 1024 + 256, *shape)
    return (datasets.dummy(shape, args.dummy_classes, 1024, seed=args.seed),
            datasets.dummy(shape, args.dummy_classes, 256, seed=args.seed + 1), args.dummy_classes)


def load_data(args, shard=(0, 1)):
    """(train source, validation source, classes, input shape C,H,W) for --dataset; the
    training data is sharded by (rank, number of workers)."""
    if args.dataset == "imagenet":
        return _imagenet(args)
    try:
        (train_x, train_y), (val_x, val_y), classes = _in_memory_dataset(args)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    check_labels(train_y, classes, "training data")
    check_labels(val_y, classes, "validation data")
    if args.max_train_samples:
        train_x, train_y = train_x[:args.max_train_samples], train_y[:args.max_train_samples]
    rank, workers = shard
    if len(train_x) < workers:
        raise UsageError("%d training images cannot be shared by %d workers" % (len(train_x), workers))
    if args.pad_to:
        channels = 1 if train_x.ndim == 3 else train_x.shape[3]
        _check_fits_in_memory("--pad-to %d" % args.pad_to, len(train_x) + len(val_x), args.pad_to, args.pad_to,
                              channels)
        try:
            train_x, val_x = augmentation.pad_to(train_x, args.pad_to), augmentation.pad_to(val_x, args.pad_to)
        except ValueError as error:
            raise UsageError(str(error)) from None
    normalise, black = _normaliser(train_x)
    augment = None
    if args.random_crop_pad or args.random_flip:
        try:
            augmentation.check_crop_pad(args.random_crop_pad, *train_x.shape[1:3])
        except ValueError as error:
            raise UsageError(str(error)) from None

        def augment(images, rng):
            return augmentation.random_crop_flip(images, rng, args.random_crop_pad, args.random_flip, black)
    train_images = normalise(train_x)
    return (ArraySource(train_images, train_y, args.batch_size, True, args.seed, shard, augment),
            ArraySource(normalise(val_x), val_y, args.batch_size, False), classes, train_images.shape[1:])
