"""bmxnet.quantizers: the same functions work with mx.nd and mx.sym."""
import mxnet as mx
import numpy as np
import pytest

from bmxnet import quantizers
import reference as ref


QUANTIZERS = {(1, "ste"): lambda F, x: quantizers.ste_sign(F, x, clip=1.2),
              (1, "approx_sign"): quantizers.approx_sign,
              (1, "swish_sign"): lambda F, x: quantizers.swish_sign(F, x, beta=4.0),
              (2, "ste"): lambda F, x: quantizers.quantize_k(F, x, 2),
              (32, "ste"): quantizers.identity}


@pytest.mark.parametrize("bits,method", list(QUANTIZERS))
def test_quantizer_forward_and_gradient_match_reference(bits, method, rng):
    quantize = QUANTIZERS[bits, method]
    x = rng.uniform(-2, 2, size=(4, 9)).astype(np.float32)
    xa = mx.nd.array(x)
    xa.attach_grad()
    with mx.autograd.record():
        y = quantize(mx.nd, xa) * 1.0
    y.backward(mx.nd.ones_like(y))
    np.testing.assert_allclose(y.asnumpy(), ref.quantize_activation(x, bits), atol=1e-6)
    np.testing.assert_allclose(xa.grad.asnumpy(),
                               ref.activation_gradient(x, np.ones_like(x), bits, method, 1.2, 4.0),
                               rtol=1e-5, atol=1e-6)
    symbol = quantize(mx.sym, mx.sym.var("x"))
    out = symbol.bind(mx.cpu(), {"x": mx.nd.array(x)}).forward()[0] if bits < 32 else None
    if out is not None:
        np.testing.assert_allclose(out.asnumpy(), ref.quantize_activation(x, bits), atol=1e-6)
