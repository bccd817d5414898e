"""Oracle: the DNN / Wide&Deep kernels equal an equivalent Keras model with the same weights and batch —
loss and every gradient under GradientTape, and one Adam / Adagrad / SGD step of Keras' optimisers."""

import numpy as np
import pytest

from recforge.kernels import nn as K
from tests.kernels.test_nn_kernels import _kernel_grads, _problem

pytestmark = pytest.mark.oracle

tf = pytest.importorskip("tensorflow")
keras = tf.keras


def _keras_model(P, has_wide, l2):
    """Embeddings per column + numerics -> Dense ReLU layers -> Dense(1) logit (+ wide Dense(1, no bias))."""
    n_cat = len(P["tables"])
    cat_in = [keras.Input(shape=(), dtype="int32", name=f"c{c}") for c in range(n_cat)]
    num_in = keras.Input(shape=(P["dense"].shape[1],), name="num")
    embs = [
        keras.layers.Embedding(t.shape[0], t.shape[1], name=f"emb{c}")
        for c, t in enumerate(P["tables"])
    ]
    h = keras.layers.Concatenate()([e(x) for e, x in zip(embs, cat_in)] + [num_in])
    sizes = P["sizes"].tolist()
    dense = []
    reg = keras.regularizers.L2(l2) if l2 else None
    for layer, m in enumerate(sizes[1:]):
        act = "relu" if layer < len(sizes) - 2 else None
        dense.append(
            keras.layers.Dense(m, activation=act, kernel_regularizer=reg, name=f"d{layer}")
        )
        h = dense[-1](h)
    inputs = [*cat_in, num_in]
    wide_layer = None
    if has_wide:
        wide_in = keras.Input(shape=(P["wide"].shape[1],), name="wide")
        wide_layer = keras.layers.Dense(1, use_bias=False, name="wide_part")
        h = keras.layers.Add()([h, wide_layer(wide_in)])
        inputs.append(wide_in)
    model = keras.Model(inputs, h)
    for e, t in zip(embs, P["tables"]):
        e.set_weights([t])
    for d, W, b in zip(dense, P["kernels"], P["biases"]):
        d.set_weights([W, b])
    if has_wide:
        wide_layer.set_weights([P["wide_w"].reshape(-1, 1)])
    feed = [tf.constant(P["codes"][:, c]) for c in range(n_cat)] + [tf.constant(P["dense"])]
    if has_wide:
        feed.append(tf.constant(P["wide"].toarray()))
    return model, embs, dense, wide_layer, feed


def _keras_loss_grads(P, has_wide, l2):
    model, embs, dense, wide_layer, feed = _keras_model(P, has_wide, l2)
    variables = [e.embeddings for e in embs] + [v for d in dense for v in (d.kernel, d.bias)]
    if has_wide:
        variables.append(wide_layer.kernel)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    y = tf.constant(P["y"].reshape(-1, 1), dtype=tf.float32)
    sw = tf.constant(P["sw"], dtype=tf.float32)
    with tf.GradientTape() as tape:
        z = model(feed, training=True)
        loss = bce(y, z, sample_weight=sw) + tf.add_n(model.losses or [tf.constant(0.0)])
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    return float(loss), grads, model, embs, dense, wide_layer, variables


def _split(P, grads, emb_grad, wide_grad, has_wide):
    """Our flat gradients in Keras' variable order."""
    out = []
    for c, t in enumerate(P["tables"]):
        o = P["col_flat_off"][c]
        out.append(emb_grad[o : o + t.size].reshape(t.shape))
    o = 0
    for k, m in zip(P["sizes"][:-1].tolist(), P["sizes"][1:].tolist()):
        out.append(grads[o : o + k * m].reshape(k, m))
        o += k * m
        out.append(grads[o : o + m])
        o += m
    if has_wide:
        out.append(wide_grad.reshape(-1, 1))
    return out


@pytest.mark.parametrize("has_wide,l2", [(False, 0.0), (True, 0.0), (True, 0.003)])
def test_loss_and_every_gradient_equal_keras(has_wide, l2):
    P = _problem(seed=11, n=64)
    rows = np.arange(64, dtype=np.int64)
    loss, grads, emb_grad, wide_grad = _kernel_grads(P, rows, has_wide, l2)
    k_loss, k_grads, *_ = _keras_loss_grads(P, has_wide, l2)
    assert loss == pytest.approx(k_loss, rel=1e-5)
    ours = _split(P, grads, emb_grad, wide_grad, has_wide)
    assert len(ours) == len(k_grads)
    for a, b in zip(ours, k_grads):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("opt", ["adam", "adagrad", "sgd"])
def test_one_optimizer_step_equals_keras(opt):
    P = _problem(seed=12, n=48, cards=(40, 3, 7))  # many embedding rows stay untouched
    n = 48
    lr = 0.01
    _, k_grads, *_, variables = _keras_loss_grads(P, True, 0.0)
    k_opt = {
        "adam": keras.optimizers.Adam,
        "adagrad": keras.optimizers.Adagrad,
        "sgd": keras.optimizers.SGD,
    }[opt](learning_rate=lr)
    k_opt.apply_gradients(zip([tf.constant(g) for g in k_grads], variables))
    expected = [v.numpy() for v in variables]

    code = {"adam": K.ADAM, "adagrad": K.ADAGRAD, "sgd": K.SGD}[opt]
    init = 0.1 if opt == "adagrad" else 0.0
    emb, params, wide_w = P["emb"].copy(), P["params"].copy(), P["wide_w"].copy()
    st = [
        np.full_like(a, init) if k == 0 else np.zeros_like(a)
        for a in (emb, params, wide_w)
        for k in (0, 1)
    ]
    w = P["wide"]
    K.train_batches(
        P["codes"],
        P["dense"],
        P["y"],
        P["sw"],
        np.arange(n, dtype=np.int64),
        0,
        n,
        n,
        P["col_flat_off"],
        P["col_row_off"],
        P["col_dim"],
        P["col_in_off"],
        emb,
        st[0],
        st[1],
        P["sizes"],
        params,
        st[2],
        st[3],
        True,
        w.indptr.astype(np.int64),
        w.indices.astype(np.int32),
        w.data,
        wide_w,
        st[4],
        st[5],
        code,
        lr,
        0.9,
        0.999,
        1e-7,
        0.0,
        code,
        lr,
        0.0,
        0.0,
        np.zeros(1, np.int64),
    )
    ours = _split(P, params, emb, wide_w, True)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
