"""One SGNS update equals -lr × TensorFlow GradientTape's gradient of the negative-sampling loss."""

import numpy as np
import pytest

from recforge.kernels.sgns import SIGMOID_ERROR_BOUND, sgns_step

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.oracle


def _loss(h, o_center, o_neg):
    return -tf.math.log_sigmoid(tf.reduce_sum(h * o_center)) - tf.reduce_sum(
        tf.math.log_sigmoid(-tf.linalg.matvec(o_neg, h))
    )


@pytest.mark.parametrize("cbow", [False, True])
def test_sgns_update_is_the_gradient_step(cbow):
    rng = np.random.default_rng(0)
    n, dim, lr = 10, 8, 0.05
    vin = (rng.random((n, dim)) - 0.5).astype(np.float32)
    vout = (rng.random((n, dim)) - 0.5).astype(np.float32)
    center, contexts, negatives = 0, [1, 2, 3] if cbow else [1], [4, 5, 6, 7, 8]
    ctx = tf.Variable(vin[contexts].astype(np.float64))
    oc = tf.Variable(vout[center].astype(np.float64))
    on = tf.Variable(vout[negatives].astype(np.float64))
    with tf.GradientTape() as tape:
        h = tf.reduce_mean(ctx, axis=0)
        loss = _loss(h, oc, on)
    g_ctx, g_oc, g_on = (t.numpy() for t in tape.gradient(loss, [ctx, oc, on]))
    new_in, new_out = vin.copy(), vout.copy()
    sgns_step(new_in, new_out, center, contexts, negatives, lr, cbow=cbow)
    tol = lr * SIGMOID_ERROR_BOUND * 6 + 1e-6
    # output rows: -lr * gradient; input: CBOW gives every context the gradient w.r.t. the mean
    # (word2vec's convention), i.e. n_contexts × the gradient w.r.t. that context.
    np.testing.assert_allclose(new_out[center] - vout[center], -lr * g_oc, atol=tol)
    np.testing.assert_allclose(new_out[negatives] - vout[negatives], -lr * g_on, atol=tol)
    np.testing.assert_allclose(
        new_in[contexts] - vin[contexts], -lr * len(contexts) * g_ctx, atol=tol * 6
    )
