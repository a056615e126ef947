"""Gluon layers: deferred init, hybridize == imperative, export/import, config, BNN+."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from bmxnet import nn as bnn
import reference as ref


def small_net():
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1),
                gluon.nn.BatchNorm(),
                bnn.QConv2D(13, 3, padding=1, strides=2),
                gluon.nn.BatchNorm(),
                bnn.QConv2D(13, 3, padding=2, dilation=2, groups=13, bits_a=2, bits=2),
                gluon.nn.BatchNorm(),
                bnn.QDense(10, method="approx_sign"),
                gluon.nn.BatchNorm(),
                gluon.nn.Dense(4))
    return net


def forward_backward(net, x):
    with autograd.record():
        out = net(x)
        loss = (out * out).sum()
    loss.backward()
    grads = {name: p.grad().asnumpy().copy() for name, p in net.collect_params().items()
             if p.grad_req != "null"}
    return out.asnumpy(), grads


def test_deferred_init_infers_input_channels():
    layer = bnn.QConv2D(16, 3, padding=1)
    layer.initialize()
    out = layer(mx.nd.ones((2, 5, 7, 7)))
    assert layer.weight.shape == (16, 5, 3, 3) and out.shape == (2, 16, 7, 7)
    dense = bnn.QDense(3)
    dense.initialize()
    assert dense(mx.nd.ones((2, 5, 2))).shape == (2, 3) and dense.weight.shape == (3, 10)


def test_hybridized_equals_imperative(rng):
    mx.random.seed(1)
    net = small_net()
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(rng.uniform(-1, 1, size=(3, 3, 11, 11)))
    out_imperative, grads_imperative = forward_backward(net, x)
    net.hybridize()
    out_hybrid, grads_hybrid = forward_backward(net, x)
    np.testing.assert_allclose(out_hybrid, out_imperative, rtol=1e-5, atol=1e-5)
    for name, grad in grads_imperative.items():
        np.testing.assert_allclose(grads_hybrid[name], grad, rtol=1e-4, atol=1e-5, err_msg=name)


def test_qconv2d_equals_sign_then_binary_convolution(rng):
    layer = bnn.QConv2D(6, 3, padding=1, in_channels=4)
    layer.initialize(mx.init.Uniform(1))
    x = rng.uniform(-2, 2, size=(2, 4, 6, 6)).astype(np.float32)
    expected = ref.conv2d(ref.sign(x), ref.sign(layer.weight.data().asnumpy()), pad=(1, 1))
    np.testing.assert_array_equal(layer(mx.nd.array(x)).asnumpy(), expected)
    # the layer's gradient is the QActivation estimator (ste, clip 1) times the conv gradient
    xa = mx.nd.array(x)
    xa.attach_grad()
    with autograd.record():
        out = layer(xa)
    out.backward(mx.nd.ones_like(out))
    dxq, _, _ = ref.conv2d_backward(ref.sign(x), ref.sign(layer.weight.data().asnumpy()),
                                    np.ones(out.shape, np.float32), pad=(1, 1))
    np.testing.assert_allclose(xa.grad.asnumpy(), ref.activation_gradient(x, dxq, 1), atol=1e-4)


def test_export_and_symbolblock_imports_roundtrip(tmp_path, rng):
    net = small_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 3, 11, 11)))
    expected = net(x).asnumpy()
    prefix = str(tmp_path / "small")
    net.export(prefix)
    symbol_json = open(prefix + "-symbol.json").read()
    assert "QConvolution" in symbol_json and "QFullyConnected" in symbol_json
    loaded = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params")
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    symbol = mx.sym.load(prefix + "-symbol.json")
    attrs = {node["op"]: node.get("attrs", {}) for node in
             __import__("json").loads(symbol.tojson())["nodes"] if node["op"] == "QConvolution"}
    assert attrs["QConvolution"]["act_bit"] == "2"


def test_symbol_api_builds_and_binds(rng):
    data = mx.sym.var("data")
    out = mx.sym.QConvolution(mx.sym.QActivation(data, act_bit=1), mx.sym.var("w"),
                              kernel=(3, 3), num_filter=5, pad=(1, 1))
    _, out_shapes, _ = out.infer_shape(data=(1, 3, 4, 4))
    assert out_shapes == [(1, 5, 4, 4)]
    x = rng.uniform(-1, 1, size=(1, 3, 4, 4)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(5, 3, 3, 3)).astype(np.float32)
    result = out.bind(mx.cpu(), {"data": mx.nd.array(x), "w": mx.nd.array(w)}).forward()[0]
    np.testing.assert_array_equal(result.asnumpy(), ref.conv2d(ref.sign(x), ref.sign(w), pad=(1, 1)))


def test_binary_layer_config_sets_defaults_and_restores_them():
    with bnn.binary_layer_config(bits_a=2, method="approx_sign", clip=1.3):
        inner = bnn.QConv2D(4, 3)
        explicit = bnn.QConv2D(4, 3, bits_a=4)
        with bnn.binary_layer_config(bits=2):
            nested = bnn.QDense(3)
    after = bnn.QConv2D(4, 3)
    assert (inner.bits_a, inner.activation._attrs["method"], inner.activation._attrs["clip"]) == (2, "approx_sign", 1.3)
    assert explicit.bits_a == 4
    assert (nested.bits, nested.bits_a) == (2, 2)
    assert (after.bits, after.bits_a, after.activation._attrs["method"]) == (1, 1, "ste")


@pytest.mark.parametrize("bad", [dict(bits_a=0), dict(bits=33), dict(method="tanh"),
                                 dict(scaling="abc"), dict(pad_value=1), dict(regularizer="l3")])
def test_bad_layer_options_raise_value_error(bad):
    with pytest.raises(ValueError):
        bnn.QConv2D(4, 3, **bad)


def test_larq_quantizer_names_stand_for_their_options():
    """input_quantizer / kernel_quantizer as in larq's QuantConv2D; the config fills the rest."""
    with bnn.binary_layer_config(clip=1.3, bits_a=4):
        conv = bnn.QConv2D(4, 3, input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign")
        dense = bnn.QDense(3, input_quantizer="dorefa_quantizer", kernel_quantizer="ste_sign")
        act = bnn.QActivation(quantizer="swish_sign", beta=3.0)
    assert (conv.bits_a, conv.activation._attrs["method"], conv.activation._attrs["clip"]) == (1, "approx_sign", 1.3)
    assert (conv.bits, conv.scaling) == (1, "xnor")
    assert (dense.bits_a, dense.bits, dense.scaling) == (4, 1, "none")  # dorefa with the config's 4 bits
    assert (act.bits_a, act._attrs["method"], act._attrs["beta"]) == (1, "swish_sign", 3.0)
    explicit = bnn.QConv2D(4, 3, kernel_quantizer="dorefa_quantizer", bits=2)
    assert (explicit.bits, explicit.bits_a) == (2, 1)


@pytest.mark.parametrize("bad,message", [
    (dict(input_quantizer="magnitude_aware_sign"), "input_quantizer must be one of"),
    (dict(input_quantizer="ste_sign", bits_a=2), "input_quantizer='ste_sign' means bits_a=1, but bits_a=2"),
    (dict(kernel_quantizer="magnitude_aware_sign", scaling="none"), "means scaling='xnor'"),
    (dict(kernel_quantizer="dorefa_quantizer"), "needs bits of at least 2")])
def test_larq_quantizer_names_that_contradict_or_are_unknown_are_refused(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        bnn.QConv2D(4, 3, **bad)


def test_binary_layer_config_rejects_unknown_option():
    with pytest.raises(ValueError, match="act_bits"):
        with bnn.binary_layer_config(act_bits=2):
            pass


@pytest.mark.parametrize("kind,statistic", [("l1", "mean"), ("l2", "median")])
def test_bnn_plus_alpha_init_loss_and_gradients(kind, statistic, rng):
    layer = bnn.QConv2D(4, 3, in_channels=3, regularizer=kind, reg_lambda=0.5, alpha_init=statistic)
    layer.initialize(mx.init.Uniform(1))
    w = layer.weight.data().asnumpy()
    reduce = np.mean if statistic == "mean" else np.median
    alpha = reduce(np.abs(w).reshape(4, -1), axis=1)
    np.testing.assert_allclose(layer.alpha.data().asnumpy(), alpha, rtol=1e-6)

    layer.alpha.set_data(mx.nd.array(alpha + 0.1))  # move alpha so the l1 gradient is not zero
    alpha = alpha + 0.1
    x = mx.nd.array(rng.uniform(-1, 1, size=(2, 3, 5, 5)))
    with autograd.record():
        out = layer(x)
        reg = bnn.bnn_plus_loss(layer)
    np.testing.assert_allclose(out.asnumpy(), ref.conv2d(ref.sign(x.asnumpy()), ref.sign(w))
                               * alpha.reshape(1, -1, 1, 1), rtol=1e-5, atol=1e-5)
    distance = alpha.reshape(-1, 1) - np.abs(w.reshape(4, -1))
    expected = 0.5 * (np.abs(distance).sum() if kind == "l1" else (distance ** 2).sum())
    np.testing.assert_allclose(reg.asscalar(), expected, rtol=1e-5)
    reg.backward()
    d_alpha = np.sign(distance) if kind == "l1" else 2 * distance
    np.testing.assert_allclose(layer.alpha.grad().asnumpy(), 0.5 * d_alpha.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(layer.weight.grad().asnumpy(),
                               (-0.5 * d_alpha * np.sign(w.reshape(4, -1))).reshape(w.shape),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hybridize", [False, True])
def test_bnn_plus_alpha_waits_for_a_deferred_weight(hybridize):
    """Without in_channels the weight is made at the first forward; alpha is made from it then."""
    net = mx.gluon.nn.HybridSequential()
    net.add(bnn.QConv2D(4, 3, regularizer="l1", reg_lambda=0.5), bnn.QDense(3, regularizer="l2"))
    net.initialize(mx.init.Uniform(1))
    if hybridize:
        net.hybridize()
    net(mx.nd.ones((1, 3, 6, 6)))
    for layer in net:
        w = layer.weight.data().asnumpy()
        np.testing.assert_allclose(layer.alpha.data().asnumpy(), np.abs(w).reshape(w.shape[0], -1).mean(axis=1),
                                   rtol=1e-6)


def test_bnn_plus_loss_is_zero_without_regularized_layers():
    net = small_net()
    net.initialize()
    net(mx.nd.ones((1, 3, 8, 8)))
    assert bnn.bnn_plus_loss(net).asscalar() == 0


def test_training_with_odd_channels_after_max_pooling_keeps_the_heap_intact():
    """Regression: multithreaded OpenBLAS next to oneDNN pooling corrupted the heap."""
    import subprocess
    import sys
    code = ("import numpy as np, mxnet as mx, bmxnet\n"
            "from mxnet import autograd, gluon\n"
            "from bmxnet.model_zoo import get_model\n"
            "net = get_model('lenet_binary', channels=(37, 45), hidden=65)\n"
            "net.initialize(mx.init.Xavier()); net.hybridize()\n"
            "trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})\n"
            "for _ in range(6):\n"
            "    x = mx.nd.array(np.random.uniform(-1, 1, (8, 1, 28, 28)))\n"
            "    with autograd.record():\n"
            "        y = net(x).sum()\n"
            "    y.backward(); trainer.step(8)\n"
            "mx.nd.waitall(); print('done')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-500:]


@pytest.mark.parametrize("c,o,k,s,p,d,g", [(5, 16, 3, 2, 1, 1, 1), (37, 8, 3, 1, 2, 2, 1), (64, 6, 1, 1, 0, 1, 2),
                                           (9, 12, 5, 1, 2, 1, 3)])
def test_composed_qconv2d_equals_the_fused_operator(c, o, k, s, p, d, g):
    """1-bit QConv2D trains through Convolution(QActivation(x), sign_ste(W)): same forward
    values as QConvolution, same gradients up to float summation order."""
    import json
    from bmxnet.nn.composed import MARK, fold_composed_layers
    rng = np.random.RandomState(c)
    layer = bnn.QConv2D(o, k, strides=s, padding=p, dilation=d, groups=g)
    layer.initialize(mx.init.Uniform(1.0))
    layer.hybridize()
    x = mx.nd.array(rng.uniform(-1, 1, (2, c, 11, 10)))
    x[0, 0, 0, :3] = mx.nd.array([0.0, -0.0, 0.0])
    x.attach_grad()
    with mx.autograd.record():
        y = layer(x)
    dy = mx.nd.array(rng.normal(size=y.shape))
    y.backward(dy)
    w = layer.weight.data().copy()
    w[0, 0, 0, 0] = 0.0
    layer.weight.set_data(w)
    with mx.autograd.record():
        y = layer(x)
    y.backward(dy)
    x2, w2 = x.copy(), w.copy()
    x2.attach_grad()
    w2.attach_grad()
    with mx.autograd.record():
        y2 = mx.nd.QConvolution(mx.nd.QActivation(x2, act_bit=1), w2, kernel=(k, k), stride=(s, s), pad=(p, p),
                                dilate=(d, d), num_filter=o, num_group=g)
    y2.backward(dy)
    np.testing.assert_array_equal(y.asnumpy(), y2.asnumpy())
    np.testing.assert_allclose(x.grad.asnumpy(), x2.grad.asnumpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad().asnumpy(), w2.grad.asnumpy(), rtol=1e-5, atol=1e-4)
    graph = json.loads(layer(mx.sym.var("data")).tojson())
    assert [n["op"] for n in graph["nodes"] if MARK in n.get("attrs", {})] == ["Convolution"]
    assert fold_composed_layers(graph) == 1
    folded = next(n for n in graph["nodes"] if n["op"] == "QConvolution")
    assert graph["nodes"][folded["inputs"][1][0]]["name"] == layer.weight.name


def test_composed_qdense_equals_the_fused_operator():
    rng = np.random.RandomState(3)
    layer = bnn.QDense(7, use_bias=True, in_units=70)
    layer.initialize(mx.init.Uniform(1.0))
    layer.hybridize()
    x = mx.nd.array(rng.uniform(-1, 1, (3, 70)))
    with mx.autograd.record():
        y = layer(x)
    reference = mx.nd.QFullyConnected(mx.nd.QActivation(x, act_bit=1), layer.weight.data(), layer.bias.data(),
                                      num_hidden=7, no_bias=False)
    np.testing.assert_array_equal(y.asnumpy(), reference.asnumpy())


@pytest.mark.parametrize("options", [dict(pad_value=-1), dict(scaling="xnor"), dict(bits=2), dict(bits_a=2)])
def test_layers_that_cannot_compose_keep_the_fused_operator(options):
    import json
    layer = bnn.QConv2D(4, 3, padding=1, **options)
    graph = json.loads(layer(mx.sym.var("data")).tojson())
    assert "QConvolution" in [n["op"] for n in graph["nodes"]]
