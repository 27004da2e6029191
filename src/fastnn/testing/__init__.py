"""Test helpers shared by fastnn's test suite (and usable by anyone testing code built on fastnn)."""
from __future__ import annotations

import numpy as np


def tolerance(dtype) -> float:
    """Relative tolerance of a computed product against a float64 reference: 1e-5 for float32, 1e-12 for float64."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def assert_product_close(actual, expected, magnitude, dtype) -> None:
    """Asserts |actual - expected| <= tolerance(dtype) * magnitude elementwise.

    `magnitude` bounds the terms summed into each element (for a product, |A| @ |B|), which keeps the
    check relative and meaningful where an element cancels to nearly zero.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    bound = tolerance(dtype) * (np.asarray(magnitude, dtype=np.float64) + np.finfo(np.float64).tiny)
    err = np.abs(actual - expected)
    if err.size and not np.all(err <= bound):
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"max excess at {worst}: |{actual[worst]} - {expected[worst]}| = {err[worst]:.3e} > {bound[worst]:.3e}"
        )
