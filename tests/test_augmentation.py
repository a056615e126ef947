"""bmxnet.augmentation: padding to a canvas, the CIFAR random crop + mirror."""
import numpy as np
import pytest

from bmxnet.augmentation import pad_to, random_crop_flip


def test_pad_to_centres_images_on_black():
    images = np.random.RandomState(0).randint(1, 255, (3, 28, 28)).astype(np.uint8)
    padded = pad_to(images, 32)
    assert padded.shape == (3, 32, 32) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert padded.sum() == images.astype(np.int64).sum()  # the border is black
    assert pad_to(np.ones((1, 5, 5, 3), np.uint8), 8).shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match="smaller than the images"):
        pad_to(images, 20)


def test_random_crop_flip_gives_shifted_and_mirrored_windows_of_the_padded_image():
    rng = np.random.RandomState(1)
    images = rng.randn(64, 3, 7, 9).astype(np.float32)
    original = images.copy()
    fill = np.array([-1.5, -2.0, -2.5], np.float32)
    out = random_crop_flip(images, np.random.RandomState(5), pad=2, flip=True, fill=fill)
    np.testing.assert_array_equal(images, original)  # input untouched
    assert out.shape == images.shape and out.dtype == images.dtype
    canvas = np.empty((64, 3, 11, 13), np.float32)
    canvas[:] = fill.reshape(1, 3, 1, 1)
    canvas[:, :, 2:9, 2:11] = images
    offsets, mirrored = set(), 0
    for i in range(64):
        windows = [(r, c, m) for r in range(5) for c in range(5) for m in (False, True)
                   if np.array_equal(out[i], canvas[i, :, r:r + 7, c:c + 9][..., ::-1] if m
                                     else canvas[i, :, r:r + 7, c:c + 9])]
        assert windows, "image %d is no window of its padded image" % i
        offsets.add(windows[0][:2])
        mirrored += windows[0][2]
    assert len(offsets) > 10 and 16 < mirrored < 48  # offsets and mirroring really vary
    again = random_crop_flip(images, np.random.RandomState(5), pad=2, flip=True, fill=fill)
    np.testing.assert_array_equal(out, again)  # the rng decides everything: resume is exact


def test_no_augmentation_is_a_copy():
    images = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    out = random_crop_flip(images, np.random.RandomState(0))
    np.testing.assert_array_equal(out, images)
    assert out is not images
