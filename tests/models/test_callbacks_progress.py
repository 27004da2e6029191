"""Callbacks and Keras-style progress output (terminal and non-terminal modes, verbose 0/1/2)."""
from __future__ import annotations

import csv
import io
import re
import sys

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers


@pytest.fixture(autouse=True)
def _fresh():
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)


def _model_and_data(n=64, lr=0.05):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype("float32")
    y = (x @ rng.standard_normal((4, 1))).astype("float32")
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m.compile(optimizer=fastnn.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    return m, x, y


def test_every_hook_is_called_in_order():
    events = []

    class Recorder(callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                return lambda *a: events.append(name)
            return super().__getattribute__(name)

    m, x, y = _model_and_data(16)
    m.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), verbose=0, callbacks=[Recorder()])
    # As Keras's CallbackList: only the train-batch hooks; Callback's defaults forward them to the on_batch_* aliases.
    assert events[:4] == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end"]
    assert events.count("on_train_batch_end") == 2 and events.count("on_batch_end") == 0
    assert "on_test_begin" in events and "on_test_batch_end" in events
    assert events[-2:] == ["on_epoch_end", "on_train_end"]
    events.clear()
    m.evaluate(x, y, verbose=0, callbacks=[Recorder()])
    assert events[0] == "on_test_begin" and events[-1] == "on_test_end"
    events.clear()
    m.predict(x, verbose=0, callbacks=[Recorder()])
    assert events[0] == "on_predict_begin" and events[-1] == "on_predict_end"


def test_history():
    m, x, y = _model_and_data()
    h = m.fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert isinstance(h, callbacks.History) and m.history is h
    assert h.epoch == [0, 1, 2] and set(h.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert h.history["loss"][2] < h.history["loss"][0]


def test_early_stopping_restores_best_weights():
    m, x, y = _model_and_data()
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append((logs["loss"], self.model.get_weights()))

    losses = iter([5.0, 3.0, 4.0, 4.5, 6.0, 7.0])

    class FakeLoss(callbacks.Callback):  # runs first: overwrites the monitored value
        def on_epoch_end(self, epoch, logs=None):
            logs["loss"] = next(losses)

    es = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[FakeLoss(), Snap(), es])
    assert h.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best == 3.0
    for a, b in zip(m.get_weights(), snapshots[1][1]):
        np.testing.assert_array_equal(a, b)
    es2 = callbacks.EarlyStopping(monitor="val_accuracy")
    assert es2.monitor_op is np.greater


def test_reduce_lr_on_plateau_and_learning_rate_scheduler():
    m, x, y = _model_and_data()
    values = iter([1.0, 1.0, 1.0, 1.0, 1.0])

    class Flat(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(values)

    r = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.01)
    h = m.fit(x, y, epochs=5, verbose=0, callbacks=[Flat(), r])
    # As Keras: the logged rate is the one the epoch ran with; it is reduced after patience epochs.
    assert h.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.05, 0.025, 0.025])
    assert m.optimizer.learning_rate == pytest.approx(0.0125)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    h = m.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_csv_logger_and_lambda_callback(tmp_path):
    m, x, y = _model_and_data()
    path = tmp_path / "log.csv"
    ends = []
    m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path),
                                                callbacks.LambdaCallback(on_epoch_end=lambda e, l: ends.append(e))])
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["0", "1"] and set(rows[0]) == {"epoch", "loss", "mae"}
    assert ends == [0, 1]
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    assert len(list(csv.DictReader(open(path)))) == 3


def test_callbacks_must_be_callbacks():
    m, x, y = _model_and_data()
    with pytest.raises(TypeError, match="Callback"):
        m.fit(x, y, verbose=0, callbacks=[lambda: None])


# -- progress output -----------------------------------------------------------------------------------------------
class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def _capture(monkeypatch, tty, fn):
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stdout", stream)
    fn()
    monkeypatch.undo()
    return stream.getvalue()


LINE = re.compile(r"^(\d+)/(\d+) ━{20} \d+s \d+(ms|us|s)/step - loss: \d+\.\d{4}(e[-+]\d+)? - mae: \d+\.\d{4}"
                  r"(e[-+]\d+)?( - val_loss: \S+ - val_mae: \S+)?$")


def test_progress_not_a_terminal_prints_one_line_per_epoch(monkeypatch):
    m, x, y = _model_and_data(320)
    out = _capture(monkeypatch, False, lambda: m.fit(x, y, epochs=2, batch_size=32, validation_split=0.2))
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line in (lines[1], lines[3]):
        assert LINE.match(line), line
        assert line.startswith("8/8 ")


def test_progress_on_a_terminal_redraws_the_bar(monkeypatch):
    m, x, y = _model_and_data(320)
    orig = fastnn.utils.Progbar.__init__

    def fast(self, *a, **k):  # redraw on every step (no 50 ms throttle) so the test sees the running lines
        orig(self, *a, **k)
        self.interval = 0.0

    monkeypatch.setattr(fastnn.utils.Progbar, "__init__", fast)
    stream = _Stream(True)
    monkeypatch.setattr(sys, "stdout", stream)
    m.fit(x, y, epochs=1, batch_size=32)
    out = stream.getvalue()
    monkeypatch.undo()
    assert "\r" in out and "\x1b[1m" in out and "\x1b[32m" in out
    frames = [re.sub(r"\x1b\[[0-9;]*m", "", f) for f in out.split("\r") if f.strip()]
    assert frames[0].startswith(" 1/10 ━") and "ETA" not in frames[0]
    assert re.search(r" \d+s \d+(ms|us|s)/step - loss: ", frames[0])  # the remaining time while running
    final = frames[-1].rstrip("\n").rstrip()
    assert final.startswith("10/10 ━━━━━━━━━━━━━━━━━━━━ ") and "- mae:" in final
    assert out.endswith("\n")


def test_progress_verbose_2_and_0(monkeypatch):
    m, x, y = _model_and_data(64)
    out = _capture(monkeypatch, True, lambda: m.fit(x, y, epochs=2, batch_size=32, verbose=2))
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and "\r" not in out
    assert re.match(r"^2/2 - \d+s - \d+(ms|us|s)/step - loss: \S+ - mae: \S+$", lines[1]), lines[1]
    assert _capture(monkeypatch, True, lambda: m.fit(x, y, epochs=2, verbose=0)) == ""
    out = _capture(monkeypatch, False, lambda: m.evaluate(x, y))
    assert re.match(r"^2/2 ━{20} \d+s \d+(ms|us|s)/step - loss: \S+ - mae: \S+\n$", out), out
    out = _capture(monkeypatch, False, lambda: m.predict(x))
    assert re.match(r"^2/2 ━{20} \d+s \d+(ms|us|s)/step\n$", out), out


def test_progbar_value_format():
    assert fastnn.utils.Progbar._format_value(0.12345) == " 0.1235"
    assert fastnn.utils.Progbar._format_value(0.0001234) == " 1.2340e-04"
    assert fastnn.utils.Progbar._format_time(0.0123, "step") == " 12ms/step"
    assert fastnn.utils.Progbar._format_time(2.2, "step") == " 2s/step"
    assert fastnn.utils.Progbar._format_time(5e-5, "step") == " 50us/step"
