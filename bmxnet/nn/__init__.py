"""Gluon layers for binary and low-bit networks."""
from .bnn_plus import bnn_plus_loss
from .config import binary_layer_config, current_config
from .layers import QActivation, QConv2D, QDense

__all__ = ["QActivation", "QConv2D", "QDense", "binary_layer_config", "current_config",
           "bnn_plus_loss"]
