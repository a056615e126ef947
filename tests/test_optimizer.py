"""RAdam against the published update rule, computed in numpy."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import bmxnet  # noqa: F401  (registers "radam")


def radam_reference(weight, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    w, m, v = weight.astype(np.float64), 0.0, 0.0
    rho_inf = 2 / (1 - beta2) - 1
    for t, g in enumerate(grads, start=1):
        g = g + wd * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
        if rho_t > 4:
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            w = w - lr * r * m_hat * math.sqrt(1 - beta2 ** t) / (np.sqrt(v) + eps)
        else:
            w = w - lr * m_hat
    return w


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_radam_follows_the_published_rule_through_both_phases(wd):
    rng = np.random.RandomState(0)
    weight = rng.normal(size=(5, 7)).astype(np.float32)
    grads = [rng.normal(size=weight.shape).astype(np.float32) for _ in range(12)]  # rho_t passes 4 within these steps
    optimizer = mx.optimizer.create("radam", learning_rate=0.01, wd=wd)
    updater = mx.optimizer.get_updater(optimizer)
    w = mx.nd.array(weight)
    for g in grads:
        updater(0, mx.nd.array(g), w)
    np.testing.assert_allclose(w.asnumpy(), radam_reference(weight, grads, 0.01, wd=wd), rtol=1e-5, atol=1e-6)


def test_radam_trains_through_gluon_trainer():
    net = gluon.nn.Dense(1, in_units=3)
    net.initialize(mx.init.Zero())
    trainer = gluon.Trainer(net.collect_params(), "radam", {"learning_rate": 0.1})
    x = mx.nd.array(np.random.RandomState(1).normal(size=(64, 3)))
    y = x.sum(axis=1, keepdims=True)
    losses = []
    for _ in range(60):
        with mx.autograd.record():
            loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        trainer.step(1)
        losses.append(loss.asscalar())
    assert losses[-1] < 0.05 * losses[0]
