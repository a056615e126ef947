#!/usr/bin/env python
"""Train a binary LeNet on Fashion-MNIST or MNIST (IDX files from a local directory):
train_imagenet.py with MNIST defaults.

    python example/train_mnist.py --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_imagenet  # noqa: E402

MNIST_DEFAULTS = dict(dataset="fashion-mnist", model="lenet_binary", num_epochs=2, batch_size=128,
                      lr=0.003, optimizer="adam", activation_method="approx_sign",
                      dummy_shape="28,28,1", save_dir="output", save_frequency=1)


def main(argv=None):
    return train_imagenet.main(argv, **MNIST_DEFAULTS)


if __name__ == "__main__":
    main()
