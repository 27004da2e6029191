"""callbacks.ModelCheckpoint as Keras 3 (keras/src/callbacks/model_checkpoint.py): filepath templates, the extension
rules, save_best_only in both directions with the best kept across epochs, weights-only, save_freq in batches,
verbose messages, its warnings and errors."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers


def _model(metrics=None, seed=0):
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(4, activation="tanh"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=metrics)
    return model


def _data(n=20):
    rs = np.random.RandomState(1)
    return rs.rand(n, 3).astype("float32"), rs.rand(n, 1).astype("float32")


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


class _WeightsAt(callbacks.Callback):
    """Records the model's weights at each epoch end and each batch end (placed after the checkpoint)."""

    def __init__(self):
        super().__init__()
        self.epochs, self.batches, self._epoch = {}, {}, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.batches[(self._epoch, batch)] = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[epoch] = self.model.get_weights()


def _loaded_weights(path):
    fresh = _model(seed=123)
    fresh.load_weights(path)
    return fresh.get_weights()


# -- templates ---------------------------------------------------------------------------------------------------
def test_epoch_and_logs_template_names_each_file(tmp_path):
    x, y = _data()
    model = _model()
    record = _WeightsAt()
    template = str(tmp_path / "ckpt" / "{epoch:02d}-{loss:.4f}-{val_loss:.3f}.weights.h5")
    cb = callbacks.ModelCheckpoint(template, save_weights_only=True)
    history = model.fit(x, y, epochs=3, batch_size=5, validation_split=0.25, verbose=0, callbacks=[cb, record])
    h = history.history
    expected = [f"{e + 1:02d}-{h['loss'][e]:.4f}-{h['val_loss'][e]:.3f}.weights.h5" for e in range(3)]
    assert sorted(os.listdir(tmp_path / "ckpt")) == sorted(expected)  # the folder was created
    for e, name in enumerate(expected):  # each file holds that epoch's weights
        assert _same(_loaded_weights(tmp_path / "ckpt" / name), record.epochs[e])


def test_missing_key_is_keras_key_error(tmp_path):
    x, y = _data()
    template = str(tmp_path / "{epoch}-{val_loss:.2f}.keras")
    cb = callbacks.ModelCheckpoint(template)
    with pytest.raises(KeyError) as info:
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])  # no validation: no val_loss
    assert info.value.args[0] == f'Failed to format this callback filepath: "{template}". Reason: \'val_loss\''


def test_pathlike_filepath_and_full_model_file(tmp_path):
    x, y = _data()
    model = _model()
    cb = callbacks.ModelCheckpoint(tmp_path / "m{epoch}.keras", monitor="loss")
    model.fit(x, y, epochs=2, batch_size=5, verbose=0, callbacks=[cb])
    assert cb.filepath == str(tmp_path / "m{epoch}.keras")
    assert sorted(os.listdir(tmp_path)) == ["m1.keras", "m2.keras"]
    loaded = fastnn.saving.load_model(tmp_path / "m2.keras")
    assert _same(loaded.get_weights(), model.get_weights())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# -- save_freq in batches --------------------------------------------------------------------------------------
def test_save_freq_counts_batches_across_epochs(tmp_path):
    x, y = _data(10)  # batch_size 2: 5 batches an epoch
    model = _model()
    record = _WeightsAt()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.weights.h5"), save_weights_only=True,
                                   save_freq=3)
    model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=[cb, record])
    # Keras's count: batches since the last save, carried over the epoch end (epoch 1: batch 3; then 2 + 1 at the
    # next epoch's first batch; then 3 more). The batch field is 1-based.
    saves = {"e1b3.weights.h5": (0, 2), "e2b1.weights.h5": (1, 0), "e2b4.weights.h5": (1, 3)}
    assert sorted(os.listdir(tmp_path)) == sorted(saves)
    for name, at in saves.items():
        assert _same(_loaded_weights(tmp_path / name), record.batches[at])


def test_save_freq_with_steps_per_execution(tmp_path):
    x, y = _data(12)  # batch_size 2: 6 batches; executions of 2 report batches 1, 3, 5
    model = _model()
    model.compile(optimizer="adam", loss="mse", steps_per_execution=2)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "b{batch}.weights.h5"), save_weights_only=True, save_freq=3)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path)) == ["b4.weights.h5"]  # 2 batches, then 4 >= 3 at batch index 3; then 2


# -- save_best_only ----------------------------------------------------------------------------------------------
def _drive(cb, model, values, monitor="val_loss"):
    """Calls the epoch hooks with these monitored values; before each epoch end the weights are set to the
    epoch's number, so a file shows which epoch it holds."""
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, value in enumerate(values):
        cb.on_epoch_begin(epoch)
        model.set_weights([np.full(w.shape, epoch, w.dtype) for w in model.get_weights()])
        cb.on_epoch_end(epoch, {monitor: value, "loss": 0.0})


def _epoch_in(path):
    return int(_loaded_weights(path)[0].flat[0])


@pytest.mark.parametrize("mode, values, saved", [
    ("min", [3.0, 2.0, 2.5, 1.0, 1.5], [1, 2, 4]),
    ("auto", [3.0, 2.0, 2.5, 1.0, 1.5], [1, 2, 4]),  # val_loss is minimized
    ("max", [1.0, 3.0, 2.0, 4.0, 4.0], [1, 2, 4]),  # equal is not an improvement
])
def test_best_only_keeps_the_best_across_epochs(tmp_path, mode, values, saved, capsys):
    model = _model()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"), save_best_only=True, mode=mode,
                                   save_weights_only=True, verbose=1)
    _drive(cb, model, values)
    assert sorted(os.listdir(tmp_path)) == sorted(f"e{e}.weights.h5" for e in saved)
    best = max(values) if mode == "max" else min(values)
    assert cb.best == best
    out = capsys.readouterr().out
    first = tmp_path / "e1.weights.h5"
    assert f"\nEpoch 1: val_loss improved from None to {values[0]:.5f}, saving model to {first}\n" in out
    assert f"\nEpoch 1: finished saving model to {first}\n" in out
    assert f"\nEpoch 3: val_loss did not improve from {values[1]:.5f}\n" in out


def test_best_only_single_file_holds_the_best_epoch(tmp_path):
    model = _model()
    path = tmp_path / "best.weights.h5"
    cb = callbacks.ModelCheckpoint(str(path), save_best_only=True, save_weights_only=True, monitor="val_loss")
    _drive(cb, model, [5.0, 4.0, 6.0, 4.5])
    assert _epoch_in(path) == 1  # the second epoch's (0-based 1) weights, not the last epoch's


def test_initial_value_threshold(tmp_path):
    model = _model()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"), save_best_only=True,
                                   save_weights_only=True, mode="min", initial_value_threshold=1.5)
    _drive(cb, model, [3.0, 2.0, 1.0, 1.2])
    assert os.listdir(tmp_path) == ["e3.weights.h5"]


def test_auto_mode_follows_the_compiled_metric_direction(tmp_path):
    x, y = _data()
    y = (y > 0.5).astype("float32")
    model = _model(metrics=["accuracy", "mae"])
    for monitor, op in (("val_accuracy", np.greater), ("accuracy", np.greater), ("val_mae", np.less),
                        ("loss", np.less)):
        cb = callbacks.ModelCheckpoint(str(tmp_path / "a.weights.h5"), monitor=monitor, save_weights_only=True)
        model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[cb])
        assert cb.monitor_op is op, monitor


def test_auto_mode_unknown_metric_is_keras_error(tmp_path):
    x, y = _data()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "a.keras"), monitor="val_foo")
    with pytest.raises(ValueError, match=r"ModelCheckpoint callback received monitor=val_foo, but Keras isn't able "
                                         r"to automatically determine whether that metric should be maximized or "
                                         r"minimized\. Pass `mode='max'`"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_monitor_missing_from_logs_warns_and_saves(tmp_path):
    x, y = _data()
    path = tmp_path / "a.weights.h5"
    cb = callbacks.ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, save_weights_only=True,
                                   mode="min")
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available."):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert path.exists()


def test_best_only_on_batches(tmp_path):
    x, y = _data(8)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "b.weights.h5"), monitor="loss", save_best_only=True,
                                   save_weights_only=True, save_freq=1)
    model = _model()
    model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=[cb])  # the comparison is chosen at once
    assert (tmp_path / "b.weights.h5").exists() and cb.monitor_op is np.less


def test_verbose_without_best_only(tmp_path, capsys):
    x, y = _data()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True, verbose=1)
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    path = tmp_path / "w.weights.h5"
    assert capsys.readouterr().out == (f"\nEpoch 1: saving model to {path}\n\nEpoch 1: finished saving model to "
                                       f"{path}\n")


# -- weights only / full model -----------------------------------------------------------------------------------
def test_weights_only_file_restores_weights_and_optimizer(tmp_path):
    x, y = _data()
    model = _model()
    path = tmp_path / "w.weights.h5"
    model.fit(x, y, epochs=2, batch_size=5, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(str(path), save_weights_only=True)])
    fresh = _model(seed=9)
    fresh.load_weights(path)
    assert _same(fresh.get_weights(), model.get_weights())
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    model.fit(x, y, epochs=1, batch_size=5, verbose=0, shuffle=False)
    fresh.fit(x, y, epochs=1, batch_size=5, verbose=0, shuffle=False)
    assert _same(fresh.get_weights(), model.get_weights())  # the optimizer's moments came with the file


# -- argument errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(filepath="a.h5", save_weights_only=True),
     "When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must end in `.weights.h5` "
     "(Keras weights format). Received: filepath=a.h5"),
    (dict(filepath="a.keras", save_weights_only=True),
     "When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must end in `.weights.h5` "
     "(Keras weights format). Received: filepath=a.keras"),
    (dict(filepath="a.tf"),
     "The filepath provided must end in `.keras` (Keras model format). Received: filepath=a.tf"),
    (dict(filepath="a.keras", save_freq="batch"),
     "Unrecognized save_freq: batch. Expected save_freq are 'epoch' or integer values"),
    (dict(filepath="a.keras", save_freq=2.0),
     "Unrecognized save_freq: 2.0. Expected save_freq are 'epoch' or integer values"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        callbacks.ModelCheckpoint(**kwargs)
    assert str(info.value) == message


def test_accepted_extensions():
    callbacks.ModelCheckpoint("a.keras")
    callbacks.ModelCheckpoint("a.h5")  # the legacy full-model format
    callbacks.ModelCheckpoint("a.weights.h5")  # ends in .h5: accepted for a full model too, as Keras
    callbacks.ModelCheckpoint("a.weights.h5", save_weights_only=True)


def test_unknown_mode_warns_and_falls_back_to_auto():
    with pytest.warns(UserWarning, match="ModelCheckpoint mode 'bigger' is unknown, fallback to auto mode."):
        cb = callbacks.ModelCheckpoint("a.keras", mode="bigger")
    assert cb.mode == "auto"


def test_directory_filepath_is_keras_ioerror(tmp_path):
    x, y = _data()
    folder = tmp_path / "taken.keras"
    folder.mkdir()
    cb = callbacks.ModelCheckpoint(str(folder))
    with pytest.raises(IOError, match="Please specify a non-directory filepath for ModelCheckpoint. Filepath used is "
                                      "an existing directory: "):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_no_warning_in_normal_use(tmp_path):
    x, y = _data()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "deep" / "er" / "m.keras"), monitor="val_loss", save_best_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(x, y, epochs=2, validation_split=0.25, verbose=0, callbacks=[cb])
    assert (tmp_path / "deep" / "er" / "m.keras").exists()
