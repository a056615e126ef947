"""Every operator, a zoo model's training steps and a packed model on the GPU against the same
on the CPU. Each test runs twice: `gpu-vs-cpu` (marked gpu: `make test-gpu` runs it, `make
test` skips and counts it) and `cpu-as-both`, the same body with the CPU on both sides, which
`make test` runs so the comparison code itself is known to work.

Bit-exact where both sides compute the same integers or copy values (binary dot products,
packed layers without a float scale, concatenation, max pooling); else within RTOL/ATOL, for
float sums in another order and for FMA contraction (nvcc fuses multiply-adds, which the
CPU kernels do only where MXNet's own formulas do).
"""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import bmxnet
from bmxnet import packing

RTOL, ATOL = 1e-5, 1e-5


def require_gpu():
    """Skips (fails under `make test-gpu`, BMXNET_REQUIRE_GPU=1) unless a GPU and the CUDA kernels are here."""
    missing = ("MXNet sees no GPU (mx.context.num_gpus() is 0)" if mx.context.num_gpus() == 0 else
               "this build of bmxnet has no CUDA kernels" if not bmxnet.cuda_kernels() else None)
    if missing and os.environ.get("BMXNET_REQUIRE_GPU") == "1":
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


@pytest.fixture(params=[pytest.param("cpu", id="cpu-as-both"), pytest.param("gpu", id="gpu-vs-cpu", marks=pytest.mark.gpu)])
def device(request):
    """The context under test; the reference is always the CPU."""
    if request.param == "gpu":
        require_gpu()
        return mx.gpu(0)
    return mx.cpu()


def run(op, arrays, attrs, ctx, head=None, grads=True):
    """op's output and the gradients of its float inputs (against `head`) on `ctx`, as numpy."""
    inputs = [mx.nd.array(a, ctx=ctx, dtype=a.dtype) for a in arrays]
    floats = [x for x in inputs if x.dtype == np.float32] if grads else []
    for x in floats:
        x.attach_grad()
    with autograd.record():
        y = op(*inputs, **attrs)
    if floats:
        y.backward(mx.nd.array(head, ctx=ctx) if head is not None else mx.nd.ones(y.shape, ctx=ctx))
    return [y.asnumpy()] + [x.grad.asnumpy() for x in floats]


def compare(device, op, arrays, attrs, exact_forward=True, exact_backward=False, grads=True, seed=0):
    """op on `device` against op on the CPU, forward and (with grads) backward."""
    reference = run(op, arrays, attrs, mx.cpu(), grads=False)
    head = np.random.RandomState(seed).normal(size=reference[0].shape).astype(np.float32)
    expected, got = run(op, arrays, attrs, mx.cpu(), head, grads), run(op, arrays, attrs, device, head, grads)
    for index, (g, e) in enumerate(zip(got, expected)):
        if (exact_forward if index == 0 else exact_backward):
            np.testing.assert_array_equal(g, e, err_msg="output %d" % index)
        else:
            np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(e).max())),
                                       err_msg="output %d" % index)


def uniform(rng, *shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


@pytest.mark.parametrize("method", ["ste", "approx_sign", "swish_sign"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_qactivation(method, bits, device, rng):
    x = uniform(rng, 3, 5, 7, 9) * 1.5
    compare(device, mx.nd.QActivation, [x], dict(act_bit=bits, method=method), exact_forward=bits == 1)


CONVOLUTIONS = [  # channels, filters, kernel, stride, pad, dilate, groups
    (3, 5, 3, 1, 1, 1, 1), (37, 8, 3, 2, 1, 2, 1), (64, 6, 3, 1, 1, 1, 2), (65, 4, 5, 1, 2, 1, 1), (130, 7, 1, 2, 0, 1, 1)]


@pytest.mark.parametrize("channels,filters,kernel,stride,pad,dilate,groups", CONVOLUTIONS)
@pytest.mark.parametrize("bits,scaling", [(1, "none"), (1, "xnor"), (2, "none")])
def test_qconvolution(channels, filters, kernel, stride, pad, dilate, groups, bits, scaling, device, rng):
    x, w = uniform(rng, 2, channels, 9, 8), uniform(rng, filters, channels // groups, kernel, kernel)
    attrs = dict(kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad), dilate=(dilate, dilate),
                 num_filter=filters, num_group=groups, act_bit=bits, weight_bit=bits, scaling=scaling, no_bias=False)
    # 1-bit sums without a scale are integers: any order gives them exactly
    compare(device, mx.nd.QConvolution, [x, w, uniform(rng, filters)], attrs,
            exact_forward=bits == 1 and scaling == "none")


@pytest.mark.parametrize("features,flatten,bits", [(65, True, 1), (300, True, 2), (37, False, 1)])
def test_qfullyconnected(features, flatten, bits, device, rng):
    x = uniform(rng, 3, features) if flatten else uniform(rng, 2, 3, features)
    attrs = dict(num_hidden=7, flatten=flatten, act_bit=bits, weight_bit=bits, no_bias=False)
    compare(device, mx.nd.QFullyConnected, [x, uniform(rng, 7, features), uniform(rng, 7)], attrs,
            exact_forward=bits == 1)


@pytest.mark.parametrize("pad_value", [0, -1])
@pytest.mark.parametrize("channels,groups,stride", [(70, 1, 1), (130, 2, 2), (64, 1, 1)])
def test_packed_qconvolution_with_everything_the_converter_folds_in(pad_value, channels, groups, stride, device, rng):
    filters = 6
    x, w = uniform(rng, 2, channels, 7, 6), uniform(rng, filters, channels // groups, 3, 3)
    thresholds = np.stack([np.where(np.arange(channels) % 3, 1.0, -1.0),
                           rng.uniform(-0.5, 0.5, channels)]).astype(np.float32)
    out = ((7 - 1) // stride + 1, (6 - 1) // stride + 1)
    attrs = dict(kernel=(3, 3), stride=(stride, stride), pad=(1, 1), num_filter=filters, num_group=groups,
                 pad_value=pad_value, binarized_weights_only=True, data_threshold=True, residual=True, no_bias=False,
                 data_pieces=2)
    arrays = [x[:, :20], packing.pack_conv_weight(w).astype(np.int64), uniform(rng, filters), thresholds,
              uniform(rng, 2, filters, *out), x[:, 20:]]
    compare(device, mx.nd.QConvolution, arrays, attrs, grads=False)  # no gradient through thresholds


def test_packed_layers_with_xnor_scale(device, rng):
    x, w = uniform(rng, 2, 70, 5, 5), uniform(rng, 16, 70, 3, 3)
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=16, scaling="xnor", binarized_weights_only=True, no_bias=False)
    arrays = [x, packing.pack_conv_weight(w).astype(np.int64), packing.xnor_scale(w), uniform(rng, 16)]
    compare(device, mx.nd.QConvolution, arrays, attrs, exact_forward=False)
    wd = uniform(rng, 9, 130)
    dense = [uniform(rng, 4, 130), packing.pack_dense_weight(wd).astype(np.int64), packing.xnor_scale(wd)]
    compare(device, mx.nd.QFullyConnected, dense, dict(num_hidden=9, scaling="xnor", binarized_weights_only=True),
            exact_forward=False, grads=False)


def test_channel_concat_takes_leading_channels(device, rng):
    arrays = [uniform(rng, 2, c, 5, 4) for c in (3, 70, 8)]
    compare(device, mx.nd.ChannelConcat, arrays, dict(num_args=3, take_channels=(0, 64, 5)), exact_backward=True)


@pytest.mark.parametrize("attrs", [dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"),
                                   dict(kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full"),
                                   dict(kernel=(3, 3), pad=(1, 1), pool_type="avg", count_include_pad=False),
                                   dict(global_pool=True, pool_type="avg"),
                                   dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", layout="NHWC"),
                                   dict(kernel=(3, 3), pad=(1, 1), pool_type="avg", layout="NHWC")])
def test_plain_pooling(attrs, device, rng):
    exact = attrs["pool_type"] == "max"
    compare(device, mx.nd.PlainPooling, [uniform(rng, 2, 19, 9, 11)], attrs, exact_forward=exact, exact_backward=exact)


@pytest.mark.parametrize("attrs", [dict(), dict(blocked=True, act_type="relu"), dict(fix_gamma=False)])
def test_plain_batchnorm(attrs, device, rng):
    channels = 13
    stats = [rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
             rng.uniform(0.5, 2, channels)]
    arrays = [uniform(rng, 2, channels, 5, 6)] + [s.astype(np.float32) for s in stats]
    compare(device, mx.nd.PlainBatchNorm, arrays, dict(attrs, eps=1e-5), exact_forward=False)


def test_largest_zoo_shapes_at_batch_64(device, rng):
    """MeliusNet59's widest binary layer input (1088 channels at 7x7) and ResNetE's 56x56 maps,
    64 images: the launchers' grid and shared-memory limits."""
    for channels, filters, size in ((1088, 64, 7), (64, 64, 56)):
        x, w = uniform(rng, 64, channels, size, size), uniform(rng, filters, channels, 3, 3)
        attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=filters, binarized_weights_only=True)
        compare(device, mx.nd.QConvolution, [x, packing.pack_conv_weight(w).astype(np.int64)], attrs, grads=False)


def zoo_net(name, ctx):
    mx.random.seed(3)
    net = bmxnet.model_zoo.get_model(name, classes=10, initial_layers="thumbnail")
    net.initialize(mx.init.Xavier(magnitude=2), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


@pytest.mark.parametrize("name", ["resnete18", "meliusnet22"])
def test_zoo_model_trains_alike(name, device, rng):
    """Three SGD steps from the same weights: the losses agree to 1e-3 (a sign may flip where a
    value lies within rounding of 0, so not bit for bit)."""
    x, y = uniform(rng, 4, 3, 32, 32), np.arange(4) % 10
    start = zoo_net(name, mx.cpu())
    start(mx.nd.array(x))
    weights = [param.data() for _, param in sorted(start.collect_params().items())]
    losses = {}
    for ctx in (mx.cpu(), device):
        net = zoo_net(name, ctx)
        net(mx.nd.array(x, ctx=ctx))
        for (_, param), value in zip(sorted(net.collect_params().items()), weights):
            param.set_data(value.as_in_context(ctx))
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05})
        loss_fn, history = gluon.loss.SoftmaxCrossEntropyLoss(), []
        for _ in range(3):
            with autograd.record():
                loss = loss_fn(net(mx.nd.array(x, ctx=ctx)), mx.nd.array(y, ctx=ctx)).mean()
            loss.backward()
            trainer.step(1)
            history.append(float(loss.asscalar()))
        losses[str(ctx)] = history
    np.testing.assert_allclose(losses[str(device)], losses["cpu(0)"], rtol=1e-3)


def test_packed_model_runs_alike(device, rng):
    net = zoo_net("resnete18", mx.cpu())
    x = uniform(rng, 2, 3, 32, 32)
    net(mx.nd.array(x))
    packed, _ = bmxnet.convert_block(net)
    expected = packed(mx.nd.array(x)).asnumpy()
    packed.collect_params().reset_ctx(device)
    got = packed(mx.nd.array(x, ctx=device)).asnumpy()
    # the float stem runs in cuDNN on the gpu: its sums may round otherwise
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
