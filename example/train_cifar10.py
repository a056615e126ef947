#!/usr/bin/env python
"""Train a binary network on CIFAR-10 (python batches in --data-dir): train_imagenet.py with
CIFAR defaults (ResNetE-18 with the thumbnail stem, random crop with 4 pixels of
padding and left-right mirroring)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_imagenet  # noqa: E402

if __name__ == "__main__":
    train_imagenet.main(dataset="cifar10", model="resnete18", initial_layers="thumbnail",
                        num_epochs=100, lr=0.002, batch_size=128, random_crop_pad=4, random_flip=True,
                        save_dir="params-cifar10")
