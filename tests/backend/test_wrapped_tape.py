"""The tape and Tensor / Variable on the wrapped backend (buffers that are not NumPy arrays).

Nodes with several outputs: the engine, ``split``, ``moments`` and the multi-output test ops compute through
``fastnn.backend`` only, and give the CPU run's numbers exactly. Tensor's conversions and Variable's updates
(copy-on-write included) go through the backend too.

The graphs are built from those ops alone (targets are combined by passing several of them to
``GradientTape.gradient``, weighted by ``output_gradients``), so the test exercises the engine and the multi-output
ops, not the elementwise ops of other modules.
"""
from __future__ import annotations

import weakref

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.ops.shape import identity
from fastnn.testing.multi_output import abs_and_sign, logged, product_and_difference, tanh_exp
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend


def _one_output(x, y):
    return [tanh_exp(x)[0]]


def _both_outputs(x, y):
    th, ex = tanh_exp(x)
    return [th, ex]


def _output_used_twice(x, y):
    th, ex = tanh_exp(x)
    return list(product_and_difference(th, th)) + [logged(th, "direct", [])]


def _different_depths(x, y):
    th, ex = tanh_exp(x)
    deep = ex
    for _ in range(12):
        deep = tanh_exp(deep)[0]
    return [th, deep]


def _two_parents(x, y):
    p, d = product_and_difference(x, y)
    return [tanh_exp(p)[1], d, x]


def _integer_output(x, y):
    magnitude, sign = abs_and_sign(x)
    return [magnitude]


def _split_pieces(x, y):
    a, b, c = ops.split(x, 3, axis=1)
    return [tanh_exp(a)[0], c, c]  # b unused, c used twice


def _split_unsorted(x, y):
    return ops.split(y, [3, 1], axis=0)


def _moments(x, y):
    mean, variance = ops.moments(x, [0])
    m2, v2 = ops.moments(y, 0, keepdims=True)
    return [mean, variance, v2]


def _moments_mean_only(x, y):
    return [ops.moments(x, [0, 1])[0]]


GRAPHS = [_one_output, _both_outputs, _output_used_twice, _different_depths, _two_parents, _integer_output,
          _split_pieces, _split_unsorted, _moments, _moments_mean_only]


def _run(graph, persistent=False):
    """Forward values and tape gradients (zeros for unconnected sources), as NumPy."""
    rng = np.random.default_rng(0)
    xv, yv = rng.uniform(-1.0, 1.0, size=(3, 6)), rng.uniform(-1.0, 1.0, size=(6,))
    x, y = fastnn.Variable(xv), fastnn.Tensor(yv, requires_grad=True)
    unused = fastnn.Variable(np.ones(2))
    with fastnn.GradientTape(persistent=persistent) as tape:
        tape.watch(y)
        targets = graph(x, y)
    weights = [np.linspace(0.5, 1.5, t.size).reshape(t.shape) for t in targets]
    grads = tape.gradient(targets, [x, y, unused], output_gradients=weights, unconnected_gradients="zero")
    if persistent:
        again = tape.gradient(targets, [x, y, unused], output_gradients=weights, unconnected_gradients="zero")
        for g, h in zip(grads, again):
            np.testing.assert_array_equal(g.numpy(), h.numpy())
    assert all(isinstance(g._data, WrappedBuffer) for g in grads) == (fastnn.backend.name == "wrapped")
    return [t.numpy() for t in targets], [g.numpy() for g in grads]


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("graph", GRAPHS, ids=[g.__name__.lstrip("_") for g in GRAPHS])
def test_multi_output_graph_on_the_wrapped_backend(graph, persistent):
    expected = _run(graph, persistent)
    with use_wrapped_backend():
        got = _run(graph, persistent)
    for got_part, expected_part in zip(got, expected):
        assert len(got_part) == len(expected_part)
        for g, e in zip(got_part, expected_part):
            np.testing.assert_array_equal(g, e)


def test_the_node_runs_once_on_the_wrapped_backend():
    with use_wrapped_backend():
        log = []
        x = fastnn.Tensor(np.array([0.2, 0.4]), requires_grad=True)
        th, ex = tanh_exp(x, log=log)
        logged(th, "consumer", log).backward(np.ones(2))
        assert [e if isinstance(e, str) else e[0] for e in log] == ["consumer", "tanh_exp"]
        assert isinstance(log[1][1][0], WrappedBuffer) and log[1][1][1] is None
        assert isinstance(x.grad._data, WrappedBuffer)
        np.testing.assert_array_equal(x.grad.numpy(), 1 - np.tanh([0.2, 0.4]) ** 2)


def test_tensors_and_variables_keep_a_numpy_arrays_dtype_on_the_wrapped_backend():
    with use_wrapped_backend():
        for make in (fastnn.Tensor, fastnn.Variable):
            assert make(np.ones(2, np.float64)).dtype == np.float64
            assert make(np.ones(2, np.int64)).dtype == np.int64
            assert make([1.0, 2.0]).dtype == np.float32


def test_tensor_conversions_on_the_wrapped_backend():
    with use_wrapped_backend():
        x = fastnn.Tensor(np.array([1.5, -2.0]))
        scalar = fastnn.Tensor(2.5)
        assert isinstance(x._data, WrappedBuffer)
        assert x.tolist() == [1.5, -2.0] and scalar.item() == 2.5 and float(scalar) == 2.5
        assert int(fastnn.Tensor(3)) == 3 and bool(fastnn.Tensor(1.0)) and len(x) == 2
        assert [1, 2][fastnn.Tensor(1)] == 2
        assert f"{scalar:.2f}" == "2.50" and "shape=(2,)" in repr(x) and format(x) == repr(x)
        assert type(x.numpy()) is np.ndarray and np.asarray(x, np.float32).dtype == np.float32
        assert x.detach()._data is x._data and x.device == "cpu"
        with pytest.raises(TypeError, match="one element"):
            float(x)
        with pytest.raises(ValueError, match="ambiguous"):
            bool(x)


def test_variable_updates_and_copy_on_write_on_the_wrapped_backend():
    with use_wrapped_backend():
        v = fastnn.Variable(np.zeros(3))
        value, detached = v.value, v.detach()
        tape_value = None
        with fastnn.GradientTape() as tape:
            th, ex = tanh_exp(v)  # the node saves buffers computed from the variable's
            tape_value = identity(v)
        v.assign_add(np.ones(3))
        # tensors and saved buffers keep the values they saw; the variable has the new ones
        np.testing.assert_array_equal(value.numpy(), [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(detached.numpy(), [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(tape_value.numpy(), [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(v.numpy(), [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(tape.gradient([th, ex], v).numpy(), [2.0, 2.0, 2.0])  # tanh'(0) + exp(0)
        # an update nobody can observe stays in place
        private = fastnn.Variable(np.zeros(3))
        before = weakref.ref(private._data)
        private.assign_add(np.ones(3))
        private.assign_sub(np.full(3, 0.5))
        private.assign(np.full(3, 4.0))
        assert before() is private._data
        np.testing.assert_array_equal(private.numpy(), [4.0, 4.0, 4.0])
        assert private.numpy().dtype == np.float64
