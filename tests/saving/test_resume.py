"""Resumed training: a model saved in the middle of a fit (``model.save`` / ``save_weights``, or ModelCheckpoint),
loaded and trained on with ``fit(initial_epoch=...)`` ends with the weights of the run that was never interrupted,
bit for bit (the optimizer's moments and step count come with the file); and fit's ``initial_epoch`` as Keras."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend as B
from fastnn import callbacks, layers

EPOCHS, SPLIT = 5, 2


def _sequential(dropout=False):
    stack = [fastnn.Input((5,)), layers.Dense(12, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(0.3))  # no seed: fastnn's global generator
    return fastnn.Sequential(stack + [layers.Dense(6, activation="tanh"), layers.Dense(2)])


def _functional():
    inp = fastnn.Input((5,))
    a = layers.Dense(8, activation="relu")(inp)
    b = layers.Dense(8, activation="sigmoid")(inp)
    out = layers.Dense(2)(layers.Concatenate()([a, b]))
    return fastnn.Model(inp, out)


def _compiled(build, seed=4, **kw):
    fastnn.utils.set_random_seed(seed)
    fastnn.utils.clear_session()
    model = build(**kw)
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return model


def _data():
    rs = np.random.RandomState(5)
    return rs.rand(37, 5).astype("float32"), rs.rand(37, 2).astype("float32")


def _fit(model, epochs, initial_epoch=0, shuffle=False, **kw):
    x, y = _data()
    return model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, batch_size=6, shuffle=shuffle, verbose=0, **kw)


def _assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v)


def _uninterrupted(build, **kw):
    model = _compiled(build, **kw)
    _fit(model, EPOCHS, **({"shuffle": True} if kw.get("dropout") else {}))
    return model


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_save_load_model_and_fit_on(tmp_path, build):
    reference = _uninterrupted(build)
    model = _compiled(build)
    _fit(model, SPLIT)
    model.save(tmp_path / "m.keras")
    loaded = fastnn.saving.load_model(tmp_path / "m.keras")
    assert int(loaded.optimizer.iterations.numpy()) == SPLIT * 7
    history = _fit(loaded, EPOCHS, initial_epoch=SPLIT)
    assert history.epoch == list(range(SPLIT, EPOCHS))
    _assert_same(loaded.get_weights(), reference.get_weights())
    _assert_same([v.numpy() for v in loaded.optimizer.variables], [v.numpy() for v in reference.optimizer.variables])


def test_saved_from_a_callback_in_the_middle_of_fit(tmp_path):
    path = tmp_path / "mid.keras"

    class SaveAt(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == SPLIT - 1:
                self.model.save(path)

    reference = _compiled(_sequential)
    _fit(reference, EPOCHS, callbacks=[SaveAt()])  # the run goes on after the save
    loaded = fastnn.saving.load_model(path)
    _fit(loaded, EPOCHS, initial_epoch=SPLIT)
    _assert_same(loaded.get_weights(), reference.get_weights())


def test_save_weights_into_a_fresh_compiled_model(tmp_path):
    reference = _uninterrupted(_sequential)
    model = _compiled(_sequential)
    _fit(model, SPLIT)
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = _compiled(_sequential, seed=77)  # other initial weights: all of them come from the file
    fresh.load_weights(tmp_path / "w.weights.h5")
    _fit(fresh, EPOCHS, initial_epoch=SPLIT)
    _assert_same(fresh.get_weights(), reference.get_weights())


def test_model_checkpoint_file_resumes(tmp_path):
    reference = _uninterrupted(_sequential)
    model = _compiled(_sequential)
    _fit(model, EPOCHS, callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"),
                                                             save_weights_only=True)])
    fresh = _compiled(_sequential, seed=78)
    fresh.load_weights(tmp_path / f"e{SPLIT}.weights.h5")  # the file of epoch SPLIT (1-based)
    _fit(fresh, EPOCHS, initial_epoch=SPLIT)
    _assert_same(fresh.get_weights(), reference.get_weights())


def test_shuffle_and_dropout_with_the_process_random_stream(tmp_path):
    """Like Keras's, the .keras file has no random state: a run resumed in the same process continues the global
    stream, which load_model must leave as it is (the generator's state is restored here only to take out whatever
    building the loaded layers drew)."""
    reference = _uninterrupted(_sequential, dropout=True)
    model = _compiled(_sequential, dropout=True)
    _fit(model, SPLIT, shuffle=True)
    model.save(tmp_path / "m.keras")
    stream = B.random_generator_state(fastnn.utils.rng())
    loaded = fastnn.saving.load_model(tmp_path / "m.keras")
    B.set_random_generator_state(fastnn.utils.rng(), stream)
    _fit(loaded, EPOCHS, initial_epoch=SPLIT, shuffle=True)
    _assert_same(loaded.get_weights(), reference.get_weights())


def test_resume_differs_without_the_optimizer_state(tmp_path):
    """The test above can fail: a fresh optimizer (no moments, step 0) gives other weights."""
    reference = _uninterrupted(_sequential)
    model = _compiled(_sequential)
    _fit(model, SPLIT)
    fresh = _compiled(_sequential)
    fresh.set_weights(model.get_weights())  # the weights alone
    _fit(fresh, EPOCHS, initial_epoch=SPLIT)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), reference.get_weights()))


# -- fit(initial_epoch) as Keras ---------------------------------------------------------------------------------
def test_initial_epoch_numbers_epochs_as_the_full_run(capsys):
    seen = []
    model = _compiled(_sequential)
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (1 + epoch))
    history = _fit(model, 4, initial_epoch=2, callbacks=[
        scheduler, callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))])
    assert history.epoch == [2, 3] and seen == [2, 3]
    assert len(history.history["loss"]) == 2
    assert model.optimizer.learning_rate == pytest.approx(0.01 / 4)
    assert int(model.optimizer.iterations.numpy()) == 2 * 7
    x, y = _data()
    model.fit(x, y, epochs=4, initial_epoch=3, batch_size=6, verbose=2)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 4/4\n") and "Epoch 1/4" not in out


def test_initial_epoch_at_or_past_epochs_trains_nothing():
    model = _compiled(_sequential)
    before = model.get_weights()
    history = _fit(model, 3, initial_epoch=3)
    _fit(model, 2, initial_epoch=5)
    _assert_same(model.get_weights(), before)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert history is None or history.epoch == []
