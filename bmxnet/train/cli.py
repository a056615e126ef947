"""The training scripts' flags (GluonCV's train_imagenet.py plus BMXNet-v2's binary flags) and
their validation: every bad value is one UsageError line before anything is loaded."""
import argparse
import math
import os
import re

import mxnet as mx

from .. import model_zoo

DATASETS = ("imagenet", "cifar10", "cifar100", "mnist", "fashion-mnist", "dummy")
# MXNet accepts any kvstore name (an unknown one silently becomes "local"), so the names are
# ours to check. No dist_async: the optimizer runs on the workers, which async cannot do.
KVSTORES = ("local", "device", "nccl", "dist_sync", "dist_sync_device", "dist_device_sync")
SEED_LIMIT = 2 ** 32  # numpy's seeds are 32-bit
FLOAT32_MAX = 3.4028234663852886e38


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
    add("--kvstore", default="device", help=", ".join(KVSTORES))
    add("--save-dir", default="params")
    add("--save-frequency", type=int, default=10, help="write a checkpoint every N epochs (and after the last)")
    add("--resume-epoch", type=int, default=0, help="epoch to resume from (its checkpoint)")
    add("--resume-params", default="", help="parameters file to resume from (PREFIX-EPOCH.params)")
    add("--resume-states", default="", help="trainer states file of the same checkpoint (PREFIX-EPOCH.states)")
    add("--restart-schedule", action="store_true",
        help="with --resume-params and no --resume-states: fresh optimizer states and the LR schedule "
             "from its start (without this flag resuming needs the states)")
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


def floats(text, flag):
    """Comma-separated finite numbers of a flag, or a UsageError naming it."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise UsageError("%s: expected comma-separated numbers, got %r" % (flag, text))
    return values


def ints(text, flag):
    """Comma-separated integers of a flag, or a UsageError naming it."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError("%s: expected comma-separated integers, got %r" % (flag, text)) from None


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
            options["block_config"] = ints(args.block_config, "--block-config")
        if args.reduction:
            options["reduction"] = floats(args.reduction, "--reduction")
        if args.growth_rate:
            options["growth_rate"] = args.growth_rate
        if args.init_features:
            options["init_features"] = args.init_features
        if args.downsample_structure:
            options["downsample"] = args.downsample_structure
    return options


def _number(flag, value, low=None, high=None, low_open=False, high_open=True):
    """UsageError unless value is a finite number in the interval (open or closed ends)."""
    if value is None:
        return
    inside = math.isfinite(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        interval = "%s%s, %s%s" % ("(" if low_open else "[", "-inf" if low is None else low,
                                   "inf" if high is None else high, ")" if high_open else "]")
        raise UsageError("%s must be in %s, got %s" % (flag, interval, value))
    if isinstance(value, float) and abs(value) > FLOAT32_MAX:
        raise UsageError("%s %s is beyond the float32 numbers MXNet's operators take" % (flag, value))


def _check_numbers(args):
    for flag, value in (("--bits", args.bits), ("--bits-a", args.bits_a)):
        _number(flag, value, 1, 32, high_open=False)
    for flag, value in (("--batch-size", args.batch_size), ("--num-epochs", args.num_epochs),
                        ("--save-frequency", args.save_frequency), ("--input-size", args.input_size),
                        ("--dummy-classes", args.dummy_classes), ("--growth-rate", args.growth_rate),
                        ("--init-features", args.init_features), ("--downsample-sc-groups", args.downsample_sc_groups)):
        _number(flag, value, 1)
    for flag, value in (("--max-train-samples", args.max_train_samples), ("--pad-to", args.pad_to),
                        ("--random-crop-pad", args.random_crop_pad), ("--warmup-epochs", args.warmup_epochs),
                        ("--num-gpus", args.num_gpus), ("--resume-epoch", args.resume_epoch)):
        _number(flag, value, 0)
    _number("--seed", args.seed, 0, SEED_LIMIT)
    _number("--lr", args.lr, 0, low_open=True)
    _number("--lr-decay", args.lr_decay, 0, low_open=True)
    _number("--momentum", args.momentum, 0, 1)
    _number("--wd", args.wd, 0, 1)  # a decay of the whole weight per step or more is no regulariser
    _number("--bnn-plus-lambda", args.bnn_plus_lambda, 0)
    _number("--clip-threshold", args.clip_threshold, 0, low_open=True)
    if any(e < 0 for e in ints(args.lr_decay_epoch, "--lr-decay-epoch")):
        raise UsageError("--lr-decay-epoch: epochs must not be negative, got %r" % args.lr_decay_epoch)
    if args.block_config and min(ints(args.block_config, "--block-config")) <= 0:
        raise UsageError("--block-config: every value must be positive, got %r" % args.block_config)
    if args.reduction and min(floats(args.reduction, "--reduction")) <= 0:
        raise UsageError("--reduction: every value must be positive, got %r" % args.reduction)
    if args.warmup_epochs >= args.num_epochs:
        raise UsageError("--warmup-epochs (%d) must be below --num-epochs (%d)" % (args.warmup_epochs, args.num_epochs))


def _check_resume(args):
    if args.resume_epoch and not args.resume_params:
        raise UsageError("--resume-epoch needs --resume-params (and --resume-states)")
    if args.resume_states and not args.resume_params:
        raise UsageError("--resume-states needs --resume-params (the parameters of the same checkpoint)")
    if args.restart_schedule and not args.resume_params:
        raise UsageError("--restart-schedule is for resuming: it needs --resume-params")
    if not args.resume_params:
        return
    if args.resume_states and args.restart_schedule:
        raise UsageError("--restart-schedule starts the optimizer afresh: leave out --resume-states or the flag")
    if not args.resume_states and not args.restart_schedule:
        raise UsageError("--resume-params without --resume-states would restart the optimizer and its LR schedule; "
                         "give the checkpoint's .states file, or --restart-schedule to start them afresh")
    if args.resume_states and args.resume_epoch < 1:
        raise UsageError("--resume-states needs --resume-epoch, the epoch of the checkpoint (1 or more)")
    if args.resume_epoch >= args.num_epochs:
        raise UsageError("--resume-epoch %d leaves nothing to train with --num-epochs %d; raise --num-epochs to "
                         "continue" % (args.resume_epoch, args.num_epochs))


def check_arguments(args):
    """One-line errors for out-of-range or inconsistent flags, before anything is loaded."""
    if args.approximation != "xnor":
        raise UsageError("--approximation binet (multiple binary bases) is not supported; use xnor")
    _check_numbers(args)
    _check_resume(args)
    if args.model not in model_zoo._models:
        raise UsageError("unknown model %r; available: %s" % (args.model, ", ".join(sorted(model_zoo._models))))
    if args.kvstore not in KVSTORES:
        raise UsageError("--kvstore %s: unknown; use one of %s" % (args.kvstore, ", ".join(KVSTORES)))
    if args.dataset == "imagenet" and (args.pad_to or args.random_crop_pad):
        raise UsageError("--pad-to / --random-crop-pad are for in-memory datasets; ImageNet crops with --input-size")
    if args.dataset == "imagenet" and not (args.rec_train and args.rec_val):
        raise UsageError("--dataset imagenet needs --rec-train and --rec-val RecordIO files")
    if os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        raise UsageError("--save-dir %s exists and is not a directory" % args.save_dir)
    contexts(args)


def contexts(args):
    """Devices from --ctx ("cpu", "gpu(0),gpu(1)") or --num-gpus, each one that exists; the CPU by default."""
    try:
        available = mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build on a machine without a driver
        available = 0
    if args.num_gpus > available:
        raise UsageError("--num-gpus %d: this machine (or this MXNet build) has %d GPUs" % (args.num_gpus, available))
    if not args.ctx:
        return [mx.gpu(i) for i in range(args.num_gpus)] or [mx.cpu()]
    devices = []
    for item in args.ctx.split(","):
        match = re.fullmatch(r"\s*(cpu|gpu)(?:\((\d+)\))?\s*", item)
        if not match:
            raise UsageError("--ctx: expected e.g. cpu or gpu(0),gpu(1), got %r" % args.ctx)
        kind, number = match.group(1), int(match.group(2) or 0)
        if kind == "gpu" and number >= available:
            raise UsageError("--ctx %s: this machine (or this MXNet build) has %d GPUs" % (args.ctx, available))
        devices.append(getattr(mx, kind)(number))
    if len(set(devices)) != len(devices):
        raise UsageError("--ctx %s names a device twice" % args.ctx)
    return devices
