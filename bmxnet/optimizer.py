"""RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", 2019),
registered with mx.optimizer as "radam" (MXNet 1.9.1 has none). MeliusNet trains with it.

    m_t = b1 m + (1 - b1) g            v_t = b2 v + (1 - b2) g^2
    rho_inf = 2 / (1 - b2) - 1         rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    rho_t > 4:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                w -= lr r_t (m_t / (1 - b1^t)) sqrt(1 - b2^t) / (sqrt(v_t) + eps)
    otherwise:  w -= lr m_t / (1 - b1^t)
g = rescale_grad * grad (clipped to clip_gradient) + wd * w, as in MXNet's Adam.
"""
import math

import mxnet as mx
from mxnet import nd


@mx.optimizer.register
class RAdam(mx.optimizer.Optimizer):
    """Rectified Adam; the variance rectification replaces a learning-rate warm-up."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        return (nd.zeros(weight.shape, weight.context, dtype=weight.dtype),
                nd.zeros(weight.shape, weight.context, dtype=weight.dtype))

    def update(self, index, weight, grad, state):
        self._update_count(index)
        t = self._index_update_count[index]
        lr, wd = self._get_lr(index), self._get_wd(index)
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        grad = grad + wd * weight
        mean, var = state
        mean[:] = self.beta1 * mean + (1 - self.beta1) * grad
        var[:] = self.beta2 * var + (1 - self.beta2) * nd.square(grad)
        mean_hat = mean / (1 - self.beta1 ** t)
        rho_inf = 2 / (1 - self.beta2) - 1
        beta2_t = self.beta2 ** t
        rho_t = rho_inf - 2 * t * beta2_t / (1 - beta2_t)
        if rho_t > 4:
            rectifier = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            weight[:] = weight - lr * rectifier * mean_hat * math.sqrt(1 - beta2_t) / (nd.sqrt(var) + self.epsilon)
        else:
            weight[:] = weight - lr * mean_hat
