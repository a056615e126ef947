"""Binary network architectures by name."""
from .lenet import BinaryLeNet, lenet_binary
from .densenet import BinaryDenseNet, binary_densenet, binary_densenet28, binary_densenet37, binary_densenet45
from .meliusnet import (MeliusNet, meliusnet22, meliusnet29, meliusnet42, meliusnet59, meliusnet_a,
                        meliusnet_b, meliusnet_c)
from .resnet_e import ResNetE, birealnet18, birealnet34, resnete18, resnete34

_models = {"lenet_binary": lenet_binary, "resnete18": resnete18, "resnete34": resnete34,
           "birealnet18": birealnet18, "birealnet34": birealnet34,
           "binary_densenet28": binary_densenet28, "binary_densenet37": binary_densenet37,
           "binary_densenet45": binary_densenet45, "binary_densenet": binary_densenet,
           "meliusnet22": meliusnet22, "meliusnet29": meliusnet29, "meliusnet42": meliusnet42,
           "meliusnet59": meliusnet59, "meliusnet_a": meliusnet_a, "meliusnet_b": meliusnet_b,
           "meliusnet_c": meliusnet_c}


def register_with_gluoncv():
    """Makes gluoncv.model_zoo.get_model(name) build these networks; False without GluonCV."""
    try:
        from gluoncv.model_zoo import model_zoo as gluoncv_zoo
    except ImportError:
        return False
    gluoncv_zoo._models.update(_models)  # GluonCV keeps its registry in this dict
    return True


def get_model_list():
    """Names get_model knows, sorted (GluonCV's name for the same list)."""
    return sorted(_models)


def get_model(name, **kwargs):
    """Returns the network registered as `name`, built with kwargs."""
    if name not in _models:
        raise ValueError("unknown model %r; available: %s" % (name, ", ".join(get_model_list())))
    return _models[name](**kwargs)


__all__ = ["get_model", "get_model_list", "register_with_gluoncv", "BinaryLeNet", "ResNetE", "BinaryDenseNet", "MeliusNet"] + sorted(_models)
