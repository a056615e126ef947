"""Converting a block and checking that its packed model equals the float-simulated one."""
import mxnet as mx
import numpy as np

from bmxnet.converter import convert_block


def convert_exactly(net, x, initializer):
    """Initializes (unless `initializer` is None: already done), hybridizes and converts net;
    its packed output must equal the float-simulated one on x. Returns (packed block, report)."""
    if initializer is not None:
        net.initialize(initializer)
    net.hybridize()
    expected = net(x).asnumpy()
    packed, report = convert_block(net)
    np.testing.assert_array_equal(packed(x).asnumpy(), expected)
    return packed, report


def randomize_batchnorms(net, rng, negative_gammas=False):
    """Trained-looking BatchNorm parameters (a fresh BatchNorm is the identity, under which
    oneDNN's two formulas agree)."""
    for name, param in net.collect_params().items():
        size = param.shape
        if name.endswith("gamma"):
            gamma = rng.uniform(0.2, 2, size) * (rng.choice([-1, 1], size) if negative_gammas else 1)
            param.set_data(mx.nd.array(gamma))
        elif name.endswith(("beta", "running_mean")):
            param.set_data(mx.nd.array(rng.normal(size=size)))
        elif name.endswith("running_var"):
            param.set_data(mx.nd.array(rng.uniform(0.5, 3, size)))


def convert_trained_exactly(net, x, rng, negative_gammas=False):
    """convert_exactly, with the BatchNorms given trained-looking parameters first."""
    net.initialize(mx.init.Xavier(magnitude=2))
    net(x)
    randomize_batchnorms(net, rng, negative_gammas)
    return convert_exactly(net, x, None)
