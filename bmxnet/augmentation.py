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


def check_crop_pad(pad, height, width):
    """ValueError unless a random crop of `pad` pixels keeps part of every height x width image."""
    if not 0 <= pad < min(height, width):
        raise ValueError("--random-crop-pad %d must be in [0, %d) for %dx%d images: a larger pad crops "
                         "windows that miss the image" % (pad, min(height, width), height, width))


def random_crop_flip(images, rng, pad=0, flip=False, fill=None):
    """The CIFAR recipe: pad by `pad` pixels of `fill` (per channel; black after
    normalisation), crop back to the original size at a random offset, mirror half of the
    images left-right. Returns a new array; `images` is not modified."""
    n, c, h, w = images.shape
    check_crop_pad(pad, h, w)
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
