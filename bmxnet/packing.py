"""Bit packing of binary weights in numpy, the same layout as src/operator/kernels/bitpack.h.

Bit c of a row lives in 64-bit word c // 64 at bit c % 64 (LSB first); a set bit means -1
(sign(w) = -1, i.e. w < 0 or NaN). Tail bits are zero. Words are stored as int64.
"""
import numpy as np


def words_for(bits):
    """64-bit words holding `bits` bits."""
    return (bits + 63) // 64


def pack_rows(signs_negative):
    """bool array [..., K] -> int64 array [..., words_for(K)]."""
    length = signs_negative.shape[-1]
    padded = np.zeros(signs_negative.shape[:-1] + (words_for(length) * 64,), dtype=bool)
    padded[..., :length] = signs_negative
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.int64)


def pack_conv_weight(weight):
    """float [O, C/groups, KH, KW] -> int64 [O, KH, KW, words]."""
    negative = ~(np.asarray(weight) >= 0)
    return pack_rows(negative.transpose(0, 2, 3, 1))


def pack_dense_weight(weight):
    """float [O, K] -> int64 [O, words]."""
    return pack_rows(~(np.asarray(weight) >= 0))


def unpack_rows(packed, length):
    """int64 [..., words] -> +-1 float32 [..., length] (inverse of pack_rows)."""
    raw = np.ascontiguousarray(packed.astype(np.int64)).view(np.uint8)
    bits = np.unpackbits(raw.reshape(packed.shape[:-1] + (-1,)), axis=-1, bitorder="little")
    return np.where(bits[..., :length] == 1, -1.0, 1.0).astype(np.float32)


def xnor_scale(weight):
    """XNOR-Net scale per output channel: mean |w| of each filter (float32), summed in order
    in double as the operators compute it (numpy's mean sums pairwise, which can differ in the
    last bit), so that packed layers give the float-simulated values bit for bit."""
    flat = np.abs(np.asarray(weight, dtype=np.float32).astype(np.float64)).reshape(weight.shape[0], -1)
    return (np.cumsum(flat, axis=1)[:, -1] / flat.shape[1]).astype(np.float32)
