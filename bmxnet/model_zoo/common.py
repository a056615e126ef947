"""Pieces shared by the model families: stems (initial layers) and the classifier head."""
from mxnet.gluon import nn

from ..nn import QConv2D

INITIAL_LAYERS = ("imagenet", "grouped_stem", "thumbnail")


def stem(kind, channels=64):
    """Full-precision initial layers.

    imagenet: 7x7 conv stride 2 + 3x3 max pool stride 2; grouped_stem (MeliusNet): 3x3 convs
    3->32 (stride 2), 32->32 (4 groups), 32->channels (8 groups) + max pool; thumbnail: one
    3x3 conv for 32x32 inputs.
    """
    if kind not in INITIAL_LAYERS:
        raise ValueError("initial_layers must be one of %s, got %r" % (", ".join(INITIAL_LAYERS), kind))
    layers = nn.HybridSequential(prefix="stem_")
    with layers.name_scope():
        if kind == "imagenet":
            layers.add(nn.Conv2D(channels, 7, strides=2, padding=3, use_bias=False),
                       nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(3, 2, 1))
        elif kind == "grouped_stem":
            for width, groups, stride in ((32, 1, 2), (32, 4, 1), (channels, 8, 1)):
                layers.add(float_conv(width, 3, strides=stride, padding=1, groups=groups, use_bias=False),
                           nn.BatchNorm(), nn.Activation("relu"))
            layers.add(nn.MaxPool2D(3, 2, 1))
        else:
            layers.add(nn.Conv2D(channels, 3, padding=1, use_bias=False), nn.BatchNorm(),
                       nn.Activation("relu"))
    return layers


def classifier(classes):
    """BN -> ReLU -> global average pool -> float dense."""
    layers = nn.HybridSequential(prefix="head_")
    with layers.name_scope():
        layers.add(nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D(), nn.Flatten(),
                   nn.Dense(classes))
    return layers


class PlainLayoutConv2D(nn.Conv2D):
    """nn.Conv2D (same parameters and names) whose output MXNet turns into plain NCHW at
    once. oneDNN in MXNet 1.9 leaves a grouped convolution's output in a blocked layout that
    the next BatchNorm and Pooling then run through slow reference code (MeliusNet's grouped
    stem: docs/performance.md); reshaping to the same shape forces one reorder and changes no
    value."""

    def hybrid_forward(self, F, x, weight, bias=None):
        return F.reshape(super().hybrid_forward(F, x, weight, bias), shape=(0, 0, 0, 0))


def float_conv(channels, kernel_size, groups=1, **kwargs):
    """A float Conv2D; grouped ones hand on plain NCHW (see PlainLayoutConv2D)."""
    return (PlainLayoutConv2D if groups > 1 else nn.Conv2D)(channels, kernel_size, groups=groups, **kwargs)


def channel_shuffle(F, x, groups):
    """(N, g*c, H, W) -> interleave the g groups, so a grouped conv sees every group."""
    x = F.reshape(x, shape=(0, -4, groups, -1, -2))
    return F.reshape(F.swapaxes(x, 1, 2), shape=(0, -3, -2))


class DenseLayer(nn.HybridBlock):
    """BN -> binary 3x3 conv with `growth` filters, concatenated to the input (C -> C + growth)."""

    def __init__(self, growth, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.bn = nn.BatchNorm()
            self.conv = QConv2D(growth, 3, padding=1)

    def hybrid_forward(self, F, x):
        return F.concat(x, self.conv(self.bn(x)), dim=1)


class Transition(nn.HybridBlock):
    """Halves H and W and sets the channels: BN -> MaxPool 2x2 -> ReLU -> float 1x1 conv
    ("fp"; with groups, a channel shuffle comes first) or BN -> MaxPool 2x2 -> binary 1x1
    conv ("binary")."""

    def __init__(self, channels, downsample="fp", groups=1, **kwargs):
        super().__init__(**kwargs)
        if downsample not in ("fp", "binary"):
            raise ValueError("downsample must be 'fp' or 'binary', got %r" % downsample)
        self.groups = groups
        self.full_precision = downsample == "fp"
        with self.name_scope():
            self.bn = nn.BatchNorm()
            self.pool = nn.MaxPool2D(2, 2, ceil_mode=True)
            self.conv = (float_conv(channels, 1, groups=groups, use_bias=False) if self.full_precision
                         else QConv2D(channels, 1, groups=groups))

    def hybrid_forward(self, F, x):
        x = self.pool(self.bn(x))
        if self.full_precision:
            x = F.relu(x)
        if self.groups > 1:
            x = channel_shuffle(F, x, self.groups)
        return self.conv(x)


def round_channels(channels, multiple=32):
    """Nearest multiple of `multiple` (at least one)."""
    return max(multiple, int(round(channels / float(multiple))) * multiple)
