"""Binary network architectures by name."""
from .lenet import BinaryLeNet, lenet_binary
from .resnet_e import ResNetE, birealnet18, birealnet34, resnete18, resnete34

_models = {"lenet_binary": lenet_binary, "resnete18": resnete18, "resnete34": resnete34,
           "birealnet18": birealnet18, "birealnet34": birealnet34}


def get_model(name, **kwargs):
    """Returns the network registered as `name`, built with kwargs."""
    if name not in _models:
        raise ValueError("unknown model %r; available: %s" % (name, ", ".join(sorted(_models))))
    return _models[name](**kwargs)


__all__ = ["get_model", "BinaryLeNet", "ResNetE", "lenet_binary", "resnete18", "resnete34",
           "birealnet18", "birealnet34"]
