"""Binary LeNet for MNIST / Fashion-MNIST: first conv and last dense in full precision."""
from mxnet.gluon import nn

from ..nn import QConv2D, QDense, binary_layer_config


class BinaryLeNet(nn.HybridBlock):
    """Float 5x5 conv -> pool -> BN -> [binary 3x3 conv -> BN -> pool] x2 -> binary dense -> BN ->
    float dense.

    BatchNorm sits before each binary layer, so the sign sees centred values
    (Rastegari et al.; BMXNet-v2 and larq use the same order).
    """

    def __init__(self, classes=10, channels=(64, 128), hidden=512, **binary_options):
        super().__init__()
        with self.name_scope(), binary_layer_config(**binary_options):
            self.features = nn.HybridSequential()
            self.features.add(nn.Conv2D(channels[0], 5, padding=2, use_bias=False),
                              nn.MaxPool2D(2), nn.BatchNorm())
            for width in channels:
                self.features.add(QConv2D(width, 3, padding=1), nn.BatchNorm(), nn.MaxPool2D(2))
            self.features.add(nn.Flatten(), QDense(hidden), nn.BatchNorm())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def lenet_binary(classes=10, **kwargs):
    """Binary LeNet (BMXNet, Yang et al. 2017) for 28x28 grey images."""
    return BinaryLeNet(classes=classes, **kwargs)
