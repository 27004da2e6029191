"""Variables are C-contiguous from creation and after every assignment (the fused optimizer kernel requires it), and
initializers return C-ordered arrays."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import initializers

_SHAPES = [(3, 7), (7, 3), (2, 3, 5), (5, 2, 3)]
_INITIALIZERS = ["zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal",
                 "variance_scaling", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                 "lecun_uniform", "orthogonal"]


@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("name", _INITIALIZERS)
def test_initializers_return_c_ordered_arrays(name, shape):
    value = initializers.get(name)(shape, dtype="float32")
    assert value.shape == shape and value.dtype == np.float32
    assert value.flags.c_contiguous, f"{name}{shape} returned a non-C-ordered array"


def test_orthogonal_wide_kernel_is_orthogonal_and_c_ordered():
    q = initializers.Orthogonal(seed=3)((3, 8), dtype="float64")   # units > input dim: q is built transposed
    assert q.flags.c_contiguous
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("value", [
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    np.arange(24.0).reshape(4, 6)[::2, ::-2],          # strided, negative steps
    np.broadcast_to(np.arange(4.0), (3, 4)),           # zero strides, read-only
])
def test_variables_are_c_contiguous_on_creation_and_assignment(value):
    v = fastnn.Variable(value)
    assert v._data.flags.c_contiguous and v._data.flags.owndata and v._data.flags.writeable
    np.testing.assert_array_equal(v.numpy(), value)
    w = fastnn.Variable(np.zeros(value.shape))
    w.assign(value)
    assert w._data.flags.c_contiguous
    held = w.numpy()  # forces the copy-on-write path
    w.assign(value + 1)
    assert w._data.flags.c_contiguous and held is not w._data
    w.assign_add(np.asfortranarray(np.ones(value.shape)))
    assert w._data.flags.c_contiguous
    np.testing.assert_array_equal(w.numpy(), value + 2)


def test_variable_from_a_callable_initializer_returning_fortran_order():
    v = fastnn.Variable(lambda shape, dtype: np.asfortranarray(np.ones(shape, dtype)), shape=(4, 5))
    assert v._data.flags.c_contiguous


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_dense_wider_than_its_input_with_orthogonal_kernel_trains(optimizer):
    # Regression: Orthogonal with units > input dim gave a Fortran-ordered kernel, and the first optimizer step
    # raised "optimizer_update: variables[0] must be C-contiguous".
    model = fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Dense(8, kernel_initializer="orthogonal")])
    model.compile(optimizer=optimizer, loss="mse")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    y = np.ones((4, 8), "float32")
    before = model.layers[-1].kernel.numpy().copy()
    model.train_on_batch(x, y)
    assert not np.array_equal(before, model.layers[-1].kernel.numpy())
