"""Exact per-channel thresholds for sign(BatchNorm(x)), so that a packed layer can take
the signs of its input before the BatchNorm and the BatchNorm pass disappears.

For each channel, BatchNorm in inference is a monotone map of x (each float operation
rounds monotonically), so its result is negative exactly on one side of some float t:
    negative(BatchNorm(x)) == !(direction * x >= t)
(NaN counts as negative, as in the packing). Rather than re-deriving MXNet's arithmetic
(oneDNN's, with or without fused multiply-adds), t is found by bisection over all floats
with MXNet's own BatchNorm as the oracle, and then checked on values around it.
"""
import mxnet as mx
import numpy as np

PROBE_COPIES = 53  # copies of each probe value: vector body and scalar tail of BatchNorm's loops
BISECTION_STEPS = 40  # more than the 33 halvings of the 2^33 ordered floats


def _ordered(values):
    """float32 -> int64 keys in the order of the values (-0.0 and 0.0 share key 0)."""
    bits = np.asarray(values, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _from_ordered(keys):
    keys = np.asarray(keys, np.int64)
    bits = np.where(keys >= 0, keys, (-keys) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def _negative(batchnorm, values):
    """values (C, K) -> bool (C, K): the packing's sign bit of batchnorm(values)."""
    out = batchnorm(mx.nd.array(values[None, :, None, :], dtype="float32")).asnumpy()[0, :, 0, :]
    return ~(out >= 0)


def _probe(batchnorm, direction, keys):
    """Sign bits at x = direction * value(key), one per channel; None if the copies
    disagree (then BatchNorm does not treat every position alike)."""
    values = np.repeat((direction * _from_ordered(keys))[:, None], PROBE_COPIES, axis=1)
    negative = _negative(batchnorm, values)
    if not np.all(negative == negative[:, :1]):
        return None
    return negative[:, 0]


def sign_thresholds(batchnorm, channels, rng=None):
    """(direction, threshold), float32 arrays of shape (2, channels) stacked, such that the
    sign bit of batchnorm(x)[c] is !(direction[c] * x >= threshold[c]) for every float32
    x; None when some channel's sign does not follow x monotonically (a zero gamma) or
    the check fails. `batchnorm` maps an NCHW NDArray to its BatchNorm output."""
    ends = _negative(batchnorm, np.tile(np.array([[-np.inf, np.inf]], np.float32), (channels, 1)))
    increasing, decreasing = ends[:, 0] & ~ends[:, 1], ~ends[:, 0] & ends[:, 1]
    if not np.all(increasing | decreasing):
        return None
    direction = np.where(increasing, 1.0, -1.0).astype(np.float32)
    # in y = direction * x the sign bit falls from 1 to 0: find the first y where it is 0
    low = np.full(channels, _ordered(np.float32(-np.inf)), np.int64)   # bit 1 here
    high = np.full(channels, _ordered(np.float32(np.inf)), np.int64)   # bit 0 here
    for _ in range(BISECTION_STEPS):
        if np.all(high - low <= 1):
            break
        middle = low + (high - low) // 2
        negative = _probe(batchnorm, direction, middle)
        if negative is None:
            return None
        low, high = np.where(negative, middle, low), np.where(negative, high, middle)
    threshold = _from_ordered(high)
    if not _check(batchnorm, direction, threshold, rng or np.random.RandomState(0)):
        return None
    return np.stack([direction, threshold])


def _check(batchnorm, direction, threshold, rng):
    """The rule against the oracle on the thresholds, their neighbours and random values."""
    keys = _ordered(threshold)[:, None] + np.arange(-3, 4)[None, :]
    keys = np.clip(keys, _ordered(np.float32(-np.inf)), _ordered(np.float32(np.inf)))
    y = np.concatenate([_from_ordered(keys), rng.standard_normal((len(threshold), 40)).astype(np.float32)
                        * np.maximum(np.abs(threshold), 1)[:, None]], axis=1)
    x = (direction[:, None] * y).astype(np.float32)
    expected = ~(direction[:, None] * x >= threshold[:, None])
    return bool(np.all(_negative(batchnorm, x) == expected))
