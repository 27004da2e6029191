"""Argument checks shared by the image layers, with Keras 3's messages (``keras.src.utils.argument_validation`` and
``keras.src.backend.config.standardize_data_format``)."""
from __future__ import annotations

import numbers

# One copy of the data_format check: the convolution ops parse it the same way.
from fastnn.autograd.ops.conv import standardize_data_format  # noqa: F401


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def standardize_tuple(value, n, name, allow_zero=False):
    """``value`` (an int, or an iterable of ``n`` ints) as a tuple of ``n`` Python ints, each > 0 (>= 0 with
    ``allow_zero``). Unlike Keras, a float such as 2.5 is refused instead of kept."""
    error_msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if _is_int(value):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(error_msg) from None
        if len(values) != n:
            raise ValueError(error_msg)
        for v in values:
            if not _is_int(v):
                raise ValueError(f"{error_msg}including element {v} of type {type(v)}")
        values = tuple(int(v) for v in values)
    bad = {v for v in values if (v < 0 if allow_zero else v <= 0)}
    if bad:
        requirement = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{error_msg}, including values {bad} that do not satisfy `value {requirement}`")
    return values


def standardize_pairs(value, name, kind):
    """A 2-D layer's ``padding`` / ``cropping``: an int, a pair of symmetric amounts, or a pair of (before, after)
    pairs, as ((top, bottom), (left, right)) of non-negative Python ints (ZeroPadding2D / Cropping2D)."""
    if _is_int(value):
        if value < 0:
            raise ValueError(f"`{name}` cannot be negative. Received: {name}={value}.")
        return ((int(value),) * 2,) * 2
    if hasattr(value, "__len__") and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"`{name}` should have two elements. Received: {name}={value}.")
        height = standardize_tuple(value[0], 2, f"1st entry of {name}", allow_zero=True)
        width = standardize_tuple(value[1], 2, f"2nd entry of {name}", allow_zero=True)
        return (height, width)
    raise ValueError(f"`{name}` should be either an int, a tuple of 2 ints (symmetric_height_{kind}, "
                     f"symmetric_width_{kind}), or a tuple of 2 tuples of 2 ints ((top_{kind}, bottom_{kind}), "
                     f"(left_{kind}, right_{kind})). Received: {name}={value}.")
