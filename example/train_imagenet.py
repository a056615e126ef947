#!/usr/bin/env python
"""Train a binary network from the model zoo (GluonCV's train_imagenet.py with BMXNet's
binary flags). Datasets: imagenet (RecordIO), cifar10/100 (local python batches), mnist,
fashion-mnist (IDX files), dummy.

    python example/train_imagenet.py --model meliusnet22 --rec-train train.rec --rec-val val.rec \\
        --optimizer radam --lr 0.002 --lr-mode cosine --num-epochs 120 --batch-size 256
"""
from bmxnet.train import UsageError, argument_parser, train


def main(argv=None, **defaults):
    """Trains as the flags say and returns the history; bad flags or data end the process
    with one line "error: ..." on stderr and exit code 2, as argparse's own errors do."""
    parser = argument_parser(__doc__, **defaults)
    args = parser.parse_args(argv)
    try:
        return train(args)
    except UsageError as error:
        parser.exit(2, "error: %s\n" % " ".join(str(error).splitlines()))


if __name__ == "__main__":
    main()
