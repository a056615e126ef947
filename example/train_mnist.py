#!/usr/bin/env python
"""Train a binary LeNet on MNIST or Fashion-MNIST (IDX files from a local directory).

    python example/train_mnist.py --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist
"""
import argparse
import logging
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

import bmxnet
from bmxnet import datasets, training
from bmxnet.model_zoo import get_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist", "dummy"], default="fashion-mnist")
    parser.add_argument("--data-dir", default=datasets.FASHION_MNIST_DIR,
                        help="directory with the IDX files (default: Debian's Fashion-MNIST)")
    parser.add_argument("--model", default="lenet_binary")
    parser.add_argument("--num-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (Adam, cosine decay)")
    parser.add_argument("--bits", type=int, default=1, help="weight bits of the binary layers")
    parser.add_argument("--bits-a", type=int, default=1, help="activation bits of the binary layers")
    parser.add_argument("--activation-method", default="approx_sign",
                        choices=["ste", "approx_sign", "swish_sign"])
    parser.add_argument("--clip-threshold", type=float, default=1.0)
    parser.add_argument("--max-train-samples", type=int, default=0, help="use only the first N (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-dir", default="output", help="parameters, exported model, curves")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def dummy_images(rng, count):
    """Noise with a bright 7x7 block whose position encodes the label: learnable in seconds."""
    labels = rng.randint(0, 10, count).astype(np.int32)
    images = rng.randint(0, 128, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 4)
        image[row * 7:row * 7 + 7, col * 7:col * 7 + 7] = 255
    return images, labels


def load_data(args):
    if args.dataset == "dummy":
        rng = np.random.RandomState(args.seed)
        return dummy_images(rng, 1024), dummy_images(rng, 256)
    train = datasets.load_mnist_like(args.data_dir, train=True)
    test = datasets.load_mnist_like(args.data_dir, train=False)
    return train, test


def normalise(images, mean, std):
    return ((images.astype(np.float32) / 255.0 - mean) / std)[:, None, :, :]


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    try:
        (train_x, train_y), (test_x, test_y) = load_data(args)
    except (OSError, ValueError) as error:
        sys.exit("error: %s" % error)
    if args.max_train_samples:
        train_x, train_y = train_x[:args.max_train_samples], train_y[:args.max_train_samples]
    mean, std = train_x.mean() / 255.0, train_x.std() / 255.0
    train_x, test_x = normalise(train_x, mean, std), normalise(test_x, mean, std)

    net = get_model(args.model, classes=10, bits=args.bits, bits_a=args.bits_a,
                    method=args.activation_method, clip=args.clip_threshold)
    net.initialize(mx.init.Xavier(magnitude=2))
    net.hybridize(static_alloc=True, static_shape=True)
    steps = args.num_epochs * ((len(train_x) + args.batch_size - 1) // args.batch_size)
    schedule = mx.lr_scheduler.CosineScheduler(max_update=max(steps, 1), base_lr=args.lr, final_lr=0)
    trainer = gluon.Trainer(net.collect_params(), "adam",
                            {"learning_rate": args.lr, "lr_scheduler": schedule})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    logging.info("bmxnet %s, kernels %s, %d training / %d test images, model %s (%d-bit weights, %d-bit activations)",
                 bmxnet.__version__, bmxnet.active_isa(), len(train_x), len(test_x), args.model,
                 args.bits, args.bits_a)

    history = {key: [] for key in ("train_loss", "train_acc", "test_loss", "test_acc")}
    rng = np.random.RandomState(args.seed)
    start = time.time()
    for epoch in range(1, args.num_epochs + 1):
        loss_sum, correct, seen = 0.0, 0, 0
        batches = tqdm(training.minibatches(train_x, train_y, args.batch_size, rng),
                       total=(len(train_x) + args.batch_size - 1) // args.batch_size,
                       desc="epoch %d/%d" % (epoch, args.num_epochs), disable=args.quiet,
                       leave=False)
        for x, y in batches:
            data, label = mx.nd.array(x), mx.nd.array(y)
            with autograd.record():
                out = net(data)
                loss = loss_fn(out, label)
            loss.backward()
            trainer.step(len(x))
            loss_sum += loss.sum().asscalar()
            correct += int((out.argmax(axis=1) == label.astype("float32")).sum().asscalar())
            seen += len(x)
            batches.set_postfix(loss="%.3f" % (loss_sum / seen), acc="%.3f" % (correct / seen))
        test_acc, test_loss = training.evaluate(net, test_x, test_y)
        for key, value in (("train_loss", loss_sum / seen), ("train_acc", correct / seen),
                           ("test_loss", test_loss), ("test_acc", test_acc)):
            history[key].append(value)
        logging.info("epoch %d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f s",
                     epoch, loss_sum / seen, correct / seen, test_loss, test_acc, time.time() - start)

    os.makedirs(args.save_dir, exist_ok=True)
    prefix = os.path.join(args.save_dir, "%s-%s" % (args.model, args.dataset))
    net.export(prefix)
    curves = prefix + "-curves.png"
    training.save_curves(history, curves, "%s on %s" % (args.model, args.dataset))
    logging.info("test accuracy %.2f%% after %d epochs in %.0f s; model %s-symbol.json, curves %s",
                 100 * history["test_acc"][-1], args.num_epochs, time.time() - start, prefix, curves)
    return history


if __name__ == "__main__":
    main()
