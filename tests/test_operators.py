"""Each operator against the numpy reference, forward and backward."""
import mxnet as mx
import numpy as np
import pytest

import reference as ref


def run_with_grad(op, inputs, out_grad, **attrs):
    arrays = [mx.nd.array(a) for a in inputs]
    for a in arrays:
        a.attach_grad()
    with mx.autograd.record():
        out = op(*arrays, **attrs)
    out.backward(mx.nd.array(out_grad))
    return out.asnumpy(), [a.grad.asnumpy() for a in arrays]


# ---------------------------------------------------------------- QActivation

def test_qactivation_sign_of_zero_is_plus_one():
    out = mx.nd.QActivation(mx.nd.array([-0.5, 0, 2]), act_bit=1)
    assert out.asnumpy().tolist() == [-1.0, 1.0, 1.0]


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 31, 32])
def test_qactivation_forward_matches_reference(bits, rng):
    x = rng.uniform(-1.5, 1.5, size=(3, 37, 5)).astype(np.float32)
    out = mx.nd.QActivation(mx.nd.array(x), act_bit=bits).asnumpy()
    np.testing.assert_allclose(out, ref.quantize_activation(x, bits), atol=1e-6)


@pytest.mark.parametrize("method,clip,beta", [("ste", 1.0, 5.0), ("ste", 1.3, 5.0),
                                              ("approx_sign", 1.0, 5.0),
                                              ("swish_sign", 1.0, 5.0), ("swish_sign", 1.0, 10.0)])
def test_qactivation_gradient_of_each_method(method, clip, beta, rng):
    x = rng.uniform(-2, 2, size=(4, 65)).astype(np.float32)
    x[0, :4] = [1.0, -1.0, clip, 0.0]  # boundaries belong to the passing range
    dy = rng.normal(size=x.shape).astype(np.float32)
    out, (dx,) = run_with_grad(mx.nd.QActivation, [x], dy, act_bit=1, method=method, clip=clip,
                               beta=beta)
    np.testing.assert_array_equal(out, ref.sign(x))
    np.testing.assert_allclose(dx, ref.activation_gradient(x, dy, 1, method, clip, beta),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 4, 32])
def test_qactivation_kbit_gradient_passes_inside_unit_interval(bits, rng):
    x = rng.uniform(-0.5, 1.5, size=(7, 9)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    _, (dx,) = run_with_grad(mx.nd.QActivation, [x], dy, act_bit=bits)
    np.testing.assert_allclose(dx, ref.activation_gradient(x, dy, bits), rtol=1e-6)


def test_qactivation_backward_only_is_identity_forward(rng):
    x = rng.uniform(-2, 2, size=(5, 5)).astype(np.float32)
    dy = np.ones_like(x)
    out, (dx,) = run_with_grad(mx.nd.QActivation, [x], dy, act_bit=1, backward_only=True,
                               method="approx_sign")
    np.testing.assert_array_equal(out, x)
    np.testing.assert_allclose(dx, ref.activation_gradient(x, dy, 1, "approx_sign"), rtol=1e-6)


# ---------------------------------------------------------------- QConvolution

CONV_CASES = [
    # channels, filters, kernel, stride, pad, dilate, groups, bias, act_bit, weight_bit, scaling, pad_value
    (1, 1, 1, 1, 0, 1, 1, False, 1, 1, "none", 0),
    (3, 8, 3, 1, 1, 1, 1, False, 1, 1, "none", 0),
    (37, 16, 3, 2, 1, 1, 1, True, 1, 1, "none", -1),
    (65, 5, 5, 1, 2, 1, 1, False, 1, 1, "xnor", 0),
    (6, 4, 3, 1, 2, 2, 2, True, 1, 1, "none", 0),
    (6, 9, 3, 2, 1, 1, 3, False, 1, 1, "none", -1),
    (64, 3, 1, 2, 0, 1, 1, False, 1, 1, "none", 0),
    (5, 7, 3, 1, 1, 1, 1, True, 2, 2, "none", 0),
    (5, 7, 3, 1, 1, 1, 1, False, 4, 1, "xnor", 0),
    (4, 6, 3, 1, 1, 1, 2, True, 32, 4, "none", 0),
    (4, 6, 3, 2, 1, 1, 1, True, 32, 32, "none", 0),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "c%d-o%d-k%d-s%d-p%d-d%d-g%d-b%d-a%d-w%d-%s-pv%d" % c)
def test_qconvolution_matches_numpy_forward_and_backward(case, rng):
    c, o, k, s, p, d, g, bias, act_bit, weight_bit, scaling, pad_value = case
    x = rng.uniform(-1.2, 1.2, size=(2, c, 9, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(o, c // g, k, k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(o,)).astype(np.float32)
    geometry = dict(stride=(s, s), pad=(p, p), dilate=(d, d), groups=g, pad_value=float(pad_value))
    xq = ref.quantize_activation(x, act_bit)
    wq = ref.quantize_weights(w, weight_bit, scaling)
    expected = ref.conv2d(xq, wq, b if bias else None, **geometry)
    dy = rng.normal(size=expected.shape).astype(np.float32)

    inputs = [x, w, b] if bias else [x, w]
    out, grads = run_with_grad(mx.nd.QConvolution, inputs, dy, kernel=(k, k), stride=(s, s),
                               pad=(p, p), dilate=(d, d), num_filter=o, num_group=g,
                               no_bias=not bias, act_bit=act_bit, weight_bit=weight_bit,
                               scaling=scaling, pad_value=pad_value)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)

    dxq, dwq, db = ref.conv2d_backward(xq, wq, dy, **geometry)
    np.testing.assert_allclose(grads[0], dxq, rtol=1e-4, atol=1e-4)  # data quantizer: straight through
    np.testing.assert_allclose(grads[1], ref.weight_gradient(w, dwq, weight_bit, scaling),
                               rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(grads[2], db, rtol=1e-4, atol=1e-4)


def test_qconvolution_binary_output_is_exact_integer(rng):
    x = rng.uniform(-1, 1, size=(1, 129, 6, 6)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(4, 129, 3, 3)).astype(np.float32)
    out = mx.nd.QConvolution(mx.nd.array(x), mx.nd.array(w), kernel=(3, 3), num_filter=4).asnumpy()
    np.testing.assert_array_equal(out, np.round(out))
    np.testing.assert_array_equal(out, ref.conv2d(ref.sign(x), ref.sign(w)))


def test_qconvolution_does_not_modify_inputs(rng):
    x = rng.uniform(-1, 1, size=(2, 3, 5, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(4, 3, 3, 3)).astype(np.float32)
    xa, wa = mx.nd.array(x), mx.nd.array(w)
    mx.nd.QConvolution(xa, wa, kernel=(3, 3), num_filter=4, scaling="xnor").wait_to_read()
    np.testing.assert_array_equal(xa.asnumpy(), x)
    np.testing.assert_array_equal(wa.asnumpy(), w)


# ---------------------------------------------------------------- QFullyConnected

@pytest.mark.parametrize("features,hidden,bias,act_bit,weight_bit,scaling", [
    (1, 1, False, 1, 1, "none"), (37, 10, True, 1, 1, "none"), (65, 3, False, 1, 1, "xnor"),
    (20, 7, True, 2, 2, "none"), (20, 7, False, 4, 1, "none"), (20, 7, True, 32, 32, "none")])
def test_qfullyconnected_matches_numpy(features, hidden, bias, act_bit, weight_bit, scaling, rng):
    x = rng.uniform(-1.2, 1.2, size=(3, features)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(hidden, features)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(hidden,)).astype(np.float32)
    dy = rng.normal(size=(3, hidden)).astype(np.float32)
    xq = ref.quantize_activation(x, act_bit)
    wq = ref.quantize_weights(w, weight_bit, scaling)
    inputs = [x, w, b] if bias else [x, w]
    out, grads = run_with_grad(mx.nd.QFullyConnected, inputs, dy, num_hidden=hidden,
                               no_bias=not bias, act_bit=act_bit, weight_bit=weight_bit,
                               scaling=scaling)
    np.testing.assert_allclose(out, xq @ wq.T + (b if bias else 0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grads[0], dy @ wq, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grads[1], ref.weight_gradient(w, dy.T @ xq, weight_bit, scaling),
                               rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(grads[2], dy.sum(axis=0), rtol=1e-5, atol=1e-5)


def test_qfullyconnected_flattens_or_keeps_leading_axes(rng):
    x = rng.uniform(-1, 1, size=(2, 3, 4, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(6, 60)).astype(np.float32)
    out = mx.nd.QFullyConnected(mx.nd.array(x), mx.nd.array(w), num_hidden=6).asnumpy()
    np.testing.assert_allclose(out, ref.sign(x).reshape(2, -1) @ ref.sign(w).T, atol=1e-4)
    w5 = rng.uniform(-1, 1, size=(6, 5)).astype(np.float32)
    out = mx.nd.QFullyConnected(mx.nd.array(x), mx.nd.array(w5), num_hidden=6, flatten=False)
    assert out.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(out.asnumpy(), ref.sign(x) @ ref.sign(w5).T, atol=1e-4)
