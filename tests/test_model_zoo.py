"""Model zoo (LeNet, ResNetE / Bi-Real, BinaryDenseNet, MeliusNet) and model statistics."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import bmxnet
from bmxnet import nn as bnn
from bmxnet import stats
from bmxnet.model_zoo import get_model


def binary_convs(net):
    found = []

    def visit(block):
        if isinstance(block, bnn.QConv2D):
            found.append(block)
        for child in block._children.values():
            visit(child)
    visit(net)
    return found


@pytest.mark.parametrize("name", ["resnete18", "resnete34", "birealnet18", "birealnet34", "binary_densenet28",
                                  "binary_densenet37", "binary_densenet45", "meliusnet22", "meliusnet29",
                                  "meliusnet42", "meliusnet59", "meliusnet_a", "meliusnet_b", "meliusnet_c"])
def test_model_builds_hybridizes_and_trains_one_step(name):
    net = get_model(name, classes=10, initial_layers="thumbnail")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.random.uniform(-1, 1, (2, 3, 32, 32))
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), mx.nd.array([1, 7]))
    loss.backward()
    assert net(x).shape == (2, 10)
    grads = [p.grad() for p in net.collect_params().values() if p.grad_req != "null"]
    assert all(np.isfinite(g.asnumpy()).all() for g in grads)


@pytest.mark.parametrize("initial_layers,size", [("imagenet", 64), ("grouped_stem", 64), ("thumbnail", 32)])
def test_initial_layers_give_the_expected_resolution(initial_layers, size):
    net = get_model("resnete18", classes=5, initial_layers=initial_layers)
    net.initialize()
    features = net.features(mx.nd.ones((1, 3, size, size)))
    expected = size // (32 if initial_layers != "thumbnail" else 8)
    assert features.shape == (1, 512, expected, expected)


@pytest.mark.parametrize("name,units,method", [("resnete18", 16, "ste"), ("resnete34", 32, "ste"),
                                               ("birealnet18", 16, "approx_sign")])
def test_resnet_e_has_one_shortcut_per_binary_conv_and_stage_widths(name, units, method):
    net = get_model(name)
    convs = [c for c in binary_convs(net) if c._conv_attrs["kernel"] == (3, 3)]
    assert len(convs) == units
    assert sorted({c.channels for c in convs}) == [64, 128, 256, 512]
    assert all(c.activation._attrs["method"] == method for c in convs)
    assert [c._conv_attrs["stride"] for c in convs].count((2, 2)) == 3


def test_binary_downsampling_uses_binary_1x1_convs():
    assert not [c for c in binary_convs(get_model("resnete18")) if c._conv_attrs["kernel"] == (1, 1)]
    assert len([c for c in binary_convs(get_model("resnete18", downsample="binary"))
                if c._conv_attrs["kernel"] == (1, 1)]) == 3


def test_unknown_names_and_options_are_rejected():
    with pytest.raises(ValueError, match="unknown model 'resnet99'; available: .*resnete18"):
        get_model("resnet99")
    with pytest.raises(ValueError, match="initial_layers must be one of"):
        get_model("resnete18", initial_layers="huge")
    with pytest.raises(ValueError, match="downsample must be 'fp' or 'binary'"):
        get_model("resnete18", downsample="pool")


def test_stats_of_a_hand_countable_net():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, padding=1, in_channels=1, use_bias=True),    # float
            gluon.nn.BatchNorm(in_channels=4),
            bnn.QConv2D(6, 3, padding=1, in_channels=4),                        # binary
            bnn.QConv2D(6, 3, padding=1, in_channels=6, bits_a=2),              # 2-bit: float
            gluon.nn.Flatten(), bnn.QDense(3, in_units=150))                    # binary
    net.initialize()
    result = stats.summary(net, (1, 1, 5, 5))
    assert result.flops == 25 * 4 * 9 + 25 * 6 * 54
    assert result.bops == 25 * 6 * 36 + 150 * 3
    assert result.ops == result.bops / 64 + result.flops
    assert result.params_binary == 6 * 4 * 9 + 3 * 150
    assert result.params_float == (4 * 9 + 4) + 4 * 4 + 6 * 6 * 9
    assert result.size_mib == pytest.approx((result.params_binary / 8 + result.params_float * 4) / 2 ** 20)
    assert [r["output_shape"] for r in result.rows] == [[1, 4, 5, 5], [1, 6, 5, 5], [1, 6, 5, 5], [1, 3]]


def test_birealnet18_matches_the_operation_counts_of_the_paper():
    result = stats.summary(get_model("birealnet18"), (1, 3, 224, 224))
    assert result.bops == pytest.approx(1.68e9, rel=0.01)   # Bi-Real Net paper, table 3
    assert result.flops == pytest.approx(1.39e8, rel=0.02)
    assert result.size_mib == pytest.approx(4.0, rel=0.02)  # Bethge et al.: 4.0 MB with fp downsampling


def test_packed_resnete18_has_the_size_stats_predict(tmp_path):
    net = get_model("resnete18", classes=10, initial_layers="thumbnail")
    net.initialize()
    net.hybridize()
    net(mx.nd.ones((1, 3, 32, 32)))
    predicted = stats.summary(net, (1, 3, 32, 32)).size_mib * 2 ** 20
    net.export(str(tmp_path / "r18"))
    _, params_file, _ = bmxnet.convert(str(tmp_path / "r18-symbol.json"), str(tmp_path / "r18-0000.params"))
    assert os.path.getsize(params_file) == pytest.approx(predicted, rel=0.02)


def test_bmxnet_stats_cli_prints_json_totals():
    result = subprocess.run([sys.executable, "-m", "smd.model_stats", "resnete18", "--input-shape",
                             "1,3,32,32", "--initial-layers", "thumbnail", "--classes", "10", "--json"],
                            capture_output=True, text=True, timeout=300,
                            cwd=os.path.join(os.path.dirname(__file__), ".."))
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"bops", "flops", "ops", "params_binary", "params_float", "size_mib"} <= set(totals)
    assert totals["ops"] == totals["bops"] / 64 + totals["flops"]


@pytest.mark.parametrize("name,stage_channels,transitions", [
    ("meliusnet22", [320, 480, 480, 512], (160, 224, 256)),
    ("meliusnet29", [320, 512, 704, 640], (128, 192, 256)),
    ("meliusnet42", [384, 672, 1152, 1056], (160, 256, 416)),
    ("meliusnet59", [448, 960, 1856, 1312], (192, 320, 544)),
    ("meliusnet_a", [320, 480, 576, 672], (160, 256, 288)),
    ("meliusnet_b", [320, 544, 736, 704], (160, 224, 320)),
    ("meliusnet_c", [256, 448, 832, 672], (128, 192, 288)),
    ("binary_densenet28", [448, 544, 576, 576], (160, 192, 256)),
])
def test_channels_per_stage_follow_the_spec(name, stage_channels, transitions):
    net = get_model(name)
    assert net.stage_channels == stage_channels
    found = [b.conv._channels for b in net.features._children.values() if type(b).__name__ == "Transition"]
    assert tuple(found) == transitions


def test_meliusnet_defaults_grouped_stem_clip_and_shuffled_grouped_transitions():
    net = get_model("meliusnet_a")
    assert all(c.activation._attrs["clip"] == 1.3 for c in binary_convs(net))
    transitions = [b for b in net.features._children.values() if type(b).__name__ == "Transition"]
    assert all(t.groups == 4 and t.conv._kwargs["num_group"] == 4 for t in transitions)
    stem_convs = [b for b in net.features[0]._children.values() if isinstance(b, gluon.nn.Conv2D)]
    assert [c._kwargs["num_group"] for c in stem_convs] == [1, 4, 8]


def test_improvement_block_changes_only_the_newest_64_channels():
    from bmxnet.model_zoo.meliusnet import ImprovementBlock
    block = ImprovementBlock(96)
    block.initialize()
    x = mx.nd.random.uniform(-1, 1, (1, 96, 5, 5))
    out = block(x)
    np.testing.assert_array_equal(out[:, :32].asnumpy(), x[:, :32].asnumpy())
    assert not np.allclose(out[:, 32:].asnumpy(), x[:, 32:].asnumpy())


def test_flexible_binary_densenet_builds_densenete_variants():
    net = get_model("binary_densenet", block_config=(2, 3), growth_rate=32, init_features=48,
                    reduction=(1.4,), downsample="binary", classes=4, initial_layers="thumbnail")
    net.initialize()
    assert net.stage_channels == [112, 64 + 96] and net(mx.nd.ones((1, 3, 16, 16))).shape == (1, 4)
    with pytest.raises(ValueError, match="one value per transition"):
        get_model("binary_densenet", block_config=(2, 3), reduction=(2.0, 2.0))


@pytest.mark.parametrize("name,bops,flops,size_mb", [("meliusnet22", 4.62e9, 1.35e8, 3.9),
                                                      ("meliusnet42", 9.69e9, 1.74e8, 10.1)])
def test_meliusnet_statistics_match_the_paper(name, bops, flops, size_mb):
    result = stats.summary(get_model(name), (1, 3, 224, 224))
    assert result.bops == pytest.approx(bops, rel=0.01)
    assert result.flops == pytest.approx(flops, rel=0.02)
    assert result.size_mib == pytest.approx(size_mb, rel=0.04)


def test_gluoncv_get_model_builds_bmxnet_networks_after_import():
    import gluoncv  # a pinned dependency (requirements.txt)
    net = gluoncv.model_zoo.get_model("meliusnet22", classes=7, initial_layers="thumbnail")
    assert isinstance(net, bmxnet.model_zoo.MeliusNet)
    net.initialize()
    assert net(mx.nd.ones((1, 3, 32, 32))).shape == (1, 7)
    assert isinstance(gluoncv.model_zoo.get_model("resnete18"), bmxnet.model_zoo.ResNetE)


def test_options_of_the_training_flags_reach_the_models():
    net = get_model("resnete18", pool_downsample=False, downsample="binary")
    shortcut_convs = [c for c in binary_convs(net) if c._conv_attrs["kernel"] == (1, 1)]
    assert len(shortcut_convs) == 3 and all(c._conv_attrs["stride"] == (2, 2) for c in shortcut_convs)
    net.initialize()
    assert net(mx.nd.ones((1, 3, 64, 64))).shape == (1, 1000)
    melius = get_model("meliusnet22", groups=2)
    assert all(t.groups == 2 for t in melius.features._children.values() if type(t).__name__ == "Transition")


def test_get_model_list_names_every_model_get_model_builds():
    from bmxnet.model_zoo import get_model_list
    names = get_model_list()
    assert names == sorted(names) and {"lenet_binary", "resnete18", "meliusnet22", "binary_densenet28"} <= set(names)
    with pytest.raises(ValueError, match="available: " + ", ".join(names)):
        get_model("resnet_nonexistent")
