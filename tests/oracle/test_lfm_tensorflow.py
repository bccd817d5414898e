"""One LFM SGD step equals -lr × TensorFlow GradientTape's gradient of the same loss."""

import numpy as np
import pytest

from recforge.kernels.lfm import lfm_step

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.oracle

REG = {"reg_user": 0.02, "reg_item": 0.03, "reg_bias": 0.04}


@pytest.mark.parametrize("loss", ["squared", "logistic", "bpr"])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_lfm_step_is_the_gradient_step(loss, label):
    rng = np.random.default_rng(1)
    uf = rng.normal(0, 0.5, (3, 6)).astype(np.float32)
    itf = rng.normal(0, 0.5, (4, 6)).astype(np.float32)
    b = rng.normal(0, 0.5, 4).astype(np.float32)
    u, i, j, lr = 1, 2, 3, 0.1
    p, qi, qj = (tf.Variable(x.astype(np.float64)) for x in (uf[u], itf[i], itf[j]))
    bi, bj = tf.Variable(np.float64(b[i])), tf.Variable(np.float64(b[j]))
    with tf.GradientTape() as tape:
        reg = 0.5 * (
            REG["reg_user"] * tf.reduce_sum(p * p)
            + REG["reg_item"] * tf.reduce_sum(qi * qi)
            + REG["reg_bias"] * bi * bi
        )
        if loss == "bpr":
            x = tf.reduce_sum(p * (qi - qj)) + bi - bj
            value = (
                -tf.math.log_sigmoid(x)
                + reg
                + 0.5 * (REG["reg_item"] * tf.reduce_sum(qj * qj) + REG["reg_bias"] * bj * bj)
            )
        else:
            s = tf.reduce_sum(p * qi) + bi
            if loss == "squared":
                value = 0.5 * (label - s) ** 2 + reg
            else:
                value = (
                    tf.nn.sigmoid_cross_entropy_with_logits(
                        labels=tf.constant(label, tf.float64), logits=s
                    )
                    + reg
                )
    grads = tape.gradient(value, [p, qi, qj, bi, bj])
    grads = [np.zeros(1) if g is None else g.numpy() for g in grads]
    new_u, new_i, new_b = uf.copy(), itf.copy(), b.copy()
    lfm_step(new_u, new_i, new_b, u, i, j, label, loss=loss, lr=lr, fit_bias=True, **REG)
    np.testing.assert_allclose(new_u[u] - uf[u], -lr * grads[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_i[i] - itf[i], -lr * grads[1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_b[i] - b[i], -lr * grads[3], rtol=1e-4, atol=1e-6)
    if loss == "bpr":
        np.testing.assert_allclose(new_i[j] - itf[j], -lr * grads[2], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(new_b[j] - b[j], -lr * grads[4], rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_array_equal(new_i[j], itf[j])
