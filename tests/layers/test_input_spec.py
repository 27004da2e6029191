"""InputSpec options as Keras 3.15 checks them (dtype, allow_last_axis_squeeze, optional)."""
import numpy as np
import pytest

from fastnn.layers.layer import InputSpec, assert_input_compatibility


def test_dtype_is_checked():
    assert_input_compatibility(InputSpec(dtype="float32"), np.ones((2, 3), "float32"), "lay")
    with pytest.raises(ValueError, match='layer "lay".*expected dtype=float32, found dtype=float64'):
        assert_input_compatibility(InputSpec(dtype="float32"), np.ones((2, 3)), "lay")


def test_allow_last_axis_squeeze_ignores_a_trailing_one():
    spec = InputSpec(shape=(None, 3, 1), allow_last_axis_squeeze=True)
    assert_input_compatibility(spec, np.ones((2, 3), "float32"), "lay")
    assert_input_compatibility(spec, np.ones((2, 3, 1), "float32"), "lay")
    with pytest.raises(ValueError, match="expected shape"):
        assert_input_compatibility(spec, np.ones((2, 4), "float32"), "lay")
    with pytest.raises(ValueError, match="expected ndim=3"):
        assert_input_compatibility(InputSpec(shape=(None, 3, 1)), np.ones((2, 3), "float32"), "lay")


def test_optional_input_may_be_none():
    assert_input_compatibility([InputSpec(ndim=2), InputSpec(ndim=2, optional=True)],
                               [np.ones((2, 3), "float32"), None], "lay")
