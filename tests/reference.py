"""Plain numpy references of the quantizers and layers (float32 where the ops use it)."""
import numpy as np


def sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


def quantize_k(x, bits):
    levels = np.float32(2 ** bits - 1)
    return (np.floor(np.clip(x, 0, 1).astype(np.float32) * levels + np.float32(0.5)) / levels).astype(np.float32)


def quantize_activation(x, bits):
    if bits == 1:
        return sign(x)
    return x.copy() if bits == 32 else quantize_k(x, bits)


def activation_gradient(x, dy, bits, method="ste", clip=1.0, beta=5.0):
    if bits == 32:
        return dy
    if bits > 1:
        return dy * ((x >= 0) & (x <= 1))
    if method == "ste":
        return dy * (np.abs(x) <= clip)
    if method == "approx_sign":
        return dy * np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0)
    bx = beta * x
    return dy * beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))


def _row_mean_abs(w):
    return np.abs(w.reshape(w.shape[0], -1)).mean(axis=1).reshape((-1,) + (1,) * (w.ndim - 1))


def quantize_weights(w, bits, scaling="none"):
    if bits == 1:
        q = sign(w)
    elif bits < 32:
        t = np.tanh(w)
        unit = t / (2 * np.abs(t).max()) + 0.5
        q = 2 * quantize_k(unit, bits) - 1
    else:
        q = w.copy()
    return q * _row_mean_abs(w) if scaling == "xnor" else q


def weight_gradient(w, dwq, bits, scaling="none"):
    derivative = np.ones_like(w)
    if 1 < bits < 32:
        t = np.tanh(w)
        derivative = (1 - t * t) / np.abs(t).max()
    grad = dwq * derivative
    return grad * _row_mean_abs(w) if scaling == "xnor" else grad


def _pad(x, pad, value):
    return np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2), constant_values=value)


def _taps(x_shape, w_shape, stride, pad, dilate):
    """(i, j, rows, cols) slices of the padded input read by kernel tap (i, j)."""
    h = (x_shape[2] + 2 * pad[0] - dilate[0] * (w_shape[2] - 1) - 1) // stride[0] + 1
    w = (x_shape[3] + 2 * pad[1] - dilate[1] * (w_shape[3] - 1) - 1) // stride[1] + 1
    for i in range(w_shape[2]):
        for j in range(w_shape[3]):
            rows = slice(i * dilate[0], i * dilate[0] + stride[0] * (h - 1) + 1, stride[0])
            cols = slice(j * dilate[1], j * dilate[1] + stride[1] * (w - 1) + 1, stride[1])
            yield i, j, rows, cols


def conv2d(x, w, bias=None, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1, pad_value=0.0):
    """NCHW convolution, padded positions read as pad_value; float64 accumulation."""
    xp = _pad(x.astype(np.float64), pad, pad_value)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    out = None
    for i, j, rows, cols in _taps(x.shape, w.shape, stride, pad, dilate):
        patch = xp[:, :, rows, cols]
        for g in range(groups):
            part = np.einsum("nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg],
                             w[g * og:(g + 1) * og, :, i, j].astype(np.float64))
            if out is None:
                out = np.zeros((x.shape[0], w.shape[0]) + part.shape[2:])
            out[:, g * og:(g + 1) * og] += part
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def conv2d_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1, pad_value=0.0):
    """(dx, dw, dbias) of conv2d; padded positions take no gradient."""
    xp = _pad(x.astype(np.float64), pad, pad_value)
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    for i, j, rows, cols in _taps(x.shape, w.shape, stride, pad, dilate):
        for g in range(groups):
            dy_g = dy[:, g * og:(g + 1) * og].astype(np.float64)
            dw[g * og:(g + 1) * og, :, i, j] += np.einsum(
                "nohw,nchw->oc", dy_g, xp[:, g * cg:(g + 1) * cg, rows, cols])
            dxp[:, g * cg:(g + 1) * cg, rows, cols] += np.einsum(
                "nohw,oc->nchw", dy_g, w[g * og:(g + 1) * og, :, i, j])
    dx = dxp[:, :, pad[0]:pad[0] + x.shape[2], pad[1]:pad[1] + x.shape[3]]
    return dx.astype(np.float32), dw.astype(np.float32), dy.sum(axis=(0, 2, 3)).astype(np.float32)
