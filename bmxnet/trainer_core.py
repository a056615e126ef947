"""The training core shared by example/train_imagenet.py, train_cifar10.py and train_mnist.py:
GluonCV-style arguments with BMXNet's binary flags, data sources, model, optimizer and
schedule, checkpoints that resume exactly, progress bars, log file, curves and export."""
import argparse
import json
import logging
import os
import pickle
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from . import augmentation, datasets, model_zoo
from .fileio import atomic_write
from .nn import QConv2D, QDense
from .training import save_curves

DATASETS = ("imagenet", "cifar10", "cifar100", "mnist", "fashion-mnist", "dummy")


class UsageError(Exception):
    """Bad flags or data, reported as one line before training starts."""


def argument_parser(description, **defaults):
    """argparse with GluonCV's train_imagenet.py flags and BMXNet-v2's binary flags."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = p.add_argument
    add("--dataset", choices=DATASETS, default="imagenet")
    add("--data-dir", default=None, help="directory of the dataset files (IDX, CIFAR python batches)")
    add("--rec-train", help="ImageNet training RecordIO file (.rec with its .idx)")
    add("--rec-val", help="ImageNet validation RecordIO file")
    add("--input-size", type=int, default=224, help="ImageNet crop size")
    add("--dummy-shape", default="32,32,3", help="H,W,C of --dataset dummy images")
    add("--dummy-classes", type=int, default=10)
    add("--max-train-samples", type=int, default=0, help="use only the first N training samples (0: all)")
    add("--pad-to", type=int, default=0, help="centre in-memory images on a black SxS canvas (e.g. 32 for MNIST)")
    add("--random-crop-pad", type=int, default=0,
        help="training augmentation: pad by P pixels, crop back at a random offset (CIFAR: 4)")
    add("--random-flip", action="store_true", help="training augmentation: mirror half of the images")
    add("--model", default="resnete18")
    add("--batch-size", type=int, default=128)
    add("--num-epochs", type=int, default=120)
    add("--lr", type=float, default=0.002)
    add("--lr-mode", choices=["cosine", "step", "poly", "linear"], default="cosine")
    add("--lr-decay", type=float, default=0.1, help="factor of the step schedule")
    add("--lr-decay-epoch", default="40,60", help="epochs of the step schedule")
    add("--warmup-epochs", type=int, default=0)
    add("--optimizer", default="radam", help="radam, adam, sgd, nag, ...")
    add("--momentum", type=float, default=0.9)
    add("--wd", type=float, default=0.0, help="weight decay (never applied to binary weights)")
    add("--mode", choices=["hybrid", "imperative"], default="hybrid")
    add("--num-gpus", type=int, default=0)
    add("--ctx", default=None, help="e.g. cpu or gpu(0); default: cpu, or the GPUs of --num-gpus")
    add("--kvstore", default="device", help="device, local, dist_sync, ...")
    add("--save-dir", default="params")
    add("--save-frequency", type=int, default=10)
    add("--resume-epoch", type=int, default=0, help="epoch to resume from (its checkpoint)")
    add("--resume-params", default="", help="parameters file to resume from")
    add("--resume-states", default="", help="trainer states file to resume from")
    add("--logging-file", default="train.log")
    add("--seed", type=int, default=1)
    add("--quiet", action="store_true", help="no progress bars")
    # binary flags (BMXNet-v2)
    add("--bits", type=int, default=1, help="weight bits of binary layers")
    add("--bits-a", type=int, default=1, help="activation bits of binary layers")
    add("--activation-method", choices=["ste", "approx_sign", "swish_sign"], default=None)
    add("--weight-quantization", choices=["none", "xnor"], default="none", help="scaling of binary weights")
    add("--clip-threshold", type=float, default=None)
    add("--approximation", choices=["xnor", "binet"], default="xnor",
        help="xnor: single binary base (binet multi-base approximation is not supported)")
    add("--initial-layers", choices=["imagenet", "grouped_stem", "thumbnail"], default=None)
    add("--fp-downsample-sc", action="store_true", help="ResNetE: full-precision downsampling shortcut")
    add("--pool-downsample-sc", type=int, choices=[0, 1], default=1,
        help="ResNetE: 1 = AvgPool 2x2 then 1x1 conv in the downsampling shortcut, 0 = strided 1x1 conv")
    add("--downsample-sc-groups", type=int, default=None, help="MeliusNet: groups of the 1x1 transition convs")
    add("--reduction", default=None, help="BinaryDenseNet: reduction per transition, e.g. 2.7,2.7,2.2")
    add("--growth-rate", type=int, default=None)
    add("--init-features", type=int, default=None)
    add("--block-config", default=None, help="BinaryDenseNet: blocks per stage, e.g. 6,6,6,5")
    add("--downsample-structure", choices=["fp", "binary"], default=None)
    add("--bnn-plus-lambda", type=float, default=0.0, help="weight of the BNN+ regularizer (0: off)")
    p.set_defaults(**defaults)
    return p


def _floats(text, flag):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError("%s: expected comma-separated numbers, got %r" % (flag, text)) from None


def model_options(args):
    """Keyword arguments of model_zoo.get_model from the flags that are set."""
    options = {"bits": args.bits, "bits_a": args.bits_a}
    if args.activation_method:
        options["method"] = args.activation_method
    if args.clip_threshold is not None:
        options["clip"] = args.clip_threshold
    if args.weight_quantization == "xnor":
        options["scaling"] = "xnor"
    if args.initial_layers:
        options["initial_layers"] = args.initial_layers
    if args.model.startswith(("resnete", "birealnet")):
        if args.fp_downsample_sc or args.downsample_structure:
            options["downsample"] = "fp" if args.fp_downsample_sc else args.downsample_structure
        options["pool_downsample"] = bool(args.pool_downsample_sc)
    if args.model.startswith("meliusnet") and args.downsample_sc_groups:
        options["groups"] = args.downsample_sc_groups
    if args.model == "binary_densenet":
        if args.block_config:
            options["block_config"] = tuple(int(v) for v in _floats(args.block_config, "--block-config"))
        if args.reduction:
            options["reduction"] = _floats(args.reduction, "--reduction")
        if args.growth_rate:
            options["growth_rate"] = args.growth_rate
        if args.init_features:
            options["init_features"] = args.init_features
        if args.downsample_structure:
            options["downsample"] = args.downsample_structure
    return options


def check_arguments(args):
    """One-line errors for inconsistent flags, before anything is loaded."""
    if args.approximation != "xnor":
        raise UsageError("--approximation binet (multiple binary bases) is not supported; use xnor")
    for flag, value in (("--bits", args.bits), ("--bits-a", args.bits_a)):
        if not 1 <= value <= 32:
            raise UsageError("%s must be in [1, 32], got %d" % (flag, value))
    if args.batch_size < 1 or args.num_epochs < 1:
        raise UsageError("--batch-size and --num-epochs must be positive")
    if args.resume_epoch and not args.resume_params:
        raise UsageError("--resume-epoch needs --resume-params (and --resume-states)")
    if args.warmup_epochs >= args.num_epochs:
        raise UsageError("--warmup-epochs (%d) must be below --num-epochs (%d)" % (args.warmup_epochs, args.num_epochs))
    if args.model not in model_zoo._models:
        raise UsageError("unknown model %r; available: %s" % (args.model, ", ".join(sorted(model_zoo._models))))
    if min(args.pad_to, args.random_crop_pad) < 0:
        raise UsageError("--pad-to and --random-crop-pad must not be negative")
    if args.dataset == "imagenet" and (args.pad_to or args.random_crop_pad):
        raise UsageError("--pad-to / --random-crop-pad are for in-memory datasets; ImageNet crops with --input-size")
    if args.dataset == "imagenet" and not (args.rec_train and args.rec_val):
        raise UsageError("--dataset imagenet needs --rec-train and --rec-val RecordIO files")


class ArraySource:
    """Batches of an in-memory dataset; the order of epoch e depends only on (seed, e), so
    an interrupted and resumed run sees the same batches."""

    def __init__(self, images, labels, batch_size, shuffle, seed=0, shard=(0, 1), augment=None):
        rank, workers = shard  # with several workers each trains on every workers-th sample
        self.images, self.labels = images[rank::workers], labels[rank::workers]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment  # augment(images, rng) -> images

    def __len__(self):
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    def batches(self, epoch):
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
    """Batches of an ImageRecordIter (ImageNet RecordIO)."""

    def __init__(self, iterator, count, batch_size):
        self.iterator, self.count, self.batch_size = iterator, count, batch_size

    def __len__(self):
        return (self.count + self.batch_size - 1) // self.batch_size

    def batches(self, epoch):
        self.iterator.reset()
        for batch in self.iterator:
            yield batch.data[0], batch.label[0]


RECORDIO_MAGIC = 0xCED7230A


def _check_recordio(path, flag):
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise UsageError("%s %s: cannot read (%s)" % (flag, path, error.strerror)) from None
    if len(head) < 4 or int.from_bytes(head, "little") != RECORDIO_MAGIC:
        raise UsageError("%s %s: not a RecordIO file (bad magic number)" % (flag, path))


def _count_records(path):
    index = os.path.splitext(path)[0] + ".idx"
    if os.path.isfile(index):
        with open(index) as f:
            return sum(1 for line in f if line.strip())
    count = 0
    record = mx.recordio.MXRecordIO(path, "r")
    while record.read() is not None:
        count += 1
    record.close()
    return count


def _imagenet(args):
    for flag, path in (("--rec-train", args.rec_train), ("--rec-val", args.rec_val)):
        _check_recordio(path, flag)
    size = args.input_size
    mean = dict(mean_r=123.68, mean_g=116.779, mean_b=103.939, std_r=58.393, std_g=57.12, std_b=57.375)
    train = mx.io.ImageRecordIter(path_imgrec=args.rec_train, data_shape=(3, size, size),
                                  batch_size=args.batch_size, shuffle=True, rand_crop=True,
                                  rand_mirror=True, seed=args.seed, **mean)
    val = mx.io.ImageRecordIter(path_imgrec=args.rec_val, data_shape=(3, size, size),
                                batch_size=args.batch_size, shuffle=False, resize=size * 8 // 7, **mean)
    classes = 1000
    return (RecordSource(train, _count_records(args.rec_train), args.batch_size),
            RecordSource(val, _count_records(args.rec_val), args.batch_size), classes, (3, size, size))


def _normaliser(train_images):
    """NHWC or NHW uint8 -> NCHW float32, normalised per channel with the statistics of the
    training images; also returns the value black becomes (padding of augmentation)."""
    if train_images.ndim == 3:
        train_images = train_images[..., None]
    mean = (train_images.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)
    std = (train_images.std(axis=(0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)

    def normalise(images):
        if images.ndim == 3:
            images = images[..., None]
        out = (images.astype(np.float32) / 255.0 - mean) / std
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return normalise, -mean / std


def load_data(args, shard=(0, 1)):
    """(train source, validation source, classes, input shape C,H,W) for --dataset; the
    training data is sharded by (rank, number of workers)."""
    if args.dataset == "imagenet":
        return _imagenet(args)
    try:
        if args.dataset in ("mnist", "fashion-mnist"):
            directory = args.data_dir or datasets.FASHION_MNIST_DIR
            train = datasets.load_mnist_like(directory, train=True)
            val = datasets.load_mnist_like(directory, train=False)
            classes = 10
        elif args.dataset in ("cifar10", "cifar100"):
            if not args.data_dir:
                raise UsageError("--dataset %s needs --data-dir with the CIFAR python files" % args.dataset)
            classes = 10 if args.dataset == "cifar10" else 100
            train = datasets.load_cifar(args.data_dir, classes, train=True)
            val = datasets.load_cifar(args.data_dir, classes, train=False)
        else:
            shape = tuple(int(v) for v in _floats(args.dummy_shape, "--dummy-shape"))
            if len(shape) != 3 or min(shape) < 1:
                raise UsageError("--dummy-shape must be H,W,C, got %r" % args.dummy_shape)
            classes = args.dummy_classes
            train = datasets.dummy(shape, classes, 1024, seed=args.seed)
            val = datasets.dummy(shape, classes, 256, seed=args.seed + 1)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    (train_x, train_y), (val_x, val_y) = train, val
    if args.max_train_samples:
        train_x, train_y = train_x[:args.max_train_samples], train_y[:args.max_train_samples]
    if args.pad_to:
        try:
            train_x, val_x = augmentation.pad_to(train_x, args.pad_to), augmentation.pad_to(val_x, args.pad_to)
        except ValueError as error:
            raise UsageError(str(error)) from None
    normalise, black = _normaliser(train_x)
    augment = None
    if args.random_crop_pad or args.random_flip:
        def augment(images, rng):
            return augmentation.random_crop_flip(images, rng, args.random_crop_pad, args.random_flip, black)
    train_images = normalise(train_x)
    return (ArraySource(train_images, train_y, args.batch_size, True, args.seed, shard, augment),
            ArraySource(normalise(val_x), val_y, args.batch_size, False), classes, train_images.shape[1:])


def contexts(args):
    """Devices from --ctx ("cpu", "gpu(0),gpu(1)") or --num-gpus; the CPU by default."""
    import re
    if args.ctx:
        devices = []
        for item in args.ctx.split(","):
            match = re.fullmatch(r"\s*(cpu|gpu)(?:\((\d+)\))?\s*", item)
            if not match:
                raise UsageError("--ctx: expected e.g. cpu or gpu(0),gpu(1), got %r" % args.ctx)
            devices.append(getattr(mx, match.group(1))(int(match.group(2) or 0)))
        return devices
    return [mx.gpu(i) for i in range(args.num_gpus)] or [mx.cpu()]


def build_model(args, classes, ctx):
    options = model_options(args)
    if args.bnn_plus_lambda > 0:
        options.update(regularizer="l1", reg_lambda=args.bnn_plus_lambda)
    try:
        net = model_zoo.get_model(args.model, classes=classes, **options)
    except (TypeError, ValueError) as error:
        raise UsageError("--model %s: %s" % (args.model, error)) from None
    net.initialize(mx.init.Xavier(magnitude=2), ctx=ctx)
    for block in _walk(net):  # papers: no weight decay on binary weights
        if isinstance(block, (QConv2D, QDense)):
            block.weight.wd_mult = 0.0
    if args.mode == "hybrid":
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)


def create_kvstore(args):
    """The kvstore (a dist_* store connects to the parameter servers now) and (rank, workers)."""
    if args.kvstore.startswith("dist"):
        try:
            kv = mx.kv.create(args.kvstore)
        except mx.base.MXNetError as error:
            raise UsageError("--kvstore %s: %s" % (args.kvstore, str(error).strip().splitlines()[-1])) from None
        return kv, (kv.rank, kv.num_workers)
    return ("local" if args.kvstore == "device" and not args.num_gpus else args.kvstore), (0, 1)


def _broadcast_weights(trainer):
    """Every worker starts from rank 0's weights, sent before the first gradient is pushed.

    Trainer.step would broadcast lazily, pushing the parameter arrays themselves right
    before the first gradients. After a oneDNN forward those arrays may be in oneDNN layout,
    and MXNet 1.9.1 then lets a pull overtake rank 0's initial push: the server stops with
    "init N first", or a worker pulls summed gradients as its weights (7 of 15 loaded runs).
    Default-layout copies do not have that race."""
    trainer._init_kvstore()
    kv = trainer._kvstore
    for param in trainer._params_to_init:
        initial = mx.nd.array(param.data().asnumpy())
        kv.broadcast(trainer._param2idx[param.name], initial, out=param.list_data())
    trainer._params_to_init = []
    mx.nd.waitall()


def build_trainer(args, net, batches_per_epoch, kvstore="local"):
    from gluoncv.utils import LRScheduler, LRSequential

    main_epochs = args.num_epochs - args.warmup_epochs
    steps = [int(e) - args.warmup_epochs for e in _floats(args.lr_decay_epoch, "--lr-decay-epoch")]
    schedules = []
    if args.warmup_epochs:
        schedules.append(LRScheduler("linear", base_lr=0, target_lr=args.lr, nepochs=args.warmup_epochs,
                                     iters_per_epoch=batches_per_epoch))
    schedules.append(LRScheduler(args.lr_mode, base_lr=args.lr, target_lr=0, nepochs=main_epochs,
                                 iters_per_epoch=batches_per_epoch, step_epoch=steps,
                                 step_factor=args.lr_decay))
    params = {"learning_rate": args.lr, "wd": args.wd, "lr_scheduler": LRSequential(schedules)}
    if args.optimizer in ("sgd", "nag"):
        params["momentum"] = args.momentum
    try:
        # The optimizer runs on every worker (servers only sum gradients), so the LR schedule,
        # the gradient rescaling and the trainer states stay where the checkpoints are.
        return gluon.Trainer(net.collect_params(), args.optimizer, params, kvstore=kvstore,
                             update_on_kvstore=False if not isinstance(kvstore, str) else None)
    except (ValueError, mx.base.MXNetError) as error:
        raise UsageError("--optimizer/--kvstore: %s" % str(error).strip().splitlines()[-1]) from None


class Checkpoints:
    """PREFIX-EPOCH.params / .states / .json, and PREFIX-best.params, each written atomically."""

    def __init__(self, directory, prefix):
        self.prefix = os.path.join(directory, prefix)

    def save(self, name, net, trainer, record):
        base = "%s-%s" % (self.prefix, name)
        atomic_write(base + ".params", net.save_parameters)
        atomic_write(base + ".states", trainer.save_states)
        atomic_write(base + ".json", lambda temp: open(temp, "w").write(json.dumps(record)))

    @staticmethod
    def restore(args, net, trainer, ctx):
        """(epochs done, history) from --resume-params/--resume-states."""
        try:
            net.load_parameters(args.resume_params, ctx=ctx)
            if args.resume_states:
                trainer.load_states(args.resume_states)
        except (OSError, mx.base.MXNetError, AssertionError, pickle.UnpicklingError) as error:
            raise UsageError("cannot resume from %s: %s" % (args.resume_params, str(error).strip().splitlines()[-1])) from None
        record_file = os.path.splitext(args.resume_params)[0] + ".json"
        history = json.load(open(record_file))["history"] if os.path.isfile(record_file) else {}
        return args.resume_epoch, history


def evaluate(net, source, ctx):
    """(accuracy, mean cross-entropy) over a data source."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    correct = seen = 0
    loss_sum = 0.0
    for data, label in source.batches(0):
        out = net(data.as_in_context(ctx[0]))
        label = label.as_in_context(ctx[0])
        loss_sum += loss_fn(out, label).sum().asscalar()
        correct += int((out.argmax(axis=1) == label.astype("float32")).sum().asscalar())
        seen += data.shape[0]
    return correct / max(seen, 1), loss_sum / max(seen, 1)


def _setup_logging(args):
    os.makedirs(args.save_dir, exist_ok=True)
    logger = logging.getLogger("bmxnet.train")
    logger.setLevel(logging.INFO)
    logger.handlers = [logging.StreamHandler(), logging.FileHandler(os.path.join(args.save_dir, args.logging_file))]
    for handler in logger.handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    return logger


def train(args):
    """Runs a whole training as the flags say; returns the history (lists per epoch)."""
    from .nn import bnn_plus_loss

    check_arguments(args)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    kvstore, (rank, workers) = create_kvstore(args)
    if workers > 1:  # every worker keeps its own log and checkpoints
        args.save_dir = os.path.join(args.save_dir, "rank%d" % rank)
    train_data, val_data, classes, input_shape = load_data(args, (rank, workers))
    ctx = contexts(args)
    net = build_model(args, classes, ctx)
    trainer = build_trainer(args, net, len(train_data), kvstore)
    log = _setup_logging(args)
    prefix = "%s-%s" % (args.model, args.dataset)
    checkpoints = Checkpoints(args.save_dir, prefix)
    first_epoch, history = 0, {}
    net(mx.nd.zeros((1,) + tuple(input_shape), ctx=ctx[0]))  # finish deferred init first
    if args.resume_params:
        first_epoch, history = Checkpoints.restore(args, net, trainer, ctx)
    if workers > 1:
        _broadcast_weights(trainer)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        history.setdefault(key, [])
    log.info("%s on %s: %d training batches, %s, %s", args.model, args.dataset, len(train_data),
             model_options(args), ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    best = max(history["test_acc"], default=-1.0)
    start = time.time()
    for epoch in range(first_epoch + 1, args.num_epochs + 1):
        loss_sum, correct, seen = 0.0, 0, 0
        progress = tqdm(train_data.batches(epoch), total=len(train_data), leave=False,
                        desc="epoch %d/%d" % (epoch, args.num_epochs), disable=args.quiet)
        for data, label in progress:
            datas = gluon.utils.split_and_load(data, ctx, even_split=False)
            labels = gluon.utils.split_and_load(label, ctx, even_split=False)
            with autograd.record():
                outputs = [net(x) for x in datas]
                losses = [loss_fn(o, y) for o, y in zip(outputs, labels)]
                total = [l.sum() + (bnn_plus_loss(net, y.context) if args.bnn_plus_lambda > 0 else 0)
                         for l, y in zip(losses, labels)]
            autograd.backward(total)
            trainer.step(data.shape[0] * workers)  # dist_sync sums the workers' gradients
            loss_sum += sum(l.sum().asscalar() for l in losses)
            correct += sum(int((o.argmax(axis=1) == y.astype("float32")).sum().asscalar())
                           for o, y in zip(outputs, labels))
            seen += data.shape[0]
            progress.set_postfix(loss="%.3f" % (loss_sum / seen), acc="%.3f" % (correct / seen))
        test_acc, test_loss = evaluate(net, val_data, ctx)
        for key, value in (("train_loss", loss_sum / seen), ("train_acc", correct / seen),
                           ("test_loss", test_loss), ("test_acc", test_acc)):
            history[key].append(value)
        log.info("[epoch %d] train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.2e | %.0f s",
                 epoch, loss_sum / seen, correct / seen, test_loss, test_acc, trainer.learning_rate,
                 time.time() - start)
        record = {"epoch": epoch, "history": history}
        if epoch % args.save_frequency == 0 or epoch == args.num_epochs:
            checkpoints.save("%04d" % epoch, net, trainer, record)
        if test_acc > best:
            best = test_acc
            checkpoints.save("best", net, trainer, record)
        save_curves(history, os.path.join(args.save_dir, prefix + "-curves.png"), "%s on %s" % (args.model, args.dataset))
    if args.mode != "hybrid":
        net.hybridize()
        net(mx.nd.zeros((1,) + tuple(input_shape), ctx=ctx[0]))
    net.export(os.path.join(args.save_dir, prefix))
    log.info("final val accuracy %.4f (best %.4f); exported %s-symbol.json / -0000.params",
             history["test_acc"][-1] if history["test_acc"] else float("nan"), best,
             os.path.join(args.save_dir, prefix))
    return history
