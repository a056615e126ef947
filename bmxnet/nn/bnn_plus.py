"""BNN+ regularization (Darabi et al., "BNN+: Improved Binary Network Training").

R1(w) = |alpha - |w||, R2(w) = (alpha - |w|)^2 with one trainable alpha per output
filter, which also scales the layer's output. The loss gets lambda * sum R.
"""
import mxnet as mx
import numpy as np


class FilterMagnitudeInit(mx.init.Initializer):
    """Initialises alpha from the already initialised weight: mean or median of |W| per filter."""

    def __init__(self, weight, statistic="mean"):
        super().__init__()
        self._weight = weight
        self._statistic = statistic

    def _init_weight(self, _, arr):
        magnitudes = np.abs(self._weight.data(arr.context).asnumpy()).reshape(arr.shape[0], -1)
        reduce = np.median if self._statistic == "median" else np.mean
        arr[:] = reduce(magnitudes, axis=1)


class FilterMagnitude(mx.gluon.Parameter):
    """alpha, initialised from its layer's weight: after it, so while the weight waits for
    its input's shape (deferred initialisation), alpha waits too."""

    def __init__(self, name, weight, units, statistic):
        super().__init__(name, shape=(units,), init=FilterMagnitudeInit(weight, statistic), allow_deferred_init=True)
        self._weight = weight

    def initialize(self, init=None, ctx=None, default_init=mx.init.Uniform(), force_reinit=False):
        if self._weight._deferred_init and (self._data is None or force_reinit):
            ctx = [mx.context.current_context()] if ctx is None else ctx
            self._data = self._grad = None
            self._deferred_init = (init or self.init, [ctx] if isinstance(ctx, mx.Context) else list(ctx),
                                   default_init, None)
            return
        super().initialize(init, ctx, default_init, force_reinit)


def add_filter_magnitude(params, weight, units, statistic):
    """Registers alpha (a FilterMagnitude) in a block's ParameterDict and returns it."""
    name = params.prefix + "alpha"
    params._params[name] = FilterMagnitude(name, weight, units, statistic)  # get() makes plain Parameters only
    return params.get("alpha")


def regularization_term(weight, alpha, kind):
    """sum over the layer of R1 or R2, as an NDArray (differentiable in weight and alpha)."""
    distance = alpha.reshape((-1, 1)) - mx.nd.abs(weight.reshape((weight.shape[0], -1)))
    return mx.nd.sum(mx.nd.abs(distance) if kind == "l1" else mx.nd.square(distance))


def bnn_plus_loss(net, ctx=None):
    """lambda * sum of the BNN+ terms of every regularized layer in net (0 when there is none).

    Add it to the loss inside ``autograd.record()``.
    """
    total = None
    for block in _walk(net):
        if getattr(block, "regularizer", None) is None:
            continue
        context = ctx or block.weight.list_ctx()[0]
        term = block.reg_lambda * regularization_term(
            block.weight.data(context), block.alpha.data(context), block.regularizer)
        total = term if total is None else total + term
    return total if total is not None else mx.nd.zeros((1,), ctx=ctx)


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)
