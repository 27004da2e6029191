"""Utilities (``keras.utils``): ``set_random_seed``, ``to_categorical``, ``clear_session``, ``Progbar``.

fastnn draws every random number (initializers, shuffling, dropout) from one backend generator, so
``set_random_seed(seed)`` makes a whole training run reproducible.

Example:
    >>> fastnn.utils.set_random_seed(1337)
"""
from __future__ import annotations

import math
import os
import random
import sys
import time

import numpy as np

from fastnn import backend as B

_rng = B.random_generator()  # the backend's generator (NumPy's PCG64 on the CPU)


def set_random_seed(seed: int) -> None:
    """Seeds Python's ``random``, NumPy's global generator and fastnn's own generator.

    Args:
        seed: a non-negative int.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, but received {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    _rng = B.random_generator(int(seed))


def rng():
    """fastnn's random generator (seeded by :func:`set_random_seed`): the active backend's generator object, drawn
    from with ``fastnn.backend.random_*``."""
    return _rng


def clear_session() -> None:
    """Resets the automatic layer names (``dense``, ``dense_1``, ...) as ``keras.utils.clear_session`` does."""
    from fastnn.layers import layer

    layer._NAME_UIDS.clear()


def to_categorical(x, num_classes=None):
    """One-hot encodes integer class labels: (n,) -> (n, num_classes) float32."""
    x = np.asarray(x)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    x = x.astype("int64")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), but received values in "
                         f"[{x.min()}, {x.max()}]")
    out = np.zeros(x.shape + (num_classes,), dtype="float32")
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def _is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progbar:
    """Keras's progress bar.

    On a terminal (``verbose=1``) the line is redrawn in place (``\\r``) with the bar, the ETA while running and
    time, ms/step and the metrics when done. When stdout is not a terminal (a log file, CI) only the final line of
    each bar is printed, without control characters, so logs are not flooded. ``verbose=2`` prints one short line
    per bar when it finishes.

    Args:
        target: total number of steps (None if unknown).
        width: bar width in characters.
        verbose: 0 (silent), 1 (bar), 2 (one line).
        interval: minimum seconds between redraws.
        unit_name: "step" or "sample".
        dynamic: force (True) or disable (False) the in-place redraw; default: stdout is a terminal.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step",
                 dynamic=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._dynamic = _is_terminal() if dynamic is None else bool(dynamic)
        self._values = {}
        self._order = []
        self._seen = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first = None
        self._prev_width = 0

    def _step_time(self, current, now):
        if not current:
            return 0.0
        if self._time_after_first is not None and current > 1:
            t = (now - self._time_after_first) / (current - 1)
        else:
            t = (now - self._start) / current
        if current == 1:
            self._time_after_first = now
        return t

    @staticmethod
    def _format_time(t, unit):
        if t >= 1 or t == 0:
            return f" {t:.0f}s/{unit}"
        if t >= 1e-3:
            return f" {t * 1e3:.0f}ms/{unit}"
        return f" {t * 1e6:.0f}us/{unit}"

    @staticmethod
    def _format_value(v):
        v = float(v)
        return f" {v:.4f}" if abs(v) > 1e-3 else f" {v:.4e}"

    def update(self, current, values=None, finalize=None):
        """Redraws the bar at step ``current`` with ``values`` (a list of (name, value); shown as given)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            if k not in self._order:
                self._order.append(k)
            self._values[k] = v
        self._seen = current
        now = time.time()
        per_unit = self._step_time(current, now)
        if self.verbose == 1:
            if not finalize and (not self._dynamic or now - self._last_update < self.interval):
                return
            dyn = self._dynamic
            bold = (lambda s: f"\x1b[1m{s}\x1b[0m") if dyn else (lambda s: s)
            if self.target is not None and self.target > 0:
                digits = int(math.log10(self.target)) + 1
                count = f"%{digits}d/%d" % (current, self.target)
                filled = int(self.width * current / self.target)
                if dyn:
                    bar = f"{bold(count)} "
                    if filled > 0:
                        bar += f"\x1b[32m{'━' * filled}\x1b[0m"
                    bar += f"\x1b[37m{'━' * (self.width - filled)}\x1b[0m"
                else:
                    bar = f"{count} " + "━" * self.width
            else:
                bar = "%7d/Unknown" % current
            if self.target is not None and self.target > 0 and not finalize:
                eta = per_unit * (self.target - current)
                if eta > 3600:
                    eta_s = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
                elif eta > 60:
                    eta_s = "%d:%02d" % (eta // 60, eta % 60)
                else:
                    eta_s = "%ds" % eta
                info = " " + bold(eta_s)
            else:
                info = " " + bold(f"{now - self._start:.0f}s")
            info += self._format_time(per_unit, self.unit_name)
            for k in self._order:
                info += f" - {k}:" + self._format_value(self._values[k])
            line = bar + info
            visible = len(_strip_ansi(line))
            if dyn:
                msg = "\r" + line
                if self._prev_width > visible:
                    msg += " " * (self._prev_width - visible)
                self._prev_width = visible
                if finalize:
                    msg += "\n"
            else:
                msg = line + "\n"
            sys.stdout.write(msg)
            sys.stdout.flush()
        elif self.verbose == 2 and finalize and self.target is not None and self.target > 0:
            digits = int(math.log10(self.target)) + 1
            info = f"%{digits}d/%d" % (current, self.target)
            info += f" - {now - self._start:.0f}s -" + self._format_time(per_unit, self.unit_name)
            for k in self._order:
                info += f" - {k}:" + self._format_value(self._values[k])
            sys.stdout.write(info + "\n")
            sys.stdout.flush()
        self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen + n, values)


def _strip_ansi(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", s)


def get_file_cache_dir() -> str:
    """The folder where datasets are cached: ``$FASTNN_HOME`` or ``~/.fastnn``."""
    return os.environ.get("FASTNN_HOME") or os.path.join(os.path.expanduser("~"), ".fastnn")
