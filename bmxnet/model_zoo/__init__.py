"""Binary network architectures by name."""
from .lenet import BinaryLeNet, lenet_binary

_models = {"lenet_binary": lenet_binary}


def get_model(name, **kwargs):
    """Returns the network registered as `name`, built with kwargs."""
    if name not in _models:
        raise ValueError("unknown model %r; available: %s" % (name, ", ".join(sorted(_models))))
    return _models[name](**kwargs)


__all__ = ["get_model", "BinaryLeNet", "lenet_binary"]
