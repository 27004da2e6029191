"""Live cross-check of fastnn's mask flow against Keras 3 / TensorFlow: a functional model Input -> Masking ->
Dense -> a custom mask-consuming layer -> Dense, and merges of masked branches (Add, Concatenate), built in both
libraries with the same weights; the predictions, the masks the outputs carry, the mask the consuming layer
receives, the masked loss of evaluate and the losses of a short fit must agree. Skipped when Keras is not
installed; tests/layers/test_masks.py holds the semantics without Keras.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_masks.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn import layers as fl  # noqa: E402
from fastnn.autograd.keras_attrs import get_keras_mask  # noqa: E402

KL, KO = keras.layers, keras.ops


class KerasConsume(KL.Layer):
    """Zeroes the masked timesteps and scales the rest by 2; passes the mask on (supports_masking)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.seen_masks = []

    def call(self, x, mask=None):
        if tf.executing_eagerly():  # not while Keras traces the call (building the model, its train step)
            self.seen_masks.append(None if mask is None else np.asarray(mask))
        if mask is None:
            return x * 2.0
        return x * KO.cast(KO.expand_dims(mask, -1), x.dtype) * 2.0


class FastnnConsume(fl.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.seen_masks = []

    def call(self, x, mask=None):
        self.seen_masks.append(None if mask is None else np.asarray(mask))
        if mask is None:
            return x * 2.0
        return x * fastnn.ops.cast(fastnn.ops.expand_dims(mask, -1), x.dtype) * 2.0


def _data(seed=0, n=6, t=4, f=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, f)).astype("float32")
    # Masked timesteps: whole feature rows equal to the mask value 0 (a padded tail, and one hole).
    x[0, 2:] = 0.0
    x[1, 3:] = 0.0
    x[2, 1] = 0.0
    x[5, :] = 0.0  # a sample with every timestep masked
    y = rng.standard_normal((n, t, 1)).astype("float32")
    return x, y


def _consume_models():
    keras.utils.set_random_seed(1)
    ki = keras.Input((4, 3))
    kc = KerasConsume(name="consume")
    ko = KL.Dense(1, name="out")(kc(KL.Dense(5, activation="tanh", name="hidden")(KL.Masking(0.0)(ki))))
    kmodel = keras.Model(ki, ko)
    fi = fastnn.Input((4, 3))
    fc = FastnnConsume(name="consume")
    fo = fl.Dense(1, name="out")(fc(fl.Dense(5, activation="tanh", name="hidden")(fl.Masking(0.0)(fi))))
    fmodel = fastnn.Model(fi, fo)
    fmodel.set_weights(kmodel.get_weights())
    return kmodel, kc, fmodel, fc


def test_symbolic_masks_match_keras():
    kmodel, _, fmodel, _ = _consume_models()
    for kl_, fl_ in zip(kmodel.layers, fmodel.layers):
        km = getattr(kl_.output, "_keras_mask", None)
        fm = fl_.output._keras_mask
        assert (km is None) == (fm is None), kl_.name
        if km is not None:
            assert tuple(km.shape) == fm.shape and fm.dtype == "bool", kl_.name


def test_predictions_masks_and_the_consumed_mask_match_keras():
    kmodel, kc, fmodel, fc = _consume_models()
    x, _ = _data()
    kout = kmodel(x)
    fout = fmodel(x)
    np.testing.assert_allclose(fout.numpy(), np.asarray(kout), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(fout)), np.asarray(kout._keras_mask))
    np.testing.assert_array_equal(fc.seen_masks[-1], kc.seen_masks[-1])
    np.testing.assert_allclose(fmodel.predict(x, batch_size=4, verbose=0), kmodel.predict(x, batch_size=4, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_the_output_mask_weights_the_loss_as_in_keras(loss):
    kmodel, _, fmodel, _ = _consume_models()
    x, y = _data()
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    fmodel.compile(optimizer=fastnn.optimizers.SGD(0.1), loss=loss)
    k_eval = kmodel.evaluate(x, y, batch_size=3, verbose=0)
    f_eval = fmodel.evaluate(x, y, batch_size=3, verbose=0)
    np.testing.assert_allclose(f_eval, k_eval, rtol=1e-5)
    # The mask changes the loss: the same model without Masking gives another value.
    unmasked = float(np.mean([np.mean(np.abs(d) if loss == "mae" else d ** 2)
                              for d in (fmodel.predict(x[:3], verbose=0) - y[:3],
                                        fmodel.predict(x[3:], verbose=0) - y[3:])]))
    assert abs(unmasked - f_eval) > 1e-3
    k_hist = kmodel.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history["loss"]
    f_hist = fmodel.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(f_hist, k_hist, rtol=1e-4)
    for kw, fw in zip(kmodel.get_weights(), fmodel.get_weights()):
        np.testing.assert_allclose(fw, kw, rtol=1e-4, atol=1e-6)


def test_the_output_mask_weights_compiled_metrics_as_in_keras():
    kmodel, _, fmodel, _ = _consume_models()
    x, y = _data()
    kmodel.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    fmodel.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    k_eval = kmodel.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    f_eval = fmodel.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    assert sorted(f_eval) == sorted(k_eval)
    for key in k_eval:
        np.testing.assert_allclose(f_eval[key], k_eval[key], rtol=1e-5, err_msg=key)
    unmasked_mae = float(np.mean(np.abs(fmodel.predict(x, verbose=0) - y)))
    assert abs(unmasked_mae - f_eval["mae"]) > 1e-3  # the mask changed the metric


@pytest.mark.parametrize("merge", ["add", "concatenate", "add_one_unmasked", "concatenate_one_unmasked"])
def test_merge_masks_match_keras(merge):
    x, _ = _data()
    x2 = x[::-1].copy()

    def build(lib, L):
        a, b = lib.Input((4, 3)), lib.Input((4, 3))
        ma = L.Masking(0.0)(a)
        mb = L.Masking(0.0)(b) if not merge.endswith("unmasked") else L.Dense(3, kernel_initializer="ones")(b)
        out = L.Add()([ma, mb]) if merge.startswith("add") else L.Concatenate()([ma, mb])
        return lib.Model([a, b], out), out

    kmodel, kout_sym = build(keras, KL)
    fmodel, fout_sym = build(fastnn, fl)
    assert (getattr(kout_sym, "_keras_mask", None) is None) == (fout_sym._keras_mask is None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kout = kmodel([x, x2])
        fout = fmodel([x, x2])
    np.testing.assert_allclose(fout.numpy(), np.asarray(kout), rtol=1e-6)
    kmask, fmask = getattr(kout, "_keras_mask", None), get_keras_mask(fout)
    assert (kmask is None) == (fmask is None)
    if kmask is not None:
        np.testing.assert_array_equal(np.asarray(fmask), np.asarray(kmask))


def test_a_layer_without_mask_support_drops_the_mask_with_keras_warning():
    x, _ = _data()
    with pytest.warns(UserWarning, match="does not support masking") as k_record:
        kout = KL.Flatten()(KL.Masking(0.0)(x))
    with pytest.warns(UserWarning, match="does not support masking") as f_record:
        fout = fl.Flatten()(fl.Masking(0.0)(x))
    assert getattr(kout, "_keras_mask", None) is None and get_keras_mask(fout) is None
    k_text = [str(w.message) for w in k_record if "masking" in str(w.message)][0]
    f_text = [str(w.message) for w in f_record if "masking" in str(w.message)][0]
    assert f_text.split("was passed")[1] == k_text.split("was passed")[1]


def test_lambda_masks_match_keras():
    x, _ = _data()
    k_seen, f_seen = [], []

    def k_fn(t, mask=None):
        k_seen.append(np.asarray(mask))
        return t * 2.0

    def f_fn(t, mask=None):
        f_seen.append(np.asarray(mask))
        return t * 2.0

    kout = KL.Lambda(k_fn, mask=lambda inputs, previous: previous)(KL.Masking(0.0)(x))
    fout = fl.Lambda(f_fn, mask=lambda inputs, previous: previous)(fl.Masking(0.0)(x))
    np.testing.assert_array_equal(f_seen[-1], k_seen[-1])
    np.testing.assert_array_equal(np.asarray(get_keras_mask(fout)), np.asarray(kout._keras_mask))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kout = KL.Lambda(k_fn)(KL.Masking(0.0)(x))
        fout = fl.Lambda(f_fn)(fl.Masking(0.0)(x))
    assert getattr(kout, "_keras_mask", None) is None and get_keras_mask(fout) is None
    np.testing.assert_array_equal(f_seen[-1], k_seen[-1])  # the function still receives the input's mask
