"""Callbacks (``keras.callbacks``): hooks into ``fit`` / ``evaluate`` / ``predict``.

``fit`` always adds a History callback (returned) and, when ``verbose`` is not 0, a ProgbarLogger.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import warnings

import numpy as np


class Callback:
    """Base class: override any ``on_*`` hook. ``self.model`` and ``self.params`` are set by ``fit``."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    # As Keras: the train-batch hooks call the legacy aliases on_batch_begin / on_batch_end by default, so a
    # callback that overrides on_train_batch_end (without super()) no longer gets on_batch_end as well.
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs=logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs=logs)
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


_ALIASES = {"on_train_batch_begin": ("on_batch_begin",), "on_train_batch_end": ("on_batch_end",)}


class CallbackList(Callback):
    """Dispatches every hook to a list of callbacks (adds History / ProgbarLogger as ``fit`` does)."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances, but received "
                                f"{type(c).__name__}")
        self._history = None
        if add_history:
            self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self._history is None:
                self._history = History()
                self.callbacks.append(self._history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.insert(0, ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for c in self.callbacks:
            c.set_params(params)

    def wants(self, hook: str) -> bool:
        """Whether dispatching ``hook`` can do anything: some callback's ``hook`` (or, for the train-batch hooks,
        the legacy alias on_batch_begin / on_batch_end that Callback's default calls) is not Callback's no-op. The
        loops skip a batch hook, and the logs built only for it, when this is False: no callback would read them."""
        hooks = (hook,) + _ALIASES.get(hook, ())
        for c in self.callbacks:
            for h in hooks:
                # Looked up as the dispatch looks it up (instance attributes and __getattribute__ included).
                if getattr(getattr(c, h, None), "__func__", None) is not getattr(Callback, h):
                    return True
        return False

    def _call(self, hook, *args):
        # As Keras's CallbackList: hooks always receive a dict (empty when there are no logs yet).
        *head, logs = args
        logs = {} if logs is None else logs
        for c in self.callbacks:
            getattr(c, hook)(*head, logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs)
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs)
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints Keras's progress output: ``Epoch i/N`` then the bar (terminal) or one line per epoch (not a
    terminal); ``verbose=2``: one line per epoch."""

    def __init__(self, count_mode="steps"):
        super().__init__()
        if count_mode != "steps":
            raise ValueError(f"ProgbarLogger: count_mode={count_mode!r} is not supported: Keras 3 and fastnn count "
                             "steps (count_mode='steps')")
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._mode = "train"

    def set_params(self, params):
        super().set_params(params)
        v = params.get("verbose", 1)
        self.verbose = 1 if v == "auto" else v
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _new_bar(self):
        from fastnn.utils import Progbar

        self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step")

    def on_train_begin(self, logs=None):
        self._mode = "train"

    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._mode == "train" and self.progbar is not None:
            self.progbar.update(batch + 1, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is not None:
            self.progbar.update(self._final_count(), list((logs or {}).items()), finalize=True)

    def _final_count(self):
        # As Keras's _finalize_progbar: the bar ends at the known number of steps, even when the last batch index
        # reported overshoots it (steps_per_execution > 1 reports begin + steps_per_execution - 1).
        return self.target if self.target is not None else self.progbar._seen

    def on_test_begin(self, logs=None):
        if self._standalone():
            self._new_bar()

    def _standalone(self):
        return not getattr(self.model, "_in_fit", False)

    def on_test_batch_end(self, batch, logs=None):
        if self._standalone() and self.progbar is not None:
            self.progbar.update(batch + 1, list((logs or {}).items()), finalize=False)

    def on_test_end(self, logs=None):
        if self._standalone() and self.progbar is not None:
            self.progbar.update(self._final_count(), list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        if self.progbar is not None:
            self.progbar.update(batch + 1, finalize=False)

    def on_predict_end(self, logs=None):
        if self.progbar is not None:
            self.progbar.update(self._final_count(), finalize=True)


def _monitor_op(mode, monitor, name):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{name} mode {mode!r} is unknown, fallback to auto mode.", stacklevel=3)
        mode = "auto"
    if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.endswith("auc") or "precision" in monitor
                                             or "recall" in monitor)):
        return np.greater
    return np.less


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has stopped improving for ``patience`` epochs.

    Args:
        monitor: a log key ("val_loss").
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: "auto", "min" or "max".
        baseline: a value the monitor must beat.
        restore_best_weights: restore the weights of the best epoch when stopping (or at the end).
        start_from_epoch: epochs to wait before monitoring.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(mode, monitor, "EarlyStopping")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, current, reference):
        if reference is None:
            return True
        return self.monitor_op(current - self.min_delta, reference)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. Available "
                          f"metrics are: {','.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without improvement of ``monitor``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:  # Keras 3 swallows these silently; say so instead
            warnings.warn(f"ReduceLROnPlateau: ignoring unknown arguments {sorted(kwargs)} (Keras 3 ignores them "
                          "too; the threshold is `min_delta`)", UserWarning, stacklevel=2)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.mode = mode
        self._reset()

    def _reset(self):
        self.monitor_op = _monitor_op(self.mode, self.monitor, "ReduceLROnPlateau")
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = (current < self.best - self.min_delta) if self.monitor_op is np.less else \
            (current > self.best + self.min_delta)
        if better:
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes each epoch's logs to a CSV file (``epoch`` first, then the keys sorted)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._append_header = not exists
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self._append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        new = self.schedule(epoch, lr)
        if not isinstance(new, (float, int, np.floating, np.integer)):
            raise ValueError(f'The output of the "schedule" function should be a float. Got: {new}')
        self.model.optimizer.learning_rate = float(new)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


# Keras's metric `_direction` ("up": larger is better), by class name, for MonitorCallback's mode="auto"; a class
# inherits its closest ancestor's entry (Keras sets the attribute in __init__, subclasses override it).
_METRIC_DIRECTIONS = {
    "up": {"AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "ConcordanceCorrelation", "CosineSimilarity",
           "FBetaScore", "PearsonCorrelation", "Precision", "R2Score", "Recall", "SensitivitySpecificityBase",
           "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "_IoUBase"},
    "down": {"BinaryCrossentropy", "CategoricalCrossentropy", "CategoricalHinge", "Hinge", "LogCoshError",
             "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanMetricWrapper", "MeanSquaredError",
             "MeanSquaredLogarithmicError", "RootMeanSquaredError", "SparseCategoricalCrossentropy",
             "SquaredHinge"},
}


def _metric_direction(metric):
    explicit = getattr(metric, "_direction", None)
    if explicit in ("up", "down"):
        return explicit
    for cls in type(metric).__mro__:
        for direction, names in _METRIC_DIRECTIONS.items():
            if cls.__name__ in names:
                return direction
    return None


class _MonitorCallback(Callback):
    """Keras's MonitorCallback: ``monitor``, ``mode`` (unknown: a warning and "auto"), ``best`` (starts at
    ``baseline``), and the comparison chosen once the model's metrics exist (``_set_monitor_op``): "min" / "max",
    or for "auto" a loss is minimized and a compiled metric goes its Keras direction; anything else is an error
    that asks for an explicit mode."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ["auto", "min", "max"]:
            warnings.warn(f"{self.__class__.__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = np.less
            compiled = []
            for m in getattr(self.model, "metrics", None) or []:
                inner = getattr(m, "metrics", None)  # Keras: only the compiled metrics' container is searched
                if isinstance(inner, list) and getattr(m, "name", None) == "compile_metrics":
                    compiled.extend(inner)
            for m in compiled:
                if m.name == metric_name:
                    direction = _metric_direction(m)
                    if direction is not None:
                        self.monitor_op = np.greater if direction == "up" else np.less
            if self.monitor_op is None:
                raise ValueError(f"{self.__class__.__name__} callback received monitor={self.monitor}, but Keras isn't "
                                 "able to automatically determine whether that metric should be maximized or "
                                 "minimized. Pass `mode='max'` in order to monitor based on the highest metric value, "
                                 "or pass `mode='min'` in order to use the lowest value.")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


def _path_to_string(path):
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def _batch_save_due(callback, batch) -> bool:
    """Keras's counting for ``save_freq=<int>`` (ModelCheckpoint and BackupAndRestore): batches since the last
    save, a batch index not above the last one seen starting a new epoch (so ``steps_per_execution`` jumps count
    their width). ``callback`` holds ``save_freq``, ``_last_batch_seen`` and ``_batches_seen_since_last_saving``."""
    if callback.save_freq == "epoch":
        return False
    last = callback._last_batch_seen
    add_batches = batch + 1 if last is None or batch <= last else batch - last
    callback._batches_seen_since_last_saving += add_batches
    callback._last_batch_seen = batch
    if callback._batches_seen_since_last_saving >= callback.save_freq:
        callback._batches_seen_since_last_saving = 0
        return True
    return False


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (``model.save``) or its weights (``model.save_weights``) during ``fit``: at the end of every
    epoch, or every ``save_freq`` batches; with ``save_best_only`` only when ``monitor`` improved. As Keras 3.

    Args:
        filepath: str or PathLike; may hold ``str.format`` fields filled with ``epoch`` (1-based), ``batch``
            (1-based, when saving on batches) and the logs' keys: ``"ckpt/{epoch:02d}-{val_loss:.2f}.keras"``. It
            must end in ``.weights.h5`` with ``save_weights_only=True``, else in ``.keras`` (or ``.h5``). A
            missing folder is created.
        monitor: the log key compared for ``save_best_only`` ("val_loss").
        verbose: 0 (silent) or 1 (a message for every decision and save).
        save_best_only: save only when ``monitor`` improves on the best value so far (kept across epochs); a
            filepath without fields is then overwritten by each better model.
        save_weights_only: save the weights (with the optimizer's state) instead of the whole model.
        mode: "auto" (losses minimized, compiled metrics in their direction), "min" or "max".
        save_freq: "epoch", or an int: save after that many batches (counted over epochs; with
            ``steps_per_execution`` checked at each execution's end).
        initial_value_threshold: the "best" value a first save must beat (``save_best_only``).

    Example:
        >>> cb = ModelCheckpoint("ckpt/{epoch:02d}-{val_loss:.2f}.keras", save_best_only=True)
        >>> model.fit(x, y, validation_split=0.2, epochs=5, callbacks=[cb])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = _path_to_string(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if self.save_freq != "epoch" and not isinstance(self.save_freq, int):
            raise ValueError(f"Unrecognized save_freq: {self.save_freq}. Expected save_freq are 'epoch' or integer "
                             "values")
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must "
                                 "end in `.weights.h5` (Keras weights format). Received: "
                                 f"filepath={self.filepath}")
        elif not any(self.filepath.endswith(ext) for ext in (".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()  # as Keras: once the model's metrics are all built
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        return _batch_save_due(self, batch)

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if isinstance(current, np.ndarray) and len(current.shape) > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. Received: {current}. Falling "
                          "back to `save_best_only=False`.", stacklevel=3)
            return True
        if self.monitor_op is None:
            # Saving on batches reaches here before the first epoch end, where Keras would call None; choose the
            # comparison now, as on_epoch_end does.
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, saving model "
                      f"to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        try:
            if self._should_save_model(epoch, batch, logs, filepath):
                dirname = os.path.dirname(filepath)
                if dirname and not os.path.exists(dirname):
                    os.makedirs(dirname, exist_ok=True)
                if self.save_weights_only:
                    self.model.save_weights(filepath, overwrite=True)
                else:
                    self.model.save(filepath, overwrite=True)
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")
        except IsADirectoryError:
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                          f"directory: {filepath}") from None

    def _get_file_path(self, epoch, batch, logs):
        """The filepath with its fields filled: ``epoch`` 1-based, ``batch`` 1-based (when saving on batches and
        the logs have no "batch"), then the logs' keys; a missing key is Keras's KeyError."""
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None


class BackupAndRestore(Callback):
    """Backs up the training state in ``backup_dir`` so a ``fit`` that was interrupted (an exception, the process
    killed) resumes where it was when run again with this callback. As Keras 3: ``latest.weights.h5`` (the model's
    weights and the optimizer's variables, ``model.save_weights``) and ``training_metadata.json`` (``{"epoch": e,
    "batch": b}``: the epochs done, and the last batch index of a mid-epoch backup), written at every epoch end or
    every ``save_freq`` batches; ``on_train_begin`` restores them and fit starts at epoch ``e``; at the end of a
    successful fit the folder is deleted (``delete_checkpoint``).

    fastnn also stores, under the metadata's key "fastnn" (ignored by Keras, whose backups fastnn reads too), the
    random streams the fit consumes (the global generator, each layer's own, the shuffling pass) and the number of
    batches a mid-epoch backup had trained: a resumed fit shuffles and drops exactly as the uninterrupted run and,
    after a mid-epoch backup, continues after the batches already trained (Keras restarts that epoch), so it ends
    with the same weights, bit for bit (same data, threads and kernels). The resumed epoch's logged metrics cover
    only the batches it trained. And the SHA-256 of the weights file, so a process killed between writing the two
    files is detected (an OSError; with ``double_checkpoint`` the previous pair is used instead).

    Args:
        backup_dir: the folder (created when missing) for the backup files only.
        save_freq: "epoch" or an int number of batches.
        double_checkpoint: also keep the previous backup (``*.bkp``), used when the latest cannot be read.
        delete_checkpoint: delete ``backup_dir`` when fit ends normally.

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[BackupAndRestore("/tmp/backup")])  # killed, then run again
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self.backup_dir = _path_to_string(backup_dir)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._training_metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"
        if save_freq != "epoch" and not isinstance(save_freq, int):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. Expected "
                             "either 'epoch' or an integer value.")

    def on_train_begin(self, logs=None):
        try:
            self._load_model()
        except OSError:
            # The latest backup cannot be read (corrupt, or its two files from different saves): the previous one.
            if not os.path.exists(self._prev_weights_path):
                raise
            _copy_file(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_training_metadata_path):
                _copy_file(self._prev_training_metadata_path, self._training_metadata_path)
            elif os.path.exists(self._training_metadata_path):
                os.remove(self._training_metadata_path)
            self._load_model()

    def _load_model(self):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, you model must be built before you call `fit()`. "
                             f"Model {self.model} is unbuilt. You can build it beforehand by calling it on a batch "
                             "of data.")
        metadata = None
        if os.path.exists(self._training_metadata_path):
            with open(self._training_metadata_path, encoding="utf-8") as f:
                text = f.read()
            try:
                metadata = json.loads(text)
            except ValueError as exc:
                raise OSError(f"BackupAndRestore: {self._training_metadata_path} is not valid JSON ({exc})") from exc
            if not isinstance(metadata, dict) or not isinstance(metadata.get("epoch"), int):
                raise OSError(f"BackupAndRestore: {self._training_metadata_path} has no integer 'epoch': "
                              f"{text[:200]!r}")
        fastnn_state = metadata.get("fastnn") if metadata else None
        if os.path.exists(self._weights_path):
            expected = fastnn_state.get("weights_sha256") if isinstance(fastnn_state, dict) else None
            if expected is not None and _sha256(self._weights_path) != expected:
                raise OSError(f"BackupAndRestore: {self._weights_path} is not the weights file that "
                              f"{self._training_metadata_path} was written with (a save was interrupted between the "
                              "two files). With double_checkpoint=True the previous backup is used; otherwise delete "
                              f"{self.backup_dir} to start over.")
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)  # the optimizer's variables must exist to load
            self.model.load_weights(self._weights_path)
        if metadata is not None:
            epoch = metadata["epoch"]
            self.model._initial_epoch = epoch
            self._current_epoch = epoch
            position = getattr(self.model, "_fit_position", None)
            if isinstance(fastnn_state, dict) and position is not None:
                try:
                    position.restore(fastnn_state.get("position"), epoch)
                except ValueError as exc:
                    # As Keras (which keeps no such state), the fit still resumes from the weights and the epoch.
                    warnings.warn(f"BackupAndRestore: the random state in {self._training_metadata_path} does not fit "
                                  f"this fit ({exc}); resuming from the weights and the epoch only, so the run will "
                                  "not be bit-identical to an uninterrupted one.", stacklevel=2)
                else:
                    if fastnn_state["position"]["steps_done"]:
                        # The batch counter as it was at that save, so later saves fall on the same batches.
                        self._last_batch_seen = int(metadata.get("batch", 0))

    def on_epoch_begin(self, epoch, logs=None):
        # fastnn: Keras only updates this at epoch ends, so the mid-epoch backups of a resumed fit's first epoch
        # would record epoch 0.
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model(at_epoch_end=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(at_epoch_end=False)

    def _save_model(self, at_epoch_end):
        from fastnn.saving.file_io import atomic_write

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._weights_path):
            _copy_file(self._weights_path, self._prev_weights_path)
        if self.double_checkpoint and os.path.exists(self._training_metadata_path):
            _copy_file(self._training_metadata_path, self._prev_training_metadata_path)
        self.model.save_weights(filepath=self._weights_path, overwrite=True)
        training_metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        position = getattr(self.model, "_fit_position", None)
        if position is not None:
            training_metadata["fastnn"] = {"weights_sha256": _sha256(self._weights_path),
                                           "position": position.backup(at_epoch_end)}
        with atomic_write(self._training_metadata_path, "w") as f:
            f.write(json.dumps(training_metadata))

    def _should_save_on_batch(self, batch):
        return _batch_save_due(self, batch)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_file(src, dst):
    """Copies ``src`` over ``dst`` atomically (a copy killed part-way leaves ``dst`` as it was)."""
    from fastnn.saving.file_io import atomic_write

    with open(src, "rb") as fin, atomic_write(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin(epoch, logs), on_epoch_end, on_train_batch_begin(batch,
    logs), on_train_batch_end (or their aliases on_batch_begin / on_batch_end), on_train_begin(logs), on_train_end,
    and any other hook by keyword (as Keras's ``**kwargs``)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        for name, fn in dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                             on_batch_begin=on_batch_begin, on_batch_end=on_batch_end,
                             on_train_begin=on_train_begin, on_train_end=on_train_end,
                             on_train_batch_begin=on_train_batch_begin, on_train_batch_end=on_train_batch_end,
                             **kwargs).items():
            if fn is not None:
                setattr(self, name, fn)


__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ReduceLROnPlateau",
           "TerminateOnNaN", "CSVLogger", "LearningRateScheduler", "LambdaCallback", "ModelCheckpoint",
           "BackupAndRestore"]
