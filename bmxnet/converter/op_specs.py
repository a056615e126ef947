"""The operators model-converter accepts in a model, with their attributes (MXNet 1.9 names,
types and ranges; bmxnet's as in src/operator/op_params.cc), the role of each input and how
the size of axis 1 (channels, or features of a 2-D tensor) passes through them.

These are the operators that bmxnet's layers and model zoo export, plus common inference
operators that need no parameters of their own. Anything else is refused: the converter
cannot vouch for what it does not know.
"""
from .attr_readers import (Attr, boolean, choice, integer, integers, number, optional, text_of_length)

BINARY_OPS = ("QConvolution", "QFullyConnected")
CONVERTED_OPS = ("ChannelConcat", "PlainPooling", "PlainBatchNorm")  # made only by model-converter
MAX_DIM = 32


class OpSpec:
    """What the converter knows about one operator.

    roles: names of the inputs in order ("data" for tensors, else the parameter each one
    is), or a function of the attribute values giving them. outputs: visible outputs.
    channels: how axis 1 of the output follows from the inputs (see shape_check).
    """

    def __init__(self, attrs=None, roles=("data",), outputs=1, channels="same"):
        self.attrs = attrs or {}
        self._roles, self._outputs, self.channels = roles, outputs, channels

    def roles(self, values):
        return tuple(self._roles(values) if callable(self._roles) else self._roles)

    def outputs(self, values):
        return self._outputs(values) if callable(self._outputs) else self._outputs


def _with_bias(values):
    return ("data", "weight") + (() if values["no_bias"] else ("bias",))


def _spatial(lo, lengths=(1, 2, 3)):
    return Attr(integers(lo, lengths + (0,)), default=())


_BOOL_FALSE, _BOOL_TRUE = Attr(boolean, False), Attr(boolean, True)
_AXIS = integer(-MAX_DIM, MAX_DIM - 1)
_CONV_LAYOUT = Attr(optional(choice("NCW", "NCHW", "NCDHW")))

CONVOLUTION = OpSpec({
    "kernel": Attr(integers(1, (1, 2, 3)), required=True), "stride": _spatial(1), "dilate": _spatial(1),
    "pad": _spatial(0), "num_filter": Attr(integer(1, 1 << 24), required=True),
    "num_group": Attr(integer(1, 1 << 24), 1),
    "workspace": Attr(integer(0, 1 << 40), 1024), "no_bias": _BOOL_FALSE, "cudnn_off": _BOOL_FALSE,
    "cudnn_tune": Attr(optional(choice("fastest", "limited_workspace", "off"))), "layout": _CONV_LAYOUT,
}, roles=_with_bias, channels="convolution")

FULLY_CONNECTED = OpSpec({
    "num_hidden": Attr(integer(1, (1 << 31) - 1), required=True), "no_bias": _BOOL_FALSE, "flatten": _BOOL_TRUE,
}, roles=_with_bias, channels="fully_connected")

BATCH_NORM = OpSpec({
    "eps": Attr(number(above=0), 1e-3), "momentum": Attr(number(), 0.9), "fix_gamma": _BOOL_TRUE,
    "use_global_stats": _BOOL_FALSE, "output_mean_var": _BOOL_FALSE, "axis": Attr(_AXIS, 1), "cudnn_off": _BOOL_FALSE,
    "min_calib_range": Attr(optional(number())), "max_calib_range": Attr(optional(number())),
}, roles=("data", "gamma", "beta", "moving_mean", "moving_var"),
    outputs=lambda values: 3 if values["output_mean_var"] else 1, channels="batchnorm")

POOLING = OpSpec({
    "kernel": _spatial(1), "pool_type": Attr(choice("avg", "lp", "max", "sum"), "max"), "global_pool": _BOOL_FALSE,
    "cudnn_off": _BOOL_FALSE, "pooling_convention": Attr(choice("full", "same", "valid"), "valid"),
    "stride": _spatial(1), "pad": _spatial(0), "p_value": Attr(optional(integer(1, 64))),
    "count_include_pad": Attr(optional(boolean)), "layout": _CONV_LAYOUT,
})

# bmxnet's operators (src/operator/op_params.cc) as a float-simulated model has them: the
# attributes model-converter sets (binarized_weights_only, residual, ...) are not there yet
_BITS = Attr(integer(1, 32), 1)
_SCALING = Attr(choice("none", "xnor", any_case=True), "none")
_PAIR = (2,)
Q_CONVOLUTION = OpSpec({
    "kernel": Attr(integers(1, _PAIR), required=True), "stride": Attr(integers(1, _PAIR), (1, 1)),
    "dilate": Attr(integers(1, _PAIR), (1, 1)), "pad": Attr(integers(0, _PAIR), (0, 0)),
    "num_filter": Attr(integer(1, 1 << 24), required=True), "num_group": Attr(integer(1, 1 << 24), 1),
    "no_bias": _BOOL_TRUE, "act_bit": _BITS, "weight_bit": _BITS, "scaling": _SCALING,
    "pad_value": Attr(number(allowed=(0.0, -1.0)), 0.0), "binarized_weights_only": _BOOL_FALSE,
    "layout": Attr(optional(choice("NCHW"))),
}, roles=_with_bias, channels="convolution")

Q_FULLY_CONNECTED = OpSpec({
    "num_hidden": Attr(integer(1, 1 << 30), required=True), "no_bias": _BOOL_TRUE, "flatten": _BOOL_TRUE,
    "act_bit": _BITS, "weight_bit": _BITS, "scaling": _SCALING, "binarized_weights_only": _BOOL_FALSE,
}, roles=_with_bias, channels="fully_connected")

Q_ACTIVATION = OpSpec({
    "act_bit": _BITS, "backward_only": _BOOL_FALSE,
    "method": Attr(choice("ste", "approx_sign", "swish_sign", any_case=True), "ste"),
    "clip": Attr(number(above=0), 1.0), "beta": Attr(number(above=0), 5.0),
})

_SCALAR = OpSpec({"scalar": Attr(number(), 1.0), "is_int": _BOOL_TRUE})
_ELEMENTWISE = OpSpec(roles=("data", "data"), channels="elementwise")
_BROADCAST = OpSpec(roles=("data", "data"), channels="broadcast")
_PLAIN = OpSpec()
_REDUCTION = OpSpec({"axis": Attr(optional(integers(-MAX_DIM, range(0, MAX_DIM + 1)))), "keepdims": _BOOL_FALSE,
                     "exclude": _BOOL_FALSE}, channels="unknown")
_SOFTMAX = OpSpec({"axis": Attr(_AXIS, -1), "temperature": Attr(optional(number(above=0))),
                   "dtype": Attr(optional(choice("float16", "float32", "float64"))),
                   "use_length": Attr(optional(boolean), False)},
                  roles=lambda values: ("data", "data") if values["use_length"] else ("data",))

KNOWN_OPS = {
    "null": OpSpec(roles=(), channels="variable"),
    "Convolution": CONVOLUTION, "FullyConnected": FULLY_CONNECTED, "BatchNorm": BATCH_NORM, "Pooling": POOLING,
    "QConvolution": Q_CONVOLUTION, "QFullyConnected": Q_FULLY_CONNECTED, "QActivation": Q_ACTIVATION,
    "Activation": OpSpec({"act_type": Attr(choice("relu", "sigmoid", "softrelu", "softsign", "tanh"), required=True)}),
    "LeakyReLU": OpSpec({"act_type": Attr(choice("elu", "gelu", "leaky", "prelu", "rrelu", "selu"), "leaky"),
                         "slope": Attr(number(), 0.25), "lower_bound": Attr(number(), 0.125),
                         "upper_bound": Attr(number(), 0.334)},
                        roles=lambda values: ("data", "gamma") if values["act_type"] == "prelu" else ("data",)),
    "Dropout": OpSpec({"p": Attr(number(), 0.5), "mode": Attr(choice("always", "training"), "training"),
                       "axes": Attr(integers(0), ()), "cudnn_off": Attr(optional(boolean), False)}),
    "Concat": OpSpec({"num_args": Attr(integer(1, 1 << 16), required=True), "dim": Attr(_AXIS, 1)},
                     roles=lambda values: ("data",) * values["num_args"], channels="concat"),
    "slice_axis": OpSpec({"axis": Attr(_AXIS, required=True), "begin": Attr(integer(), required=True),
                          "end": Attr(optional(integer()), required=True)}, channels="slice_axis"),
    "Reshape": OpSpec({"shape": Attr(integers(-4), ()), "reverse": _BOOL_FALSE}, channels="reshape"),
    "Flatten": OpSpec(channels="flatten"),
    "SwapAxis": OpSpec({"dim1": Attr(_AXIS, 0), "dim2": Attr(_AXIS, 0)}, channels="unknown"),
    "transpose": OpSpec({"axes": Attr(integers(-MAX_DIM), ())}, channels="unknown"),
    "expand_dims": OpSpec({"axis": Attr(_AXIS, required=True)}, channels="unknown"),
    "clip": OpSpec({"a_min": Attr(number(), required=True), "a_max": Attr(number(), required=True)}),
    "softmax": _SOFTMAX, "log_softmax": _SOFTMAX,
    "SoftmaxActivation": OpSpec({"mode": Attr(choice("instance", "channel"), "instance")}),
    "SoftmaxOutput": OpSpec({"grad_scale": Attr(number(), 1.0), "ignore_label": Attr(number(), -1.0),
                             "multi_output": _BOOL_FALSE, "use_ignore": _BOOL_FALSE, "preserve_shape": _BOOL_FALSE,
                             "normalization": Attr(choice("batch", "null", "valid"), "null"), "out_grad": _BOOL_FALSE,
                             "smooth_alpha": Attr(number(), 0.0)}, roles=("data", "label")),
    "Cast": OpSpec({"dtype": Attr(choice("float16", "float32", "float64"), required=True)}),
}
KNOWN_OPS.update((name, _PLAIN) for name in (
    "relu", "sigmoid", "tanh", "softsign", "BlockGrad", "identity", "_copy", "negative", "abs", "sign"))
KNOWN_OPS.update((name, _REDUCTION) for name in ("mean", "sum", "max", "min"))
KNOWN_OPS.update((name, _ELEMENTWISE) for name in (
    "elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div", "_plus", "_Plus", "_minus", "_Minus", "_mul",
    "_Mul", "_div", "_Div"))
KNOWN_OPS.update((name, _BROADCAST) for name in (
    "broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_plus", "broadcast_minus",
    "broadcast_maximum", "broadcast_minimum"))
KNOWN_OPS.update((name, _SCALAR) for name in (
    "_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_div_scalar", "_rdiv_scalar", "_maximum_scalar",
    "_minimum_scalar", "_greater_scalar", "_greater_equal_scalar", "_lesser_scalar", "_lesser_equal_scalar",
    "_equal_scalar", "_not_equal_scalar"))

# MXNet's hidden attributes ("__name__") that it reads back from a saved symbol
HIDDEN_ATTRS = {
    "__shape__": Attr(integers(0, range(0, MAX_DIM + 1))), "__dtype__": Attr(integer(-1, 12)),
    "__storage_type__": Attr(integer(-1, 0)), "__lr_mult__": Attr(number()), "__wd_mult__": Attr(number()),
    "__init__": Attr(text_of_length(4096)),
}
