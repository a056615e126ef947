"""Checks of the parameters against a checked symbol graph (graph_check.check_nodes).

Every parameter names a variable and is a float array of finite values; every parameter
input of a layer is in the params; weights, biases and BatchNorm arrays have the shapes the layers' attributes
give them; and where the graph tells the size of axis 1 of a layer's input (channels of a
feature map, features of a 2-D tensor), the weights take that many (per group). The size
is followed from the parameters through the operators (op_specs: `channels`); the batch and
spatial sizes are not known from the files and are not needed. Raises ParamsError.
"""
import numpy as np

from .conversion_error import shown

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
MX_DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
MAX_DIM_SIZE = 2 ** 31 - 1
UNKNOWN = (None, None)  # (number of dimensions, size of axis 1)


class ParamsError(ValueError):
    """Parameters that do not fit the symbol; the message is one line."""


def param_key(params, name):
    """The key of variable `name` in `params` (arg:name, aux:name or name), or None."""
    return next((key for key in ("arg:" + name, "aux:" + name, name) if key in params), None)


def param_name(key):
    """The variable name of a params key: arg:name, aux:name or name."""
    return key[4:] if isinstance(key, str) and key.startswith(("arg:", "aux:")) else key


def _shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_param_arrays(nodes, params):
    """Keys name variables (once), values are float numpy arrays of sane sizes."""
    variables = {node["name"]: node for node in nodes if node["op"] == "null"}
    seen = set()
    for key, value in params.items():
        name = param_name(key)
        if not isinstance(name, str) or name not in variables:
            raise ParamsError("params hold %s, which the symbol does not use" % shown(name))
        if name in seen:
            raise ParamsError("params hold %s twice" % shown(name))
        seen.add(name)
        if not isinstance(value, np.ndarray):
            raise ParamsError("parameter %s is a %s, not a numpy array" % (name, type(value).__name__))
        if value.dtype not in FLOAT_DTYPES:
            raise ParamsError("parameter %s has dtype %s, expected a float type" % (name, value.dtype))
        if value.ndim == 0 or any(d > MAX_DIM_SIZE for d in value.shape):
            raise ParamsError("parameter %s has the shape %s" % (name, _shape(value.shape)))
        if not np.isfinite(value).all():  # the float-simulated model would compute NaN from it
            raise ParamsError("parameter %s holds NaN or infinite values" % name)


def check_recorded_shapes(nodes, params):
    """Parameters have the shape and dtype their variables record (MXNet checks them on
    loading: 0 is a size not yet known)."""
    for node in nodes:
        key = param_key(params, node["name"]) if node["op"] == "null" else None
        if key is None:
            continue
        value, attrs = params[key], node.get("attrs") or {}
        recorded = _recorded_shape(attrs.get("__shape__"))
        if recorded is not None and (len(recorded) != value.ndim or any(
                r not in (0, d) for r, d in zip(recorded, value.shape))):
            raise ParamsError("parameter %s has the shape %s, but the symbol records %s"
                              % (node["name"], _shape(value.shape), attrs["__shape__"]))
        if "__dtype__" in attrs and int(attrs["__dtype__"]) not in (-1, MX_DTYPE_CODES[value.dtype]):
            raise ParamsError("parameter %s is %s, but the symbol records dtype code %s"
                              % (node["name"], value.dtype, attrs["__dtype__"]))


def _recorded_shape(text):
    return None if text is None else tuple(int(v) for v in text.strip("()[]").split(",") if v.strip())


class _Shapes:
    """(ndim, size of axis 1) of each node's first output, each None where not known."""

    def __init__(self, nodes, checked, params):
        self.nodes, self.checked, self.params = nodes, checked, params
        self.infos = []

    def info(self, entry):
        return self.infos[entry[0]] if entry[1] == 0 else UNKNOWN

    def param(self, node, position, role):
        variable = self.nodes[node["inputs"][position][0]]
        key = param_key(self.params, variable["name"])
        if key is None:
            raise ParamsError("layer %s: its %s %s is not in the params"
                              % (node["name"], role, shown(variable["name"])))
        return self.params[key]

    def run(self):
        for node, (spec, values) in zip(self.nodes, self.checked):
            roles = spec.roles(values)
            arrays = {role: self.param(node, i, role) for i, role in enumerate(roles) if role not in ("data", "label")}
            inputs = [self.info(entry) for entry, role in zip(node["inputs"], roles) if role == "data"]
            self.infos.append(getattr(self, "_" + spec.channels)(node, values, arrays, inputs))

    def _variable(self, node, values, arrays, inputs):
        key = param_key(self.params, node["name"])
        if key is None:
            return UNKNOWN
        shape = self.params[key].shape
        return len(shape), (shape[1] if len(shape) > 1 else None)

    def _same(self, node, values, arrays, inputs):
        return inputs[0] if inputs else UNKNOWN

    def _unknown(self, node, values, arrays, inputs):
        return UNKNOWN

    def _convolution(self, node, values, arrays, inputs):
        weight, kernel, filters, groups = arrays["weight"], values["kernel"], values["num_filter"], values["num_group"]
        (ndim, channels), expected_ndim = inputs[0], 2 + len(kernel)
        if weight.ndim != expected_ndim or weight.shape[0] != filters or tuple(weight.shape[2:]) != kernel \
                or weight.shape[1] < 1:
            raise ParamsError("weight of layer %s has shape %s, which does not fit its attributes (expected (%d, "
                              "channels / %d, %s))" % (node["name"], _shape(weight.shape), filters, groups,
                                                       ", ".join(map(str, kernel))))
        if channels is not None and weight.shape[1] * groups != channels:
            raise ParamsError("layer %s reads %d channels, but its weight %s in %d group(s) takes %d"
                              % (node["name"], channels, _shape(weight.shape), groups, weight.shape[1] * groups))
        if ndim is not None and ndim != expected_ndim:
            raise ParamsError("layer %s has a %d-D kernel but reads a %d-D tensor" % (node["name"], len(kernel), ndim))
        self._check_bias(node, arrays, filters)
        return expected_ndim, filters

    def _fully_connected(self, node, values, arrays, inputs):
        weight, hidden = arrays["weight"], values["num_hidden"]
        (ndim, features) = inputs[0]
        if weight.ndim != 2 or weight.shape[0] != hidden or weight.shape[1] < 1:
            raise ParamsError("weight of layer %s has shape %s, which does not fit its attributes (expected (%d, "
                              "inputs))" % (node["name"], _shape(weight.shape), hidden))
        inputs_known = features is not None and ndim is not None
        if inputs_known and (weight.shape[1] != features if ndim == 2 else
                             values["flatten"] and weight.shape[1] % features):
            raise ParamsError("layer %s reads %s %d, but its weight %s takes %d inputs" % (
                node["name"], "features:" if ndim == 2 else "a map of channels:", features, _shape(weight.shape),
                weight.shape[1]))
        self._check_bias(node, arrays, hidden)
        if values["flatten"] or ndim == 2:
            return 2, hidden
        return (ndim, features) if ndim is not None else UNKNOWN  # the last axis changed

    def _check_bias(self, node, arrays, size):
        if "bias" in arrays and arrays["bias"].shape != (size,):
            raise ParamsError("bias of layer %s has shape %s, expected (%d,)"
                              % (node["name"], _shape(arrays["bias"].shape), size))

    def _batchnorm(self, node, values, arrays, inputs):
        (ndim, channels), axis = inputs[0], values["axis"]
        sizes = {array.shape for array in arrays.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ParamsError("BatchNorm %s: gamma, beta and moving statistics have the shapes %s, expected one (C,)"
                              % (node["name"], ", ".join(_shape(a.shape) for a in arrays.values())))
        size = next(iter(sizes))[0]
        if ndim is not None and not -ndim <= axis < ndim:
            raise ParamsError("BatchNorm %s normalizes axis %d of a %d-D tensor" % (node["name"], axis, ndim))
        if axis == 1 or (ndim is not None and axis + ndim == 1):
            if channels is not None and channels != size:
                raise ParamsError("BatchNorm %s reads %d channels, but its parameters have %d"
                                  % (node["name"], channels, size))
            return ndim, size
        return ndim, channels

    def _concat(self, node, values, arrays, inputs):
        ndims = {ndim for ndim, _ in inputs if ndim is not None}
        if len(ndims) > 1:
            raise ParamsError("concat %s joins tensors of %s dimensions" % (node["name"], sorted(ndims)))
        ndim, dim = next(iter(ndims), None), values["dim"]
        sizes = [size for _, size in inputs]
        if dim == 1 or (ndim is not None and dim + ndim == 1):
            return ndim, (None if None in sizes else sum(sizes))
        if ndim is None and dim < 0:
            return ndim, None
        return ndim, self._agreeing(node, sizes)

    def _agreeing(self, node, sizes):
        known = {size for size in sizes if size is not None}
        if len(known) > 1:
            raise ParamsError("node %s combines tensors of %s channels" % (node["name"], sorted(known)))
        return next(iter(known), None)

    def _elementwise(self, node, values, arrays, inputs):
        ndims = {ndim for ndim, _ in inputs if ndim is not None}
        if len(ndims) > 1:
            raise ParamsError("node %s combines tensors of %s dimensions" % (node["name"], sorted(ndims)))
        return next(iter(ndims), None), self._agreeing(node, [size for _, size in inputs])

    def _broadcast(self, node, values, arrays, inputs):
        (ndim_a, a), (ndim_b, b) = inputs
        if ndim_a is None or ndim_a != ndim_b:
            return UNKNOWN
        if a is not None and b is not None and 1 not in (a, b) and a != b:
            raise ParamsError("node %s broadcasts tensors of %d and %d channels" % (node["name"], a, b))
        known = [size for size in (a, b) if size not in (None, 1)]
        return ndim_a, known[0] if known else (1 if a == b == 1 else None)

    def _slice_axis(self, node, values, arrays, inputs):
        (ndim, channels), axis = inputs[0], values["axis"]
        if ndim is not None and not -ndim <= axis < ndim:
            raise ParamsError("slice %s takes axis %d of a %d-D tensor" % (node["name"], axis, ndim))
        if not (axis == 1 or (ndim is not None and axis + ndim == 1)):
            return ndim, channels
        if channels is None:
            return ndim, None
        begin, end = values["begin"], values["end"]
        begin = begin + channels if begin < 0 else begin
        end = channels if end is None else (end + channels if end < 0 else end)
        if not 0 <= begin < end <= channels:
            raise ParamsError("slice %s takes channels [%s, %s) of %d" % (node["name"], values["begin"], values["end"],
                                                                          channels))
        return ndim, end - begin

    def _reshape(self, node, values, arrays, inputs):
        shape, (ndim, channels) = values["shape"], inputs[0]
        if shape and set(shape) == {0}:  # each dimension kept
            if ndim is not None and ndim != len(shape):
                raise ParamsError("reshape %s keeps %d dimensions of a %d-D tensor" % (node["name"], len(shape), ndim))
            return len(shape), channels
        return UNKNOWN

    def _flatten(self, node, values, arrays, inputs):
        return inputs[0] if inputs[0][0] == 2 else (2, None)


def check_params(nodes, checked, params):
    """Raises ParamsError unless `params` fit the checked graph (see the module docstring)."""
    check_param_arrays(nodes, params)
    _Shapes(nodes, checked, params).run()
    check_recorded_shapes(nodes, params)
