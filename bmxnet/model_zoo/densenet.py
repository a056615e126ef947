"""BinaryDenseNet (Bethge et al., "BinaryDenseNet: Developing an Architecture for Binary Neural
Networks"; DenseNetE in "Training Competitive BNNs from Scratch"): dense blocks of binary 3x3
convolutions without bottleneck, transitions with a full-precision (or binary) 1x1 conv."""
from mxnet.gluon import nn

from ..nn import binary_layer_config
from .common import DenseLayer, Transition, classifier, round_channels, stem

# name: (blocks per stage, reduction of each transition)
densenet_spec = {28: ((6, 6, 6, 5), (2.7, 2.7, 2.2)),
                 37: ((6, 8, 12, 6), (3.3, 3.3, 4.0)),
                 45: ((6, 12, 14, 8), (2.7, 3.3, 4.0))}


class BinaryDenseNet(nn.HybridBlock):
    """Stem -> dense blocks with transitions -> classifier. Channels after a transition are
    channels / reduction rounded to a multiple of 32."""

    def __init__(self, block_config, reduction, growth_rate=64, init_features=64, classes=1000,
                 initial_layers="imagenet", downsample="fp", **binary_options):
        super().__init__()
        if len(reduction) != len(block_config) - 1:
            raise ValueError("reduction needs one value per transition (%d), got %d"
                             % (len(block_config) - 1, len(reduction)))
        with self.name_scope(), binary_layer_config(**binary_options):
            self.features = nn.HybridSequential(prefix="")
            self.features.add(stem(initial_layers, init_features))
            channels = init_features
            self.stage_channels = []
            for stage, layers in enumerate(block_config):
                block = nn.HybridSequential(prefix="block%d_" % (stage + 1))
                with block.name_scope():
                    for _ in range(layers):
                        block.add(DenseLayer(growth_rate))
                channels += layers * growth_rate
                self.features.add(block)
                self.stage_channels.append(channels)
                if stage < len(reduction):
                    channels = round_channels(channels / reduction[stage])
                    self.features.add(Transition(channels, downsample, prefix="transition%d_" % (stage + 1)))
            self.output = classifier(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def binary_densenet(block_config=(6, 6, 6, 5), growth_rate=64, init_features=64,
                    reduction=(2.7, 2.7, 2.2), downsample="fp", **kwargs):
    """A BinaryDenseNet / DenseNetE of any block configuration (the papers' variants)."""
    return BinaryDenseNet(tuple(block_config), tuple(reduction), growth_rate, init_features,
                          downsample=downsample, **kwargs)


def _named(depth):
    blocks, reduction = densenet_spec[depth]

    def build(**kwargs):
        return binary_densenet(blocks, reduction=reduction, **kwargs)
    build.__name__ = "binary_densenet%d" % depth
    build.__doc__ = "BinaryDenseNet-%d (Bethge et al. 2019): blocks %s, reduction %s." % (depth, blocks, reduction)
    return build


binary_densenet28 = _named(28)
binary_densenet37 = _named(37)
binary_densenet45 = _named(45)
