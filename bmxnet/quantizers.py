"""Quantizers as small functions of ``F`` (``mx.nd`` or ``mx.sym``).

Each wraps the ``QActivation`` operator (its forward and gradient formulas are in
docs/operators.md); QActivation, QConv2D and QDense call the operator themselves.
"""

ESTIMATORS = ("ste", "approx_sign", "swish_sign")  # gradients of the 1-bit sign


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
