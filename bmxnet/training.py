"""Small pieces shared by the training scripts: batching, evaluation, curves."""
import mxnet as mx
import numpy as np

from .fileio import atomic_write


def minibatches(images, labels, batch_size, shuffle_rng=None):
    """Yields (images, labels) numpy batches; shuffled when a RandomState is given."""
    order = np.arange(len(images))
    if shuffle_rng is not None:
        shuffle_rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield images[index], labels[index]


def evaluate(net, images, labels, batch_size=500, ctx=mx.cpu()):
    """(accuracy, mean cross-entropy) of net on a numpy dataset."""
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    correct, loss_sum = 0, 0.0
    for x, y in minibatches(images, labels, batch_size):
        out = net(mx.nd.array(x, ctx=ctx))
        y_nd = mx.nd.array(y, ctx=ctx)
        loss_sum += loss_fn(out, y_nd).sum().asscalar()
        correct += int((out.argmax(axis=1) == y_nd.astype("float32")).sum().asscalar())
    return correct / len(images), loss_sum / len(images)


def save_curves(history, path, title=""):
    """PNG of train/test accuracy and loss per epoch; history: dict of lists by name."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("train", "-o"), ("test", "-s")):
        acc_ax.plot(epochs, np.array(history[name + "_acc"]) * 100, style, label=name)
        loss_ax.plot(epochs, history[name + "_loss"], style, label=name)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda temp: fig.savefig(temp, dpi=100, format="png"))
    plt.close(fig)
