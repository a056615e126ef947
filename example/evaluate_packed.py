#!/usr/bin/env python
"""Compare a float-simulated binary model with its packed conversion on MNIST-format data.

    model-converter PREFIX-symbol.json PREFIX-0000.params
    python example/evaluate_packed.py PREFIX --data-dir /usr/share/datasets/fashion-mnist

Prints test accuracy, file size and images/s of both (same process, same threads) and
whether their predictions agree on every image.
"""
import argparse
import os
import sys
import time

import mxnet as mx
import numpy as np

import bmxnet
from bmxnet import datasets
from bmxnet.converter import default_out_prefix


def load_block(prefix):
    block = bmxnet.import_block(prefix + "-symbol.json", prefix + "-0000.params")
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def predict(block, images, batch_size):
    return np.concatenate([block(mx.nd.array(images[i:i + batch_size])).asnumpy()
                           for i in range(0, len(images), batch_size)])


def images_per_second(block, images, batch_size, repeats=3):
    """Median throughput over `repeats` passes, after one warm-up pass."""
    predict(block, images[:batch_size * 2], batch_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(block, images, batch_size)
        times.append(time.perf_counter() - start)
    return len(images) / float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix", help="exported float-simulated model (PREFIX-symbol.json, PREFIX-0000.params)")
    parser.add_argument("--packed-prefix", help="converted model (default: binarized_PREFIX)")
    parser.add_argument("--data-dir", default=datasets.FASHION_MNIST_DIR)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    packed_prefix = args.packed_prefix or default_out_prefix(args.prefix + "-symbol.json")
    try:
        train_images, _ = datasets.load_mnist_like(args.data_dir, train=True)
        images, labels = datasets.load_mnist_like(args.data_dir, train=False)
    except (OSError, ValueError) as error:
        sys.exit("error: %s" % error)
    mean, std = train_images.mean() / 255.0, train_images.std() / 255.0
    images = ((images.astype(np.float32) / 255.0 - mean) / std)[:, None, :, :]

    rows, logits = [], {}
    for name, prefix in (("float-simulated", args.prefix), ("packed (xnor)", packed_prefix)):
        block = load_block(prefix)
        logits[name] = predict(block, images, args.batch_size)
        size = sum(os.path.getsize(prefix + suffix) for suffix in ("-symbol.json", "-0000.params"))
        rows.append((name, (logits[name].argmax(axis=1) == labels).mean(), size,
                     images_per_second(block, images, args.batch_size),
                     images_per_second(block, images[:500], 1, repeats=5)))
    print("kernels: %s, threads: %s" % (bmxnet.active_isa(), os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    print("%-16s %9s %12s %18s %14s" % ("model", "accuracy", "file bytes", "images/s (b=%d)" % args.batch_size, "images/s (b=1)"))
    for name, accuracy, size, throughput, latency in rows:
        print("%-16s %8.2f%% %12d %18.0f %14.0f" % (name, 100 * accuracy, size, throughput, latency))
    (float_name, *_), (packed_name, *_) = rows
    agree = (logits[float_name].argmax(axis=1) == logits[packed_name].argmax(axis=1)).mean()
    print("packed vs float-simulated: %.1fx smaller, %.2fx faster (batch %d), %.2fx faster (batch 1), "
          "same top-1 on %.2f%% of images, max |logit difference| %.2g"
          % (rows[0][2] / rows[1][2], rows[1][3] / rows[0][3], args.batch_size, rows[1][4] / rows[0][4],
             100 * agree, np.abs(logits[float_name] - logits[packed_name]).max()))
    return rows


if __name__ == "__main__":
    main()
