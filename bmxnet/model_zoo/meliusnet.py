"""MeliusNet (Bethge et al., "MeliusNet: Can Binary Neural Networks Achieve MobileNet-level
Accuracy?"): Dense Blocks add 64 channels, Improvement Blocks refine the newest 64."""
from mxnet.gluon import nn

from ..nn import QConv2D, binary_layer_config
from .common import DenseLayer, Transition, classifier, stem

GROWTH = 64

# name: (blocks per stage, channels after each transition, groups of the 1x1 transition convs)
meliusnet_spec = {
    "22": ((4, 5, 4, 4), (160, 224, 256), 1),
    "29": ((4, 6, 8, 6), (128, 192, 256), 1),
    "42": ((5, 8, 14, 10), (160, 256, 416), 1),
    "59": ((6, 12, 24, 12), (192, 320, 544), 1),
    "a": ((4, 5, 5, 6), (160, 256, 288), 4),
    "b": ((4, 6, 8, 6), (160, 224, 320), 2),
    "c": ((3, 5, 10, 6), (128, 192, 288), 4),
}


class ImprovementBlock(nn.HybridBlock):
    """BN -> binary 3x3 conv over all C channels, added to the last 64 channels only."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.kept = channels - GROWTH
        with self.name_scope():
            self.bn = nn.BatchNorm()
            self.conv = QConv2D(GROWTH, 3, padding=1)

    def hybrid_forward(self, F, x):
        improvement = self.conv(self.bn(x))
        newest = F.slice_axis(x, axis=1, begin=self.kept, end=None)
        return F.concat(F.slice_axis(x, axis=1, begin=0, end=self.kept), newest + improvement, dim=1)


class MeliusNet(nn.HybridBlock):
    """Stem -> stages of (Dense Block, Improvement Block) pairs with transitions -> classifier."""

    def __init__(self, blocks, transition_channels, groups=1, classes=1000,
                 initial_layers="grouped_stem", **binary_options):
        super().__init__()
        binary_options.setdefault("clip", 1.3)  # the paper's STE clipping
        with self.name_scope(), binary_layer_config(**binary_options):
            self.features = nn.HybridSequential(prefix="")
            self.features.add(stem(initial_layers, 64))
            channels = 64
            self.stage_channels = []
            for stage, count in enumerate(blocks):
                block = nn.HybridSequential(prefix="stage%d_" % (stage + 1))
                with block.name_scope():
                    for _ in range(count):
                        channels += GROWTH
                        block.add(DenseLayer(GROWTH), ImprovementBlock(channels))
                self.features.add(block)
                self.stage_channels.append(channels)
                if stage < len(transition_channels):
                    channels = transition_channels[stage]
                    self.features.add(Transition(channels, "fp", groups, prefix="transition%d_" % (stage + 1)))
            self.output = classifier(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def _named(key):
    blocks, transitions, groups = meliusnet_spec[key]

    def build(groups=groups, **kwargs):
        return MeliusNet(blocks, transitions, groups, **kwargs)
    build.__name__ = "meliusnet" + key if key.isdigit() else "meliusnet_" + key
    build.__doc__ = "MeliusNet%s (Bethge et al. 2020): blocks %s, transitions to %s, groups %d." % (
        key.upper(), blocks, transitions, groups)
    return build


meliusnet22, meliusnet29, meliusnet42, meliusnet59 = (_named(k) for k in ("22", "29", "42", "59"))
meliusnet_a, meliusnet_b, meliusnet_c = (_named(k) for k in ("a", "b", "c"))
