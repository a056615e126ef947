"""Gluon layers over the quantized operators: QActivation, QConv2D, QDense.

Arguments left as None take the values of the enclosing ``binary_layer_config``.
A binary layer quantizes its input with QActivation (where gradient clipping and the
estimator live) and then runs QConvolution / QFullyConnected on quantized weights; 1-bit
layers without scaling or -1 padding run MXNet's Convolution / FullyConnected on sign(W)
instead (composed.py: same values, oneDNN speed), tagged so the converter sees QConvolution.
"""
from mxnet.gluon import HybridBlock

from .bnn_plus import add_filter_magnitude
from .composed import marked, sign_ste
from .config import resolve


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError("%s must be an int or a pair of ints, got %r" % (name, value))
    return pair


class QActivation(HybridBlock):
    """Quantizes activations to ``bits_a`` bits (sign for 1 bit) with estimator ``method``."""

    def __init__(self, bits_a=None, method=None, clip=None, beta=None, backward_only=False,
                 quantizer=None, **kwargs):
        super().__init__(**kwargs)
        config = resolve(input_quantizer=quantizer, bits_a=bits_a, method=method, clip=clip, beta=beta)
        self.bits_a = int(config["bits_a"])
        self._attrs = {"act_bit": self.bits_a, "method": config["method"],
                       "clip": float(config["clip"]), "beta": float(config["beta"]),
                       "backward_only": bool(backward_only)}

    def hybrid_forward(self, F, x):
        if self.bits_a == 32:
            return x
        return F.QActivation(x, **self._attrs)

    def __repr__(self):
        return "%s(bits_a=%d, method=%s, clip=%g)" % (
            type(self).__name__, self.bits_a, self._attrs["method"], self._attrs["clip"])


class _QLayer(HybridBlock):
    """Shared parameters of QConv2D and QDense: quantized input, weight, bias, BNN+ alpha.

    Subclasses provide ``_quantized_op`` (their operator) and ``_expand_alpha``.
    """

    def __init__(self, units, weight_shape, use_bias, weight_initializer, bias_initializer,
                 config, **kwargs):
        super().__init__(**kwargs)
        self.bits = int(config["bits"])
        self.bits_a = int(config["bits_a"])
        self.scaling = config["scaling"]
        self.regularizer = config["regularizer"]
        self.reg_lambda = float(config["reg_lambda"])
        self._quant_attrs = {"act_bit": self.bits_a, "weight_bit": self.bits,
                             "scaling": self.scaling, "no_bias": not use_bias}
        self._composable = self.bits == 1 and self.bits_a == 1 and self.scaling == "none"
        with self.name_scope():
            self.activation = QActivation(bits_a=self.bits_a, method=config["method"],
                                          clip=config["clip"], beta=config["beta"])
            self.weight = self.params.get("weight", shape=weight_shape, init=weight_initializer,
                                          allow_deferred_init=True)
            self.bias = (self.params.get("bias", shape=(units,), init=bias_initializer,
                                         allow_deferred_init=True) if use_bias else None)
            self.alpha = None
            if self.regularizer is not None:
                self.alpha = add_filter_magnitude(self.params, self.weight, units, config["alpha_init"])

    def hybrid_forward(self, F, x, weight, bias=None, alpha=None):
        out = self._quantized_op(F, self.activation(x), weight, bias)
        if alpha is not None:  # BNN+: per-filter scale on the output
            out = F.broadcast_mul(out, self._expand_alpha(F, alpha))
        return out


class QConv2D(_QLayer):
    """2-D convolution with ``bits``-bit weights on ``bits_a``-bit inputs (NCHW).

    Arguments as ``gluon.nn.Conv2D``; ``use_bias`` defaults to False as in the papers.
    ``pad_value`` 0 pads with zeros, -1 with -1 (BMXNet-v2). larq's names work too:
    ``input_quantizer`` (ste_sign, approx_sign, swish_sign, dorefa_quantizer) and
    ``kernel_quantizer`` (ste_sign, magnitude_aware_sign = xnor scaling, dorefa_quantizer);
    whatever is not given comes from ``binary_layer_config``.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=0, dilation=1, groups=1,
                 use_bias=False, in_channels=0, bits=None, bits_a=None, method=None, clip=None,
                 beta=None, scaling=None, pad_value=None, regularizer=None, reg_lambda=None,
                 alpha_init=None, weight_initializer=None, bias_initializer="zeros", input_quantizer=None,
                 kernel_quantizer=None, **kwargs):
        config = resolve(input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, bits=bits,
                         bits_a=bits_a, method=method, clip=clip, beta=beta, scaling=scaling,
                         pad_value=pad_value, regularizer=regularizer, reg_lambda=reg_lambda,
                         alpha_init=alpha_init)
        kernel = _pair(kernel_size, "kernel_size")
        if channels % groups or (in_channels and in_channels % groups):
            raise ValueError("channels (%d) and in_channels (%d) must be divisible by groups (%d)"
                             % (channels, in_channels, groups))
        super().__init__(channels, (channels, in_channels // groups) + kernel, use_bias,
                         weight_initializer, bias_initializer, config, **kwargs)
        self.channels, self.in_channels = channels, in_channels
        self._conv_attrs = dict(self._quant_attrs, kernel=kernel, stride=_pair(strides, "strides"),
                                pad=_pair(padding, "padding"), dilate=_pair(dilation, "dilation"),
                                num_filter=channels, num_group=groups,
                                pad_value=float(config["pad_value"]))
        self._composable = self._composable and self._conv_attrs["pad_value"] == 0

    def _quantized_op(self, F, x, weight, bias):
        if self._composable:
            a = self._conv_attrs
            fused = {k: a[k] for k in ("act_bit", "weight_bit", "scaling", "pad_value")}
            inputs = (x, sign_ste(F, weight)) + (() if bias is None else (bias,))
            return marked(F, "Convolution", fused, *inputs, kernel=a["kernel"], stride=a["stride"],
                          pad=a["pad"], dilate=a["dilate"], num_filter=a["num_filter"],
                          num_group=a["num_group"], no_bias=a["no_bias"])
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return F.QConvolution(*inputs, **self._conv_attrs)

    @staticmethod
    def _expand_alpha(F, alpha):
        return alpha.reshape((1, -1, 1, 1))

    def __repr__(self):
        a = self._conv_attrs
        return "%s(%s -> %d, kernel_size=%s, stride=%s, padding=%s, groups=%d, bits=%d, bits_a=%d)" % (
            type(self).__name__, self.in_channels or None, self.channels, a["kernel"], a["stride"],
            a["pad"], a["num_group"], self.bits, self.bits_a)


class QDense(_QLayer):
    """Fully connected layer with ``bits``-bit weights on ``bits_a``-bit inputs.

    Arguments as ``gluon.nn.Dense``; ``use_bias`` defaults to False.
    """

    def __init__(self, units, use_bias=False, flatten=True, in_units=0, bits=None, bits_a=None,
                 method=None, clip=None, beta=None, scaling=None, regularizer=None,
                 reg_lambda=None, alpha_init=None, weight_initializer=None,
                 bias_initializer="zeros", input_quantizer=None, kernel_quantizer=None, **kwargs):
        config = resolve(input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, bits=bits,
                         bits_a=bits_a, method=method, clip=clip, beta=beta, scaling=scaling,
                         regularizer=regularizer, reg_lambda=reg_lambda, alpha_init=alpha_init)
        if regularizer is not None and not flatten:
            raise ValueError("QDense: the BNN+ regularizer needs flatten=True")
        super().__init__(units, (units, in_units), use_bias, weight_initializer,
                         bias_initializer, config, **kwargs)
        self.units, self.in_units = units, in_units
        self._dense_attrs = dict(self._quant_attrs, num_hidden=units, flatten=flatten)

    def _quantized_op(self, F, x, weight, bias):
        if self._composable:
            a = self._dense_attrs
            fused = {k: a[k] for k in ("act_bit", "weight_bit", "scaling")}
            inputs = (x, sign_ste(F, weight)) + (() if bias is None else (bias,))
            return marked(F, "FullyConnected", fused, *inputs, num_hidden=a["num_hidden"],
                          no_bias=a["no_bias"], flatten=a["flatten"])
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return F.QFullyConnected(*inputs, **self._dense_attrs)

    @staticmethod
    def _expand_alpha(F, alpha):
        return alpha.reshape((1, -1))

    def __repr__(self):
        return "%s(%s -> %d, bits=%d, bits_a=%d)" % (
            type(self).__name__, self.in_units or None, self.units, self.bits, self.bits_a)
