"""Keras's per-tensor annotations ``_keras_mask`` and ``_keras_logits``, for fastnn Tensors.

Keras sets attributes on backend tensors: ``_keras_mask`` (the mask a Masking / Embedding(mask_zero=True) layer
gives its output; keras.losses.Loss honours the mask of ``y_pred``) and, in the TensorFlow backend,
``_keras_logits`` (the input of a softmax or sigmoid, which the crossentropies then use instead of the clipped
probabilities). fastnn's Tensor has ``__slots__``, so the annotations live in side tables keyed by the tensor's id;
a weakref finalizer drops an entry when its tensor dies, so a recycled id never sees a stale annotation.
"""
from __future__ import annotations

import weakref

from fastnn.autograd.tensor import Tensor

_MASKS: dict = {}
_LOGITS: dict = {}


def _set(table, what, x, value):
    if not isinstance(x, Tensor):
        raise TypeError(f"set_keras_{what}: x must be a fastnn Tensor, but received {type(x).__name__}")
    key = id(x)
    old = table.pop(key, None)
    if old is not None:
        old[0].detach()
    if value is None:
        return
    finalizer = weakref.finalize(x, table.pop, key, None)
    finalizer.atexit = False
    table[key] = (finalizer, value)


def _get(table, attr, x):
    value = getattr(x, attr, None)
    if value is not None:
        return value
    entry = table.get(id(x)) if isinstance(x, Tensor) else None
    return None if entry is None else entry[1]


def set_keras_mask(x, mask):
    """Attaches ``mask`` (a boolean array or Tensor, None removes it) to the Tensor ``x``."""
    _set(_MASKS, "mask", x, mask)


def get_keras_mask(x):
    """The mask of ``x`` (set_keras_mask, or an attribute ``_keras_mask``), else None."""
    return _get(_MASKS, "_keras_mask", x)


def set_keras_logits(x, logits):
    """Records that the Tensor ``x`` is softmax(logits) or sigmoid(logits) (None removes it)."""
    _set(_LOGITS, "logits", x, logits)


def get_keras_logits(x):
    """The logits ``x`` was computed from (set_keras_logits, or an attribute ``_keras_logits``), else None."""
    return _get(_LOGITS, "_keras_logits", x)
