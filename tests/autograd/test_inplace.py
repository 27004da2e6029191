"""Variable updates after ops have read the variable: TensorFlow's semantics (tensors are snapshots; gradients use
the values the ops saw) through copy-on-write, while an update that nobody can observe stays in place."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.ops import nn as nn_ops

X = np.array([1.0, 2.0, 3.0], dtype="float32")


def _address(v) -> int:
    return v._data.__array_interface__["data"][0]


@pytest.mark.parametrize("update", [
    lambda w: w.assign([5.0, 5.0, 5.0]),
    lambda w: w.assign(5.0 * np.ones(3, "float32")),
    lambda w: w.assign_add([4.0, 4.0, 4.0]),
    lambda w: w.assign_sub([-4.0, -4.0, -4.0]),
])
def test_tape_gradient_uses_the_values_the_ops_saw(update):
    # TensorFlow: d/dw sum(x * w * w) = 2 x w at the w the ops read (w = 1), not at the assigned w = 5.
    w = fastnn.Variable(np.ones(3, "float32"))
    with fastnn.GradientTape() as tape:
        y = ops.sum(X * w * w)
        update(w)
    np.testing.assert_array_equal(tape.gradient(y, w).numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(w.numpy(), [5.0, 5.0, 5.0])


@pytest.mark.parametrize("update", [
    lambda w: w.assign([5.0, 5.0, 5.0]),
    lambda w: w.assign_add([4.0, 4.0, 4.0]),
    lambda w: w.assign_sub([-4.0, -4.0, -4.0]),
])
def test_backward_uses_the_values_the_ops_saw(update):
    w = fastnn.Variable(np.ones(3, "float32"))
    y = ops.sum(X * w * w)
    update(w)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0, 6.0])


def test_persistent_tape_across_several_updates():
    w = fastnn.Variable(np.array([1.0, 2.0], "float64"))
    with fastnn.GradientTape(persistent=True) as tape:
        y1 = ops.sum(w ** 3)           # d/dw = 3 w^2 at w = (1, 2)
        w.assign([10.0, 10.0])
        y2 = ops.sum(w ** 2)           # d/dw = 2 w at w = (10, 10)
        w.assign_add([1.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(y1, w).numpy(), [3.0, 12.0])
    np.testing.assert_array_equal(tape.gradient(y2, w).numpy(), [20.0, 20.0])
    w.assign([0.0, 0.0])
    np.testing.assert_array_equal(tape.gradient([y1, y2], w).numpy(), [23.0, 32.0])


def test_fused_dense_and_sigmoid_keep_their_saved_buffers():
    # sigmoid's backward reads its output; dense's backward reads the kernel buffer it handed to the GEMM.
    k = fastnn.Variable(np.array([[1.0, 2.0], [3.0, 4.0]], "float32"))
    x = np.array([[1.0, 1.0]], "float32")
    with fastnn.GradientTape() as tape:
        h = nn_ops.dense(x, k)
        y = ops.sum(h * ops.sigmoid(k[0]))
        k.assign(np.zeros((2, 2), "float32"))
    k2 = fastnn.Variable(np.array([[1.0, 2.0], [3.0, 4.0]], "float32"))
    with fastnn.GradientTape() as tape2:
        y2 = ops.sum(nn_ops.dense(x, k2) * ops.sigmoid(k2[0]))
    expected_dk = tape2.gradient(y2, k2).numpy()
    np.testing.assert_allclose(tape.gradient(y, k).numpy(), expected_dk, rtol=1e-6)
    assert np.abs(expected_dk).sum() > 0


@pytest.mark.parametrize("make_view", [
    lambda w: w[0],
    lambda w: w[:, 1],
    lambda w: w.reshape(-1),
    lambda w: ops.reshape(w, (3, 2)),
    lambda w: w.T,
    lambda w: ops.transpose(w),
    lambda w: ops.expand_dims(w, 0),
    lambda w: w.detach(),
    lambda w: w.value,
])
@pytest.mark.parametrize("grad_mode", ["recording", "no_grad"])
def test_views_made_before_an_update_keep_the_old_values(make_view, grad_mode):
    w = fastnn.Variable(np.arange(6.0, dtype="float32").reshape(2, 3))
    if grad_mode == "no_grad":
        with fastnn.no_grad():
            view = make_view(w)
    else:
        view = make_view(w)
    before = view.numpy().copy()
    w.assign(np.full((2, 3), -1.0, "float32"))
    np.testing.assert_array_equal(view.numpy(), before)
    w.assign_add(np.ones((2, 3), "float32"))
    w.assign_sub(np.full((2, 3), 2.0, "float32"))
    np.testing.assert_array_equal(view.numpy(), before)
    np.testing.assert_array_equal(w.numpy(), np.full((2, 3), -2.0))


def test_arrays_the_user_holds_keep_the_old_values():
    w = fastnn.Variable(np.zeros(4, "float64"))
    a = w.numpy()            # zero-copy
    b = np.asarray(w)        # zero-copy
    c = a[1:3]               # a view of the buffer
    w.assign([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(a, 0.0)
    np.testing.assert_array_equal(b, 0.0)
    np.testing.assert_array_equal(c, 0.0)
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("update", [
    lambda w: w.assign(np.full((2, 3), 7.0, "float32")),
    lambda w: w.assign(np.full((2, 3), 7.0, "float64")),   # cast on the way in
    lambda w: w.assign_add(np.ones((2, 3), "float32")),
    lambda w: w.assign_sub(np.ones((2, 3), "float64")),
])
def test_an_update_nobody_can_observe_stays_in_place(update):
    w = fastnn.Variable(np.arange(6.0, dtype="float32").reshape(2, 3))
    buffer, address = id(w._data), _address(w)
    update(w)
    assert id(w._data) == buffer and _address(w) == address
    with fastnn.no_grad():
        y = ops.sum(w * w)   # no graph: nothing keeps the buffer
    update(w)
    assert id(w._data) == buffer and _address(w) == address
    del y


def test_update_after_the_graph_is_released_stays_in_place():
    w = fastnn.Variable(np.ones(3, "float32"))
    with fastnn.GradientTape() as tape:
        y = ops.sum(X * w * w)
    g = tape.gradient(y, w)   # a non-persistent tape frees the graph
    address = _address(w)
    w.assign_sub(0.1 * g.numpy())
    assert _address(w) == address
    z = ops.sum(ops.relu(X * w))
    z.backward()              # frees the graph too
    address = _address(w)
    w.assign(np.zeros(3, "float32"))
    assert _address(w) == address
    np.testing.assert_array_equal(y.numpy(), 6.0)


def test_optimizer_step_respects_a_live_persistent_tape():
    w = fastnn.Variable(np.ones(3, "float32"))
    opt = fastnn.optimizers.SGD(learning_rate=1.0)
    with fastnn.GradientTape(persistent=True) as tape:
        y = ops.sum(X * w * w)
    g = tape.gradient(y, w)
    opt.apply([g], [w])
    np.testing.assert_array_equal(w.numpy(), [-1.0, -3.0, -5.0])
    np.testing.assert_array_equal(tape.gradient(y, w).numpy(), [2.0, 4.0, 6.0])


def test_optimizer_steps_in_fit_stay_in_place():
    model = fastnn.Sequential([fastnn.layers.Dense(4, activation="relu"), fastnn.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 3)).astype("float32")
    y = np.zeros((16, 2), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    addresses = [_address(v) for v in model.trainable_weights]
    before = [v.numpy().copy() for v in model.trainable_weights]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert [_address(v) for v in model.trainable_weights] == addresses
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_weights))


def test_copy_on_write_keeps_dtype_shape_and_c_order():
    w = fastnn.Variable(np.zeros((3, 2), "float64"))
    held = w.numpy()
    w.assign(np.asfortranarray(np.arange(6.0).reshape(3, 2)))
    assert w._data is not held
    assert w.dtype == np.float64 and w.shape == (3, 2) and w._data.flags.c_contiguous
    assert w._data.flags.owndata and w._data.flags.writeable
    held = w.numpy()
    w.assign_add(np.ones((3, 2), "float32"))
    assert w.dtype == np.float64 and w._data.flags.c_contiguous and w._data.flags.owndata
    np.testing.assert_array_equal(w.numpy(), np.arange(6.0).reshape(3, 2) + 1)


def _op_table_grad_cases():
    from fastnn.testing.op_table import OP_TABLE

    for row in OP_TABLE:
        if not row.grad:
            continue
        shapes = next(iter(row.cases()))
        yield pytest.param(row, shapes, id=row.name)


@pytest.mark.parametrize("row, shapes", list(_op_table_grad_cases()))
def test_every_op_differentiates_the_values_it_saw(row, shapes):
    # For every differentiable op: overwriting the input variables after the forward pass must not change the
    # gradient (the backward must use the saved values, not the variables' live buffers).
    inputs = row.make_inputs(shapes, np.float64, seed=3)
    diff = row.differentiable(inputs)
    if not diff:
        pytest.skip("no float inputs")

    def gradients(overwrite: bool):
        args = [fastnn.Variable(x) if i in diff else x for i, x in enumerate(inputs)]
        with fastnn.GradientTape() as tape:
            y = row.fn(*args)
            weights = np.random.default_rng(4).uniform(0.5, 1.5, y.shape)
            loss = ops.sum(y * weights)
            if overwrite:
                for i in diff:
                    args[i].assign(np.full(args[i].shape, 1.7))
        return [None if g is None else g.numpy() for g in tape.gradient(loss, [args[i] for i in diff])]

    for expected, got in zip(gradients(False), gradients(True)):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("make", [
    lambda: fastnn.Variable(np.zeros((2, 3), "float32")),
    lambda: fastnn.Variable(fastnn.Tensor(np.zeros((2, 3), "float32"))),
    lambda: fastnn.Variable(lambda shape, dtype: np.zeros(shape, dtype), shape=(2, 3)),
    lambda: fastnn.Variable(np.asfortranarray(np.zeros((2, 3), "float32"))),
    lambda: fastnn.Variable(np.zeros((2, 3), "float32"), trainable=False),
    lambda: fastnn.layers.Dense(3).add_weight(shape=(2, 3), initializer="zeros", name="k"),
])
def test_every_way_of_making_a_variable_starts_private(make):
    v = make()
    address = _address(v)
    v.assign(np.ones((2, 3), "float32"))
    v.assign_add(np.ones((2, 3), "float32"))
    assert _address(v) == address
    np.testing.assert_array_equal(v.numpy(), 2.0)
