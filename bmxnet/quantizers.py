"""Quantizers as small functions of ``F`` (``mx.nd`` or ``mx.sym``).

Each wraps the ``QActivation`` operator; forward and gradient formulas are in the README.
Layers take a quantizer by name through :func:`get`.
"""

ESTIMATORS = ("ste", "approx_sign", "swish_sign")


def ste_sign(F, x, clip=1.0):
    """sign(x) with sign(0)=+1; gradient passes where |x| <= clip (Hubara et al., BNN)."""
    return F.QActivation(x, act_bit=1, method="ste", clip=clip)


def approx_sign(F, x):
    """sign(x); gradient 2 - 2|x| inside [-1, 1], else 0 (Bi-Real Net, BMXNet-v2 eq. 4)."""
    return F.QActivation(x, act_bit=1, method="approx_sign")


def swish_sign(F, x, beta=5.0):
    """sign(x); gradient of SignSwish: beta(2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x)) (BNN+)."""
    return F.QActivation(x, act_bit=1, method="swish_sign", beta=beta)


def quantize_k(F, x, bits):
    """round((2^k - 1) clip(x, 0, 1)) / (2^k - 1); gradient passes inside [0, 1] (DoReFa)."""
    return F.QActivation(x, act_bit=bits)


def identity(F, x):
    """Full precision: 32 bits leave x unchanged."""
    return x


def get(name_or_bits, method="ste", clip=1.0, beta=5.0):
    """A function ``f(F, x)`` quantizing to ``bits`` with the named estimator for 1 bit."""
    bits = int(name_or_bits)
    if not 1 <= bits <= 32:
        raise ValueError("bits must be in [1, 32], got %d" % bits)
    if method not in ESTIMATORS:
        raise ValueError("unknown method %r; choose one of %s" % (method, ", ".join(ESTIMATORS)))
    if bits == 32:
        return identity
    if bits > 1:
        return lambda F, x: quantize_k(F, x, bits)
    if method == "ste":
        return lambda F, x: ste_sign(F, x, clip)
    if method == "approx_sign":
        return approx_sign
    return lambda F, x: swish_sign(F, x, beta)
