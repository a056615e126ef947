#!/usr/bin/env python
"""Train a binary network from the model zoo (GluonCV's train_imagenet.py with BMXNet's
binary flags). Datasets: imagenet (RecordIO), cifar10/100 (local python batches), mnist,
fashion-mnist (IDX files), dummy.

    python example/train_imagenet.py --model meliusnet22 --rec-train train.rec --rec-val val.rec \\
        --optimizer radam --lr 0.002 --lr-mode cosine --num-epochs 120 --batch-size 256
"""
import sys

from bmxnet.trainer_core import UsageError, argument_parser, train


def main(argv=None, **defaults):
    args = argument_parser(__doc__, **defaults).parse_args(argv)
    try:
        return train(args)
    except UsageError as error:
        sys.exit("error: %s" % error)


if __name__ == "__main__":
    main()
