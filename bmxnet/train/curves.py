"""Training curves as a PNG."""
import numpy as np

from ..fileio import atomic_write


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
