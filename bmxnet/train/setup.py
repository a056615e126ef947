"""What a training run is built from: the model (checked against the input shape), the
trainer with its LR schedule, the save directory and the log (the kvstore: distributed.py)."""
import logging
import os

import mxnet as mx
from mxnet import gluon

from .. import model_zoo
from ..nn import QConv2D, QDense
from .cli import UsageError, ints, model_options


def error_reason(error):
    """The line of an MXNet error message that says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "Check failed" in line or line.startswith("MXNetError"):
            return line
    return lines[-1] if lines else type(error).__name__


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)


def build_model(args, classes, ctx, input_shape):
    """The --model network, initialised on ctx and run once on a zero batch of input_shape
    (C, H, W), so that inputs it cannot take are one UsageError before training."""
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
    try:
        net(mx.nd.zeros((1,) + tuple(input_shape), ctx=ctx[0]))  # finishes the deferred initialisation
        mx.nd.waitall()
    except (ValueError, mx.base.MXNetError) as error:
        raise UsageError("--model %s cannot take inputs of shape %s (C,H,W): %s"
                         % (args.model, tuple(input_shape), error_reason(error))) from None
    return net


def _phase(mode, base_lr, target_lr, epochs, batches_per_epoch, **options):
    from gluoncv.utils import LRScheduler

    if epochs * batches_per_epoch == 1:
        # GluonCV divides by (updates - 1); a phase of one update keeps its first rate
        mode = "constant"
    return LRScheduler(mode, base_lr=base_lr, target_lr=target_lr, nepochs=epochs,
                       iters_per_epoch=batches_per_epoch, **options)


def build_trainer(args, net, batches_per_epoch, kvstore="local"):
    """gluon.Trainer of --optimizer with GluonCV's schedule of --lr-mode after a linear warm-up."""
    from gluoncv.utils import LRSequential

    main_epochs = args.num_epochs - args.warmup_epochs
    steps = [e - args.warmup_epochs for e in ints(args.lr_decay_epoch, "--lr-decay-epoch")]
    schedules = []
    if args.warmup_epochs:
        schedules.append(_phase("linear", 0, args.lr, args.warmup_epochs, batches_per_epoch))
    schedules.append(_phase(args.lr_mode, args.lr, 0, main_epochs, batches_per_epoch, step_epoch=steps,
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
        raise UsageError("--optimizer/--kvstore: %s" % error_reason(error)) from None


def prepare_save_dir(args):
    """Creates --save-dir (UsageError if it cannot be written)."""
    try:
        os.makedirs(args.save_dir, exist_ok=True)
    except OSError as error:
        raise UsageError("--save-dir %s: cannot create (%s)" % (args.save_dir, error.strerror or error)) from None
    if not os.access(args.save_dir, os.W_OK | os.X_OK):
        raise UsageError("--save-dir %s: not writable" % args.save_dir)


def setup_logging(args):
    """The run's logger: to the console and --logging-file in --save-dir."""
    logger = logging.getLogger("bmxnet.train")
    logger.setLevel(logging.INFO)
    try:
        file_handler = logging.FileHandler(os.path.join(args.save_dir, args.logging_file))
    except OSError as error:
        raise UsageError("--logging-file %s: cannot open (%s)" % (args.logging_file, error.strerror or error)) from None
    for handler in logger.handlers:  # an earlier run in this process
        handler.close()
    logger.handlers = [logging.StreamHandler(), file_handler]
    for handler in logger.handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    return logger
