"""Pieces shared by the model families: stems (initial layers) and the classifier head."""
from mxnet.gluon import nn

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
                layers.add(nn.Conv2D(width, 3, strides=stride, padding=1, groups=groups, use_bias=False),
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
