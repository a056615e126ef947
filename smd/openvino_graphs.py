"""OpenVINO graphs of bmxnet-bench's layers and of ResNetE-18, built from opset1 operations.

Binary layers are OpenVINO's own: a FakeQuantize with two levels binarizes the float input
(x > 0 is 1, the rest 0: +1 and -1 in "xnor-popcount" mode) and BinaryConvolution reads u1
weights; pad_value 0 makes a padded position count 0, as bmxnet's zero padding does. Needs
only openvino and numpy (smd/openvino_compare.py runs it in its own environment).
"""
import numpy as np

BN_EPS = 1e-5


def _ops():
    import openvino.opset1 as ops
    return ops


def u1_constant(bits):
    """A u1 Constant of a boolean array: OpenVINO stores element i of a u1 tensor in bit i % 8
    of byte i // 8, least significant bit first."""
    import openvino as ov
    tensor = ov.Tensor(ov.Type.u1, ov.Shape(list(bits.shape)))
    packed = np.packbits(np.ascontiguousarray(bits, dtype=bool).ravel(), bitorder="little")
    np.asarray(tensor.data).view(np.uint8).reshape(-1)[:packed.size] = packed
    return ov.op.Constant(tensor)


def _scalar(value):
    return np.full((1, 1, 1, 1), value, np.float32)


def binarize(x, threshold=0.0):
    """FakeQuantize(levels=2): 1 where x > threshold, else 0."""
    return _ops().fake_quantize(x, _scalar(threshold), _scalar(threshold), _scalar(0.0), _scalar(1.0), 2)


def binary_conv(x, weight, stride, pad):
    """BinaryConvolution of binarized x with the signs of the float `weight` [O, C, KH, KW]."""
    return _ops().binary_convolution(x, u1_constant(weight > 0), [stride, stride], [pad, pad], [pad, pad], [1, 1],
                                     "xnor-popcount", 0.0)


def layer_model(cin, cout, size, kernel, stride, pad, copies, rng):
    """`copies` binary convolutions of one float NCHW input, each binarizing it itself
    (thresholds that differ in the last bits, so that OpenVINO cannot merge the binarizations:
    bmxnet-bench's packed rows pack the input in each copy too). The outputs are NHWC,
    OpenVINO's own layout, as inside its networks: an NCHW output would add a reorder per copy
    that a network does not have (bmxnet's own layout is NCHW)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor
    ops = _ops()
    x = ops.parameter([1, cin, size, size], np.float32, name="data")
    weight = rng.uniform(-1, 1, (cout, cin, kernel, kernel)).astype(np.float32)
    outputs = [binary_conv(binarize(x, np.float32(1e-30) * i), weight, stride, pad) for i in range(copies)]
    steps = PrePostProcessor(ov.Model(outputs, [x]))
    for i in range(copies):
        steps.output(i).tensor().set_layout(ov.Layout("NHWC"))
        steps.output(i).model().set_layout(ov.Layout("NCHW"))
    return steps.build(), weight


def reference_binary_conv(x, weight, stride, pad):
    """numpy: sign(x) * sign(w) summed over the window, a padded position counting 0."""
    xs = np.pad(np.where(x > 0, 1.0, -1.0), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ws = np.where(weight > 0, 1.0, -1.0)
    kernel = weight.shape[2]
    out = (xs.shape[2] - kernel) // stride + 1
    y = np.zeros((x.shape[0], weight.shape[0], out, out))
    for i in range(out):
        for j in range(out):
            window = xs[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            y[:, :, i, j] = np.tensordot(window, ws, axes=([1, 2, 3], [1, 2, 3]))
    return y


def _batchnorm(x, channels, rng):
    """Inference BatchNorm with trained-looking statistics, as per-channel multiply and add."""
    ops = _ops()
    gamma, var = rng.uniform(0.5, 2, channels), rng.uniform(0.5, 2, channels)
    beta, mean = rng.normal(scale=0.5, size=channels), rng.normal(scale=0.5, size=channels)
    scale = gamma / np.sqrt(var + BN_EPS)
    shape = (1, channels, 1, 1)
    return ops.add(ops.multiply(x, scale.reshape(shape).astype(np.float32)),
                   (beta - mean * scale).reshape(shape).astype(np.float32))


def _float_conv(x, cin, cout, kernel, stride, pad, rng):
    weight = rng.normal(scale=np.sqrt(2.0 / (cin * kernel * kernel)), size=(cout, cin, kernel, kernel))
    return _ops().convolution(x, weight.astype(np.float32), [stride, stride], [pad, pad], [pad, pad], [1, 1])


def _imagenet_stem(data, rng):
    """7x7 float conv, stride 2 -> BatchNorm -> ReLU -> 3x3 max pool, stride 2 (64 channels)."""
    ops = _ops()
    x = ops.relu(_batchnorm(_float_conv(data, 3, 64, 7, 2, 3, rng), 64, rng))
    return ops.max_pool(x, [2, 2], [1, 1], [1, 1], [3, 3])


def _grouped_stem(data, rng):
    """MeliusNet's: 3x3 float convs 3 -> 32 (stride 2), 32 -> 32 (4 groups), 32 -> 64 (8
    groups), each with BatchNorm and ReLU, then a 3x3 max pool, stride 2."""
    ops = _ops()
    x, channels = data, 3
    for width, groups, stride in ((32, 1, 2), (32, 4, 1), (64, 8, 1)):
        fan_in = channels // groups * 9
        weight = rng.normal(scale=np.sqrt(2.0 / fan_in), size=(groups, width // groups, channels // groups, 3, 3))
        conv = (_float_conv(x, channels, width, 3, stride, 1, rng) if groups == 1 else
                ops.group_convolution(x, weight.astype(np.float32), [stride, stride], [1, 1], [1, 1], [1, 1]))
        x, channels = ops.relu(_batchnorm(conv, width, rng)), width
    return ops.max_pool(x, [2, 2], [1, 1], [1, 1], [3, 3])


def _head(x, channels, batch, rng, classes=1000):
    """BatchNorm -> ReLU -> global average -> float dense."""
    ops = _ops()
    x = ops.relu(_batchnorm(x, channels, rng))
    x = ops.reshape(ops.reduce_mean(x, np.array([2, 3], np.int64), True), np.array([batch, channels], np.int64),
                    False)
    dense = rng.normal(scale=0.01, size=(channels, classes)).astype(np.float32)
    return ops.add(ops.matmul(x, dense, False, False), np.zeros(classes, np.float32))


def _binary_unit(x, channels, filters, stride, rng):
    """BatchNorm -> sign -> binary 3x3 conv with `filters` filters."""
    weight = rng.uniform(-1, 1, (filters, channels, 3, 3)).astype(np.float32)
    return binary_conv(binarize(_batchnorm(x, channels, rng)), weight, stride, 1)


def _dense_layer(x, channels, rng):
    """The binary unit's 64 new channels concatenated to x: (x, channels) after it."""
    return _ops().concat([x, _binary_unit(x, channels, 64, 1, rng)], 1), channels + 64


def _transition(x, channels, width, rng):
    """BatchNorm -> 2x2 max pool (ceil) -> ReLU -> float 1x1 conv to `width` channels."""
    ops = _ops()
    x = ops.relu(ops.max_pool(_batchnorm(x, channels, rng), [2, 2], [0, 0], [0, 0], [2, 2], "ceil"))
    return _float_conv(x, channels, width, 1, 1, 0, rng)


def _channels(x, begin, end):
    """Channels begin .. end - 1 of an NCHW tensor."""
    return _ops().strided_slice(x, np.array([0, begin, 0, 0], np.int64), np.array([0, end, 0, 0], np.int64),
                                np.array([1, 1, 1, 1], np.int64), [1, 0, 1, 1], [1, 0, 1, 1])


def resnete18_model(batch, rng):
    """bmxnet's resnete18 (model_zoo/resnet_e.py): float 7x7 stem, 16 units of BatchNorm ->
    sign -> binary 3x3 conv + shortcut (identity, or AvgPool 2x2 -> float 1x1 conv ->
    BatchNorm where a stage halves the map), BatchNorm -> ReLU -> average -> dense head."""
    import openvino as ov
    ops = _ops()
    data = ops.parameter([batch, 3, 224, 224], np.float32, name="data")
    x, channels = _imagenet_stem(data, rng), 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for unit in range(4):
            stride = 2 if unit == 0 and stage > 0 else 1
            body = _binary_unit(x, channels, width, stride, rng)
            shortcut = x
            if stride == 2:
                pooled = ops.avg_pool(x, [2, 2], [0, 0], [0, 0], [2, 2], True, "ceil")
                shortcut = _batchnorm(_float_conv(pooled, channels, width, 1, 1, 0, rng), width, rng)
            x, channels = ops.add(body, shortcut), width
    return ov.Model([_head(x, channels, batch, rng)], [data])


def binary_densenet28_model(batch, rng):
    """bmxnet's binary_densenet28 (model_zoo/densenet.py): imagenet stem, dense blocks of
    6, 6, 6, 5 layers (BatchNorm -> sign -> binary 3x3 conv of 64 filters, concatenated to the
    input), transitions to 160, 192, 256 channels."""
    import openvino as ov
    ops = _ops()
    data = ops.parameter([batch, 3, 224, 224], np.float32, name="data")
    x, channels = _imagenet_stem(data, rng), 64
    for layers, width in zip((6, 6, 6, 5), (160, 192, 256, None)):
        for _ in range(layers):
            x, channels = _dense_layer(x, channels, rng)
        if width is not None:
            x, channels = _transition(x, channels, width, rng), width
    return ov.Model([_head(x, channels, batch, rng)], [data])


def meliusnet22_model(batch, rng):
    """bmxnet's meliusnet22 (model_zoo/meliusnet.py): grouped stem, stages of 4, 5, 4, 4
    (dense layer, improvement block) pairs, transitions to 160, 224, 256 channels. An
    improvement block adds a binary 3x3 conv of all channels to the newest 64."""
    import openvino as ov
    ops = _ops()
    data = ops.parameter([batch, 3, 224, 224], np.float32, name="data")
    x, channels = _grouped_stem(data, rng), 64
    for pairs, width in zip((4, 5, 4, 4), (160, 224, 256, None)):
        for _ in range(pairs):
            x, channels = _dense_layer(x, channels, rng)
            improved = ops.add(_channels(x, channels - 64, channels), _binary_unit(x, channels, 64, 1, rng))
            x = ops.concat([_channels(x, 0, channels - 64), improved], 1)
        if width is not None:
            x, channels = _transition(x, channels, width, rng), width
    return ov.Model([_head(x, channels, batch, rng)], [data])


MODELS = {"resnete18": resnete18_model, "meliusnet22": meliusnet22_model,
          "binary_densenet28": binary_densenet28_model}
