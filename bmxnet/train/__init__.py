"""Training from the command line (example/train_imagenet.py, example/train_mnist.py), one job
per module: cli (flags and their checks), data (sources and batches), setup (model, trainer,
schedule, save directory, log), distributed (dist_* kvstores), loop (epochs), checkpoints and
optimizer_states (what resuming needs), curves (the loss and accuracy plot)."""
from .cli import UsageError, argument_parser
from .loop import train

__all__ = ["UsageError", "argument_parser", "train"]
