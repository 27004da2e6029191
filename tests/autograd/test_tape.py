"""GradientTape (TensorFlow semantics), Tensor.backward() (PyTorch style), no_grad, the engine's guarantees."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.tape import record
from fastnn.testing.gradcheck import check_gradients


def test_user_written_activation_through_tape():
    def f(x):
        return x**2

    x = fastnn.Variable(np.array([-1.5, 0.0, 2.0, 3.0]), dtype="float64")
    with fastnn.GradientTape() as tape:
        y = f(x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), 2 * x.numpy())
    check_gradients(f, [np.array([[-1.5, 0.25], [2.0, 3.0]])])


def test_variables_watched_automatically_tensors_explicitly():
    v = fastnn.Variable([1.0, 2.0])
    t = fastnn.Tensor([3.0, 4.0])
    u = fastnn.Tensor([5.0, 6.0])
    with fastnn.GradientTape() as tape:
        tape.watch(t)
        y = ops.sum(v * t * u)
    gv, gt, gu = tape.gradient(y, [v, t, u])
    np.testing.assert_array_equal(gv.numpy(), [15.0, 24.0])
    np.testing.assert_array_equal(gt.numpy(), [5.0, 12.0])
    assert gu is None  # never watched
    assert tape.watched_variables() == (v,)


def test_non_trainable_variable_and_watch_accessed_variables_false():
    v = fastnn.Variable(2.0, trainable=False)
    w = fastnn.Variable(3.0)
    with fastnn.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(v)
        y = v * w
    gv, gw = tape.gradient(y, [v, w])
    assert float(gv) == 3.0 and gw is None


def test_nested_sources_and_unconnected_zero():
    a, b, c = fastnn.Variable(1.0), fastnn.Variable(2.0), fastnn.Variable(np.ones((2, 3)))
    with fastnn.GradientTape() as tape:
        y = a * b
    grads = tape.gradient(y, {"x": [a, (b,)], "y": c}, unconnected_gradients="zero")
    assert float(grads["x"][0]) == 2.0 and float(grads["x"][1][0]) == 1.0
    assert isinstance(grads["x"][1], tuple)
    np.testing.assert_array_equal(grads["y"].numpy(), np.zeros((2, 3)))
    assert grads["y"].dtype == c.dtype


def test_non_scalar_target_is_summed_and_output_gradients():
    x = fastnn.Variable(np.arange(6.0).reshape(2, 3))
    with fastnn.GradientTape(persistent=True) as tape:
        y = x * x
        s = ops.sum(x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), 2 * x.numpy())
    seed = np.full((2, 3), 0.5)
    np.testing.assert_array_equal(tape.gradient(y, x, output_gradients=seed).numpy(), x.numpy())
    # a list of targets: their gradients add up
    np.testing.assert_array_equal(tape.gradient([y, s], x).numpy(), 2 * x.numpy() + 1)


def test_persistent_tape_allows_several_calls_non_persistent_raises():
    x = fastnn.Variable(3.0)
    with fastnn.GradientTape(persistent=True) as tape:
        y = x * x
        z = y * x
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, x)) == 27.0
    with fastnn.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="only be called once on a non-persistent tape"):
        tape.gradient(y, x)


def test_gradient_on_a_tape_never_entered_raises():
    x = fastnn.Variable(1.0)
    with pytest.raises(RuntimeError, match="never recorded"):
        fastnn.GradientTape().gradient(x * 2, x)


def test_gradient_inside_the_context_stops_a_non_persistent_tape():
    x = fastnn.Variable(2.0)
    with fastnn.GradientTape() as tape:
        y = x * x
        assert float(tape.gradient(y, x)) == 4.0
        z = x * 3.0  # not recorded any more
    assert z._node is None or tape not in z._node.tapes


def test_ops_outside_the_tape_are_not_recorded_on_it():
    x = fastnn.Variable(3.0)
    y = x * x  # before the tape
    with fastnn.GradientTape() as tape:
        z = y * 2.0
    assert tape.gradient(z, x) is None


def test_stop_recording():
    x = fastnn.Variable(2.0)
    with fastnn.GradientTape() as tape:
        y = x * x
        with tape.stop_recording():
            c = x * 10.0  # a constant for this tape
        z = y + c
    assert float(tape.gradient(z, x)) == 4.0


def test_no_grad_records_nothing():
    x = fastnn.Variable(2.0)
    with fastnn.no_grad():
        y = x * x
    assert y._node is None and not y.requires_grad

    @fastnn.no_grad()
    def f(v):
        return v * v

    assert f(x)._node is None
    assert (x * x)._node is not None


def test_backward_and_grad_accumulate_like_pytorch():
    x = fastnn.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    ops.sum(x * 3.0).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])
    assert x.grad.dtype == np.float32


def test_repeated_use_accumulates():
    x = fastnn.Variable(np.array([1.0, -2.0, 3.0]))
    with fastnn.GradientTape(persistent=True) as tape:
        y = x * x + x * 3.0 + ops.exp(x) - x + x[[0, 0, 2]].sum()
    # y is a vector, differentiated as its sum: the broadcast scalar term counts once per element (3 times)
    expected = 2 * x.numpy() + 3 + np.exp(x.numpy()) - 1 + 3 * np.array([2.0, 0.0, 1.0])
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), expected, rtol=1e-12)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_tape_and_backward_identical_on_a_small_network():
    rng = np.random.default_rng(0)
    w1 = fastnn.Variable(rng.standard_normal((5, 8)), name="w1")
    b1 = fastnn.Variable(np.zeros(8), name="b1")
    w2 = fastnn.Variable(rng.standard_normal((8, 3)), name="w2")
    x = rng.standard_normal((4, 5))
    labels = np.array([0, 2, 1, 2])
    with fastnn.GradientTape(persistent=True) as tape:
        h = ops.gelu(ops.matmul(x, w1) + b1)
        loss = ops.mean(ops.sparse_categorical_crossentropy(labels, h @ w2, from_logits=True))
    grads = tape.gradient(loss, [w1, b1, w2])
    loss.backward()
    for g, v in zip(grads, [w1, b1, w2]):
        assert np.array_equal(g.numpy(), v.grad.numpy())
    check_gradients(
        lambda a, b, c: ops.mean(ops.sparse_categorical_crossentropy(labels, ops.gelu(x @ a + b) @ c, from_logits=True)),
        [w1.numpy(), b1.numpy(), w2.numpy()],
    )


def test_deep_chain_of_100k_nodes():
    x = fastnn.Variable(np.array([1.0, 2.0]))
    n = 100_000
    with fastnn.GradientTape() as tape:
        y = x
        for _ in range(n):
            y = y + 1.0
    g = tape.gradient(y, x)
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0])
    y2 = x
    for _ in range(n):
        y2 = y2 * 1.0
    y2.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    y3 = x
    for _ in range(n):
        y3 = y3 - 0.0
    del y3  # dropping an unused deep graph must not overflow the C stack


def test_graph_memory_freed_after_backward_and_tape():
    x = fastnn.Variable(np.ones(4))
    h = x * 2.0
    ref = weakref.ref(h)
    y = ops.sum(ops.exp(h))
    del h
    gc.collect()
    assert ref() is not None  # kept alive by y's graph
    y.backward()
    assert ref() is None  # the graph was released by backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()

    with fastnn.GradientTape() as tape:
        h = x * 2.0
        y = ops.sum(h * h)
    ref = weakref.ref(h)
    del h
    tape.gradient(y, x)
    assert ref() is None

    with fastnn.GradientTape(persistent=True) as tape:
        h = x * 2.0
        y = ops.sum(h * h)
    ref = weakref.ref(h)
    del h
    tape.gradient(y, x)
    assert ref() is not None  # persistent: kept for further calls
    del tape, y
    gc.collect()
    assert ref() is None


def test_broadcast_backward_reduces_to_input_shapes():
    a = fastnn.Variable(np.ones((2, 1, 4)))
    b = fastnn.Variable(np.ones((3, 1)))
    c = fastnn.Variable(2.0)
    with fastnn.GradientTape() as tape:
        y = a * b + c
    ga, gb, gc_ = tape.gradient(y, [a, b, c])
    assert ga.shape == (2, 1, 4) and gb.shape == (3, 1) and gc_.shape == ()
    np.testing.assert_array_equal(ga.numpy(), np.full((2, 1, 4), 3.0))
    np.testing.assert_array_equal(gb.numpy(), np.full((3, 1), 8.0))
    assert float(gc_) == 24.0


def test_mixed_dtypes_give_gradients_in_each_source_dtype():
    a = fastnn.Variable(np.ones(3, np.float32))
    b = fastnn.Variable(np.ones(3, np.float64))
    with fastnn.GradientTape() as tape:
        y = a * b
    assert y.dtype == np.float64
    ga, gb = tape.gradient(y, [a, b])
    assert ga.dtype == np.float32 and gb.dtype == np.float64


class TestErrors:
    def test_integer_tensors_cannot_be_differentiated(self):
        i = fastnn.Tensor([1, 2])
        assert i.dtype == np.int32
        with pytest.raises(TypeError, match="only float tensors can require gradients.*int32"):
            fastnn.Tensor([1, 2], requires_grad=True)
        with fastnn.GradientTape() as tape:
            with pytest.raises(TypeError, match="watch: only float tensors.*int32"):
                tape.watch(i)
            y = i * 2
        with pytest.raises(TypeError, match="cannot differentiate with respect to a tensor of dtype int32"):
            tape.gradient(ops.sum(ops.cast(y, "float32")), i)
        with pytest.raises(TypeError, match="target must be a float tensor"):
            (i * 2).backward()

    def test_int_variable_is_not_trainable_for_gradients(self):
        v = fastnn.Variable(np.array([1, 2], np.int64))
        assert v.dtype == np.int64 and not v.requires_grad

    def test_backward_without_graph(self):
        with pytest.raises(RuntimeError, match="does not require gradients"):
            fastnn.Tensor([1.0]).backward()

    def test_watch_non_tensor(self):
        with fastnn.GradientTape() as tape:
            with pytest.raises(TypeError, match="expected a fastnn.Tensor"):
                tape.watch(np.ones(2))

    def test_bad_unconnected_gradients(self):
        x = fastnn.Variable(1.0)
        with fastnn.GradientTape() as tape:
            y = x * 2
        with pytest.raises(ValueError, match="unconnected_gradients"):
            tape.gradient(y, x, unconnected_gradients="maybe")

    def test_output_gradient_shape(self):
        x = fastnn.Variable(np.ones(3))
        with fastnn.GradientTape() as tape:
            y = x * 2
        with pytest.raises(ValueError, match=r"target's shape \(3,\)"):
            tape.gradient(y, x, output_gradients=np.ones(2))


def test_gradcheck_catches_a_wrong_gradient():
    def bad_square(x):
        a = x._data
        return record(a * a, (x,), lambda g, needs: (g * a,), "bad_square")  # missing the factor 2

    with pytest.raises(AssertionError, match="analytic gradient"):
        check_gradients(bad_square, [np.array([1.0, 2.0])])


def test_nan_and_inf_propagate_like_numpy():
    x = np.array([np.nan, np.inf, -np.inf, 0.5, -0.5])
    for f, ref in [
        (ops.relu, lambda v: np.maximum(v, 0)),
        (ops.sigmoid, lambda v: 1 / (1 + np.exp(-v))),
        (ops.tanh, np.tanh),
        (ops.exp, np.exp),
        (ops.softplus, lambda v: np.logaddexp(0, v)),
        (ops.abs, np.abs),
        (lambda v: ops.sum(v), np.sum),
        (lambda v: ops.max(v), np.max),
    ]:
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(f(x).numpy(), ref(x), rtol=1e-15, atol=0)
    sm = ops.softmax(np.array([[np.nan, 1.0], [np.inf, 1.0], [1.0, 2.0]])).numpy()
    assert np.isnan(sm[0]).all() and np.isnan(sm[1]).all() and np.isfinite(sm[2]).all()
    v = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        y = ops.sum(ops.sigmoid(v) * v)
    g = tape.gradient(y, v).numpy()
    assert np.isnan(g[0]) and np.isfinite(g[3:]).all()
