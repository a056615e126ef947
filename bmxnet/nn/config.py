"""Defaults for binary layers, set for a block of code with ``binary_layer_config``."""
import contextlib
import threading

from .. import quantizers

DEFAULTS = {
    "bits": 1,            # weight bits
    "bits_a": 1,          # activation bits
    "method": "ste",      # gradient estimator of 1-bit activations
    "clip": 1.0,          # ste gradient clipping threshold
    "beta": 5.0,          # swish_sign steepness
    "scaling": "none",    # "xnor": per-output-channel mean|w|
    "pad_value": 0.0,     # 0 (zero padding) or -1 (BMXNet-v2)
    "regularizer": None,  # BNN+: None, "l1" or "l2"
    "reg_lambda": 1e-7,   # weight of the BNN+ term in the loss
    "alpha_init": "mean", # BNN+ scale initialisation: "mean" or "median" of |W| per filter
}

# larq's quantizer names, accepted as the layers' input_quantizer / kernel_quantizer: the
# options each stands for (dorefa_quantizer: k bits, k = bits_a or bits, at least 2)
INPUT_QUANTIZERS = {"ste_sign": {"bits_a": 1, "method": "ste"}, "approx_sign": {"bits_a": 1, "method": "approx_sign"},
                    "swish_sign": {"bits_a": 1, "method": "swish_sign"}, "dorefa_quantizer": {}}
KERNEL_QUANTIZERS = {"ste_sign": {"bits": 1, "scaling": "none"},
                     "magnitude_aware_sign": {"bits": 1, "scaling": "xnor"}, "dorefa_quantizer": {}}
QUANTIZER_ARGUMENTS = (("input_quantizer", INPUT_QUANTIZERS, "bits_a"), ("kernel_quantizer", KERNEL_QUANTIZERS, "bits"))

_state = threading.local()


def _stack():
    if not hasattr(_state, "stack"):
        _state.stack = [dict(DEFAULTS)]
    return _state.stack


def _validate(config):
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError("unknown binary layer option(s) %s; known: %s"
                         % (", ".join(sorted(unknown)), ", ".join(sorted(DEFAULTS))))
    for key in ("bits", "bits_a"):
        if key in config and not 1 <= int(config[key]) <= 32:
            raise ValueError("%s must be in [1, 32], got %r" % (key, config[key]))
    if config.get("method", "ste") not in quantizers.ESTIMATORS:
        raise ValueError("method must be one of %s, got %r"
                         % (", ".join(quantizers.ESTIMATORS), config["method"]))
    if config.get("scaling", "none") not in ("none", "xnor"):
        raise ValueError("scaling must be 'none' or 'xnor', got %r" % config["scaling"])
    if float(config.get("pad_value", 0.0)) not in (0.0, -1.0):
        raise ValueError("pad_value must be 0 or -1, got %r" % config["pad_value"])
    if config.get("regularizer") not in (None, "l1", "l2"):
        raise ValueError("regularizer must be None, 'l1' or 'l2', got %r" % config["regularizer"])
    if config.get("alpha_init", "mean") not in ("mean", "median"):
        raise ValueError("alpha_init must be 'mean' or 'median', got %r" % config["alpha_init"])


def current_config():
    """The defaults in force for layers created now."""
    return dict(_stack()[-1])


def resolve(input_quantizer=None, kernel_quantizer=None, **overrides):
    """Current defaults with the given non-None values on top, validated. A quantizer name
    stands for the options it implies; an option given beside it must agree."""
    given = {key: value for key, value in overrides.items() if value is not None}
    named = [(argument, name, table, bits) for (argument, table, bits), name in
             zip(QUANTIZER_ARGUMENTS, (input_quantizer, kernel_quantizer)) if name is not None]
    for argument, name, table, _ in named:
        if name not in table:
            raise ValueError("%s must be one of %s, got %r" % (argument, ", ".join(sorted(table)), name))
        for key, implied in table[name].items():
            if key in given and given[key] != implied:
                raise ValueError("%s=%r means %s=%r, but %s=%r was given"
                                 % (argument, name, key, implied, key, given[key]))
            given[key] = implied
    config = current_config()
    config.update(given)
    _validate(config)
    for argument, name, _, bits in named:
        if name == "dorefa_quantizer" and int(config[bits]) < 2:
            raise ValueError("%s='dorefa_quantizer' needs %s of at least 2 (1 bit is a sign quantizer)"
                             % (argument, bits))
    return config


@contextlib.contextmanager
def binary_layer_config(**options):
    """Sets defaults (bits, bits_a, method, clip, ...) for binary layers created inside.

    Example::

        with binary_layer_config(bits_a=2, method="approx_sign"):
            net = make_network()
    """
    _validate(options)
    config = current_config()
    config.update(options)
    _stack().append(config)
    try:
        yield config
    finally:
        _stack().pop()
