"""ResNetE and Bi-Real Net (Bethge et al., "Training Competitive Binary Neural Networks from
Scratch"; Liu et al., "Bi-Real Net"): ResNet basic blocks in which every binary 3x3
convolution has its own shortcut."""
from mxnet.gluon import nn

from ..nn import QConv2D, binary_layer_config
from .common import classifier, stem

# blocks per stage (each block = two binary 3x3 convolutions, each with a shortcut)
resnet_e_spec = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}
STAGE_CHANNELS = (64, 128, 256, 512)


class Downsample(nn.HybridBlock):
    """Shortcut that halves the resolution: AvgPool 2x2 -> 1x1 conv (float for 'fp', binary
    for 'binary') -> BN; without pooling the 1x1 conv has stride 2."""

    def __init__(self, channels, kind, pool=True, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("fp", "binary"):
            raise ValueError("downsample must be 'fp' or 'binary', got %r" % kind)
        stride = 1 if pool else 2
        self.body = nn.HybridSequential(prefix="")
        with self.body.name_scope():
            if pool:
                self.body.add(nn.AvgPool2D(2, 2, ceil_mode=True, count_include_pad=False))
            self.body.add(nn.Conv2D(channels, 1, strides=stride, use_bias=False) if kind == "fp"
                          else QConv2D(channels, 1, strides=stride))
            self.body.add(nn.BatchNorm())

    def hybrid_forward(self, F, x):
        return self.body(x)


class ResidualUnitE(nn.HybridBlock):
    """BN -> binary 3x3 conv, added to the shortcut (identity or Downsample)."""

    def __init__(self, channels, stride, downsample, pool_downsample=True, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.bn = nn.BatchNorm()
            self.conv = QConv2D(channels, 3, strides=stride, padding=1)
            self.shortcut = Downsample(channels, downsample, pool_downsample) if stride != 1 else None

    def hybrid_forward(self, F, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(self.bn(x)) + residual


class ResNetE(nn.HybridBlock):
    """Stem -> 4 stages of ResNetE units -> classifier."""

    def __init__(self, layers, classes=1000, initial_layers="imagenet", downsample="fp",
                 pool_downsample=True, channels=STAGE_CHANNELS, **binary_options):
        super().__init__()
        with self.name_scope(), binary_layer_config(**binary_options):
            self.features = nn.HybridSequential(prefix="")
            self.features.add(stem(initial_layers, channels[0]))
            in_channels = channels[0]
            for stage, (blocks, width) in enumerate(zip(layers, channels)):
                units = nn.HybridSequential(prefix="stage%d_" % (stage + 1))
                with units.name_scope():
                    for unit in range(2 * blocks):
                        stride = 2 if unit == 0 and stage > 0 else 1
                        if stride == 1 and width != in_channels:
                            raise ValueError("stage %d changes channels without downsampling" % stage)
                        units.add(ResidualUnitE(width, stride, downsample, pool_downsample))
                        in_channels = width
                self.features.add(units)
            self.output = classifier(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_resnet_e(num_layers, **kwargs):
    """ResNetE with `num_layers` in (18, 34)."""
    if num_layers not in resnet_e_spec:
        raise ValueError("ResNetE depth must be one of %s" % sorted(resnet_e_spec))
    return ResNetE(resnet_e_spec[num_layers], **kwargs)


def resnete18(**kwargs):
    """ResNetE-18 (Bethge et al. 2019), ste sign; fp downsampling by default."""
    return get_resnet_e(18, **kwargs)


def resnete34(**kwargs):
    """ResNetE-34 (Bethge et al. 2019)."""
    return get_resnet_e(34, **kwargs)


def birealnet18(**kwargs):
    """Bi-Real Net 18 (Liu et al. 2018): ResNetE-18 with the approx_sign estimator."""
    kwargs.setdefault("method", "approx_sign")
    return get_resnet_e(18, **kwargs)


def birealnet34(**kwargs):
    """Bi-Real Net 34 (Liu et al. 2018)."""
    kwargs.setdefault("method", "approx_sign")
    return get_resnet_e(34, **kwargs)
