"""The training loop shared by the example training scripts: epochs over the batches with a
progress bar on a terminal, validation, checkpoints, the log file, curves and the exported
model (the other jobs: the package's other modules)."""
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from .checkpoints import Checkpoints, resume
from .cli import DATASETS, UsageError, argument_parser, check_arguments, contexts, model_options  # noqa: F401
from .data import ArraySource, RecordSource, load_data  # noqa: F401
from ..fileio import TEMP_PREFIX, remove_leftovers, remove_quietly, sync_directory
from .distributed import broadcast_weights, create_kvstore
from .setup import build_model, build_trainer, prepare_save_dir, setup_logging
from .curves import save_curves


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


def export_model(net, prefix):
    """net.export(prefix) (PREFIX-symbol.json, PREFIX-0000.params), each file whole or absent."""
    directory, name = os.path.split(prefix)
    temp_prefix = os.path.join(directory, "%s%d-export-%s" % (TEMP_PREFIX, os.getpid(), name))
    suffixes = ("-symbol.json", "-0000.params")
    try:
        net.export(temp_prefix)
        for suffix in suffixes:
            os.replace(temp_prefix + suffix, prefix + suffix)
        sync_directory(directory or ".")
    finally:
        for suffix in suffixes:
            remove_quietly(temp_prefix + suffix)


def _train_epoch(args, net, trainer, batches, epoch, ctx, workers):
    """One pass over the training batches; returns (mean loss, accuracy)."""
    from ..nn import bnn_plus_loss

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_sum, correct, seen = 0.0, 0, 0
    # a progress bar only on a terminal: in logs it would be a line per update
    progress = tqdm(batches.batches(epoch), total=len(batches), leave=False,
                    desc="epoch %d/%d" % (epoch, args.num_epochs),
                    disable=args.quiet or not (sys.stdout.isatty() and sys.stderr.isatty()))
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
    return loss_sum / seen, correct / seen


def train(args):
    """Runs a whole training as the flags say; returns the history (lists per epoch)."""
    check_arguments(args)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    ctx = contexts(args)
    kvstore, (rank, workers) = create_kvstore(args)
    if workers > 1:  # every worker keeps its own log and checkpoints
        args.save_dir = os.path.join(args.save_dir, "rank%d" % rank)
    train_data, val_data, classes, input_shape = load_data(args, (rank, workers))
    net = build_model(args, classes, ctx, input_shape)
    trainer = build_trainer(args, net, len(train_data), kvstore)
    first_epoch, history = 0, {}
    if args.resume_params:
        first_epoch, history = resume(args, net, trainer, len(train_data), ctx)
    prepare_save_dir(args)
    log = setup_logging(args)
    leftovers = remove_leftovers(args.save_dir)
    if leftovers:
        log.info("removed %d temporary files of an interrupted run: %s", len(leftovers), ", ".join(leftovers))
    if workers > 1:
        broadcast_weights(trainer)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        history.setdefault(key, [])
    log.info("%s on %s: %d training batches, %s, %s", args.model, args.dataset, len(train_data),
             model_options(args), ctx)
    prefix = "%s-%s" % (args.model, args.dataset)
    checkpoints = Checkpoints(args.save_dir, prefix)
    best = max(history["test_acc"], default=-1.0)
    start = time.time()
    for epoch in range(first_epoch + 1, args.num_epochs + 1):
        train_loss, train_acc = _train_epoch(args, net, trainer, train_data, epoch, ctx, workers)
        test_acc, test_loss = evaluate(net, val_data, ctx)
        for key, value in (("train_loss", train_loss), ("train_acc", train_acc),
                           ("test_loss", test_loss), ("test_acc", test_acc)):
            history[key].append(value)
        log.info("[epoch %d] train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.2e | %.0f s",
                 epoch, train_loss, train_acc, test_loss, test_acc, trainer.learning_rate, time.time() - start)
        if epoch % args.save_frequency == 0 or epoch == args.num_epochs:
            checkpoints.save("%04d" % epoch, net, trainer, epoch, history, len(train_data))
        if test_acc > best:
            best = test_acc
            checkpoints.save("best", net, trainer, epoch, history, len(train_data))
        save_curves(history, os.path.join(args.save_dir, prefix + "-curves.png"), "%s on %s" % (args.model, args.dataset))
    if args.mode != "hybrid":
        net.hybridize()
        net(mx.nd.zeros((1,) + tuple(input_shape), ctx=ctx[0]))
    export_model(net, os.path.join(args.save_dir, prefix))
    log.info("final val accuracy %.4f (best %.4f); exported %s-symbol.json / -0000.params",
             history["test_acc"][-1] if history["test_acc"] else float("nan"), best,
             os.path.join(args.save_dir, prefix))
    return history
