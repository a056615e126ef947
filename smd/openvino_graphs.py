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


def resnete18_model(batch, rng, classes=1000):
    """bmxnet's resnete18 (model_zoo/resnet_e.py): float 7x7 stem, 16 units of BatchNorm ->
    sign -> binary 3x3 conv + shortcut (identity, or AvgPool 2x2 -> float 1x1 conv ->
    BatchNorm where a stage halves the map), BatchNorm -> ReLU -> average -> dense head."""
    import openvino as ov
    ops = _ops()
    data = ops.parameter([batch, 3, 224, 224], np.float32, name="data")
    x = ops.relu(_batchnorm(_float_conv(data, 3, 64, 7, 2, 3, rng), 64, rng))
    x = ops.max_pool(x, [2, 2], [1, 1], [1, 1], [3, 3])
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for unit in range(4):
            stride = 2 if unit == 0 and stage > 0 else 1
            weight = rng.uniform(-1, 1, (width, channels, 3, 3)).astype(np.float32)
            body = binary_conv(binarize(_batchnorm(x, channels, rng)), weight, stride, 1)
            shortcut = x
            if stride == 2:
                pooled = ops.avg_pool(x, [2, 2], [0, 0], [0, 0], [2, 2], True, "ceil")
                shortcut = _batchnorm(_float_conv(pooled, channels, width, 1, 1, 0, rng), width, rng)
            x, channels = ops.add(body, shortcut), width
    x = ops.relu(_batchnorm(x, channels, rng))
    x = ops.reshape(ops.reduce_mean(x, np.array([2, 3], np.int64), True), np.array([batch, channels], np.int64),
                    False)
    dense = rng.normal(scale=0.01, size=(channels, classes)).astype(np.float32)
    logits = ops.add(ops.matmul(x, dense, False, False), np.zeros(classes, np.float32))
    return ov.Model([logits], [data])
