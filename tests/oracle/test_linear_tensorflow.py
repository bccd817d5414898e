"""Oracle: LogisticRegression's loss and gradient equal TensorFlow's GradientTape on the same weights."""

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.kernels import linear as K

pytestmark = pytest.mark.oracle


def recforge_objective(X, y, sw, w, b, lam, n_chunks=3):
    n, d = X.shape
    bounds = K.chunk_bounds(n, n_chunks)
    partial = np.empty((n_chunks, d + 1))
    losses = 0.0
    for c in range(n_chunks):
        if sp.issparse(X):
            losses += K.loss_grad_csr(
                X.indptr, X.indices, X.data, y, sw, w, b, bounds[c], bounds[c + 1], partial[c]
            )
        else:
            losses += K.loss_grad_dense(X, y, sw, w, b, bounds[c], bounds[c + 1], partial[c])
    g = partial.sum(axis=0)
    S = sw.sum()
    return losses / S + 0.5 * lam * w @ w, g[:d] / S + lam * w, g[d] / S


def tensorflow_objective(tf, X, y, sw, w, b, lam):
    """The same objective written with TensorFlow ops: weighted mean sigmoid cross-entropy + L2."""
    w_t = tf.Variable(w.reshape(-1, 1), dtype=tf.float64)
    b_t = tf.Variable(b, dtype=tf.float64)
    if sp.issparse(X):
        coo = X.tocoo()
        X_t = tf.sparse.SparseTensor(
            np.stack([coo.row, coo.col], 1).astype(np.int64), coo.data.astype(np.float64), coo.shape
        )

        def matmul():
            return tf.sparse.sparse_dense_matmul(X_t, w_t)
    else:
        X_t = tf.constant(X.astype(np.float64))

        def matmul():
            return tf.matmul(X_t, w_t)

    y_t, sw_t = tf.constant(y.reshape(-1, 1)), tf.constant(sw.reshape(-1, 1))
    with tf.GradientTape() as tape:
        z = matmul() + b_t
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_t, logits=z)
        loss = tf.reduce_sum(sw_t * ce) / tf.reduce_sum(sw_t) + 0.5 * lam * tf.reduce_sum(w_t * w_t)
    gw, gb = tape.gradient(loss, [w_t, b_t])
    return float(loss.numpy()), gw.numpy().ravel(), float(gb.numpy())


@pytest.mark.parametrize("fmt", ["dense32", "dense64", "csr"])
def test_loss_and_gradient_equal_gradient_tape(fmt):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    n, d = 500, 20
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.4)
    if fmt == "dense32":
        X = X.astype(np.float32)
    elif fmt == "csr":
        X = sp.csr_matrix(X.astype(np.float32))
    y = (rng.random(n) < 0.3).astype(np.float64)
    sw = rng.uniform(0.1, 3.0, n)
    for scale in (0.1, 3.0):  # moderate and large margins
        w, b, lam = rng.standard_normal(d) * scale, -0.4, 0.02
        f, gw, gb = recforge_objective(X, y, sw, w, b, lam)
        tf_f, tf_gw, tf_gb = tensorflow_objective(tf, X, y, sw, w, b, lam)
        np.testing.assert_allclose(f, tf_f, rtol=1e-12)
        np.testing.assert_allclose(gw, tf_gw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gb, tf_gb, rtol=1e-10, atol=1e-13)


def test_fitted_model_has_zero_tensorflow_gradient():
    """At recforge's L-BFGS optimum, TensorFlow's gradient of the same objective vanishes."""
    tf = pytest.importorskip("tensorflow")
    from recforge.rank import LogisticRegression

    rng = np.random.default_rng(1)
    X = sp.random(800, 15, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    y = (rng.random(800) < 0.4).astype(np.float64)
    model = LogisticRegression(C=2.0, tol=1e-10, max_iter=1000).fit(X, y)
    lam = 1.0 / (2.0 * 800)
    _, gw, gb = tensorflow_objective(
        tf, X, y, np.ones(800), model.coef_[0], model.intercept_[0], lam
    )
    assert np.abs(gw).max() < 1e-6 and abs(gb) < 1e-6  # vs ~1e-1 at w = 0
