"""Image augmentation and padding for in-memory datasets (NCHW float batches)."""
import numpy as np


def pad_to(images, size):
    """Centres NHW or NHWC uint8 images on a black size x size canvas (28 -> 32 for
    MNIST-like data under CIFAR-style networks)."""
    h, w = images.shape[1:3]
    if size < max(h, w):
        raise ValueError("--pad-to %d is smaller than the images (%dx%d)" % (size, h, w))
    top, left = (size - h) // 2, (size - w) // 2
    widths = [(0, 0), (top, size - h - top), (left, size - w - left)] + [(0, 0)] * (images.ndim - 3)
    return np.pad(images, widths)


def random_crop_flip(images, rng, pad=0, flip=False, fill=None):
    """The CIFAR recipe: pad by `pad` pixels of `fill` (per channel; black after
    normalisation), crop back to the original size at a random offset, mirror half of the
    images left-right. Returns a new array; `images` is not modified."""
    n, c, h, w = images.shape
    out = images.copy()
    if pad:
        canvas = np.empty((n, c, h + 2 * pad, w + 2 * pad), images.dtype)
        canvas[:] = (np.zeros(c) if fill is None else np.asarray(fill)).reshape(1, c, 1, 1)
        canvas[:, :, pad:pad + h, pad:pad + w] = images
        rows, cols = rng.randint(0, 2 * pad + 1, n), rng.randint(0, 2 * pad + 1, n)
        for i in range(n):
            out[i] = canvas[i, :, rows[i]:rows[i] + h, cols[i]:cols[i] + w]
    if flip:
        mirrored = rng.rand(n) < 0.5
        out[mirrored] = out[mirrored][..., ::-1]
    return out
