"""BackupAndRestore and ModelCheckpoint files between fastnn and Keras 3 (TensorFlow backend): Keras's
BackupAndRestore resumes from a backup fastnn wrote (its weights, the optimizer's state, the epoch; Keras ignores
fastnn's "fastnn" metadata key), fastnn resumes from one Keras wrote, and a ModelCheckpoint ``.weights.h5`` of
either loads in the other. Skipped when Keras is not installed.

Run with:  KERAS_BACKEND=tensorflow PYTHONPATH=src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_backup_and_restore.py
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402


def _data():
    rs = np.random.RandomState(0)
    return rs.rand(24, 4).astype("float32"), rs.rand(24, 2).astype("float32")


def _fastnn_model():
    fastnn.utils.set_random_seed(1)
    fastnn.utils.clear_session()
    model = fastnn.Sequential([fastnn.Input((4,)), fastnn.layers.Dense(5, activation="relu"),
                               fastnn.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _keras_model():
    keras.utils.set_random_seed(2)
    keras.utils.clear_session()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _interrupt(module, at):
    class Interrupt(module.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == at:
                raise RuntimeError("Interrupting!")

    return Interrupt()


def _weights_at_train_begin(module, out):
    class Record(module.callbacks.Callback):  # runs after BackupAndRestore's on_train_begin (the restore)
        def on_train_begin(self, logs=None):
            out["weights"] = [np.array(w) for w in self.model.get_weights()]
            out["iterations"] = int(np.asarray(self.model.optimizer.iterations))

    return Record()


def test_keras_resumes_from_a_fastnn_backup(tmp_path):
    x, y = _data()
    folder = str(tmp_path / "backup")
    model = _fastnn_model()
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=5, batch_size=6, verbose=0, callbacks=[
            fastnn.callbacks.BackupAndRestore(folder), _interrupt(fastnn, 3)])
    with open(os.path.join(folder, "training_metadata.json")) as f:
        assert "fastnn" in json.load(f)
    seen = {}
    history = _keras_model().fit(x, y, epochs=5, batch_size=6, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(folder), _weights_at_train_begin(keras, seen)])
    assert history.epoch == [3, 4]
    assert seen["iterations"] == 3 * 4  # the optimizer's state came from fastnn's file
    for a, b in zip(seen["weights"], model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(folder)


def test_fastnn_resumes_from_a_keras_backup(tmp_path):
    x, y = _data()
    folder = str(tmp_path / "backup")
    model = _keras_model()
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=5, batch_size=6, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(folder), _interrupt(keras, 2)])
    seen = {}
    history = _fastnn_model().fit(x, y, epochs=5, batch_size=6, verbose=0, callbacks=[
        fastnn.callbacks.BackupAndRestore(folder), _weights_at_train_begin(fastnn, seen)])
    assert history.epoch == [2, 3, 4]
    assert seen["iterations"] == 2 * 4
    for a, b in zip(seen["weights"], model.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_model_checkpoint_weights_files_both_ways(tmp_path):
    x, y = _data()
    fmodel = _fastnn_model()
    fmodel.fit(x, y, epochs=2, batch_size=6, verbose=0, callbacks=[fastnn.callbacks.ModelCheckpoint(
        str(tmp_path / "f{epoch}.weights.h5"), save_weights_only=True)])
    kmodel = _keras_model()
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'adam'"):
        kmodel.load_weights(str(tmp_path / "f2.weights.h5"))
    np.testing.assert_allclose(kmodel.predict(x, verbose=0), fmodel.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    kmodel.fit(x, y, epochs=1, batch_size=6, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(
        str(tmp_path / "k{epoch}.weights.h5"), save_weights_only=True)])
    fresh = _fastnn_model()
    fresh.load_weights(str(tmp_path / "k1.weights.h5"))
    for a, b in zip(fresh.get_weights(), kmodel.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
    # Keras's load_weights skips the optimizer state into an optimizer not built yet (with a warning), so its
    # optimizer started at step 0; fastnn's loads the state Keras's file has.
    assert int(fresh.optimizer.iterations.numpy()) == int(np.asarray(kmodel.optimizer.iterations)) == 4
