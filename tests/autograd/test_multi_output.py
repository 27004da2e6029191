"""Graph nodes with several outputs: ``record`` with a tuple of buffers, one node shared by the outputs, its backward
called once per pass (after every consumer of every output) with one gradient per output, None where none came.

The graphs of ``fastnn.testing.multi_output`` are checked against float64 finite differences and against the same
math written with single-output ops; the engine's cases (targets, persistent tapes, freeing, unconnected sources,
watch, tapes that did not see a consumer, integer outputs) are tested one by one; ``split`` and ``moments`` (the
first ops built on such nodes) get op-table-style forward and gradient tests.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.tape import MultiNode
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.multi_output import GRAPHS, abs_and_sign, logged, product_and_difference, tanh_exp


def _inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(*graph.domain, size=s) for s in graph.shapes]


def _value_and_grads(fn, inputs):
    """fn's value, its GradientTape gradients and its backward() gradients (weighted so each element counts)."""
    xs = [fastnn.Tensor(x, requires_grad=True) for x in inputs]
    with fastnn.GradientTape() as tape:
        tape.watch(xs)
        out = fn(*xs)
        weights = np.linspace(0.5, 1.5, out.size).reshape(out.shape)
        objective = ops.sum(out * weights)
    tape_grads = tape.gradient(objective, xs)
    xs2 = [fastnn.Tensor(x, requires_grad=True) for x in inputs]
    ops.sum(fn(*xs2) * weights).backward()
    return out.numpy(), [g.numpy() for g in tape_grads], [x.grad.numpy() for x in xs2]


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.name for g in GRAPHS])
def test_gradients_match_finite_differences(graph):
    check_gradients(graph.fn, _inputs(graph), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.name for g in GRAPHS])
def test_same_as_the_math_on_single_output_ops(graph):
    inputs = _inputs(graph, seed=1)
    value, tape_grads, backward_grads = _value_and_grads(graph.fn, inputs)
    ref_value, ref_tape_grads, _ = _value_and_grads(graph.ref, inputs)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12, atol=1e-14)
    for g, b, r in zip(tape_grads, backward_grads, ref_tape_grads):
        np.testing.assert_array_equal(g, b)  # the tape and backward() run the same engine on the same graph
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.name for g in GRAPHS])
def test_float32_gradients_follow_the_float64_ones(graph):
    inputs = _inputs(graph, seed=2)
    _, g64, _ = _value_and_grads(graph.fn, inputs)
    _, g32, _ = _value_and_grads(graph.fn, [x.astype(np.float32) for x in inputs])
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


# -- the node ---------------------------------------------------------------------------------------------------
def test_outputs_share_one_node_and_keep_their_own_values():
    x = fastnn.Tensor(np.array([0.5, 1.0]), requires_grad=True)
    s, c = tanh_exp(x)
    assert isinstance(s._node, MultiNode) and s._node is c._node
    assert s._node.parents == (x,) and s._node.n_outputs == 2
    np.testing.assert_array_equal(s.numpy(), np.tanh(x.numpy()))
    np.testing.assert_array_equal(c.numpy(), np.exp(x.numpy()))
    assert "grad_fn=tanh_exp" in repr(c)


def test_no_node_without_gradients_and_under_no_grad():
    s, c = tanh_exp(fastnn.Tensor([0.5]))
    assert s._node is None and c._node is None and not s.requires_grad
    x = fastnn.Tensor([0.5], requires_grad=True)
    with fastnn.no_grad():
        outs = tanh_exp(x)
    assert isinstance(outs, tuple) and all(o._node is None for o in outs)


def test_integer_outputs_are_constants():
    x = fastnn.Tensor(np.array([-2.0, 3.0]), requires_grad=True)
    magnitude, sign = abs_and_sign(x)
    assert sign.dtype == np.int32 and sign._node is None and not sign.requires_grad
    assert magnitude._node is not None and magnitude.requires_grad
    (magnitude * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-3.0, 3.0])
    with pytest.raises(TypeError, match="float tensor"):
        sign.backward()


def test_runs_once_after_all_consumers_of_all_outputs_with_none_for_unused_ones():
    log = []
    x = fastnn.Tensor(np.array([0.3, -0.7]), requires_grad=True)
    s, c = tanh_exp(x, log=log)
    # s reaches the objective through three consumers at depths 1, 2 and 4; c through one at depth 3.
    a = logged(s, "s:1", log)
    b = logged(logged(s * 2.0, "s:2", log), "s:2b", log)
    d = logged(logged(logged(logged(s, "s:4", log), "s:3", log), "s:2c", log), "s:1c", log)
    e = logged(logged(logged(c, "c:3", log), "c:2", log), "c:1", log)
    (a + b + d + e).sum().backward()
    names = [entry if isinstance(entry, str) else entry[0] for entry in log]
    assert names.count("tanh_exp") == 1 and names[-1] == "tanh_exp"
    assert len(names) == 11
    g_tanh, g_exp = log[-1][1]
    np.testing.assert_array_equal(g_tanh, [4.0, 4.0])  # 1 + 2 + 1: the three consumers' gradients summed
    np.testing.assert_array_equal(g_exp, [1.0, 1.0])

    log.clear()
    x = fastnn.Tensor(np.array([0.3]), requires_grad=True)
    s, c = tanh_exp(x, log=log)
    (c * 5.0).sum().backward()
    assert len(log) == 1 and log[0][1][0] is None
    np.testing.assert_allclose(log[0][1][1], [5.0])
    np.testing.assert_allclose(x.grad.numpy(), 5.0 * np.exp([0.3]))


def test_only_the_wanted_parents_are_asked_for():
    log = []
    x = fastnn.Variable(np.array([1.0, 2.0]))
    y = fastnn.Tensor(np.array([3.0, 4.0]))
    with fastnn.GradientTape() as tape:
        p, d = product_and_difference(x, y, log=log)
        loss = (p + d).sum()
    gx = tape.gradient(loss, x)
    np.testing.assert_array_equal(gx.numpy(), [4.0, 5.0])
    assert log[0][2] == (True, False)


def test_an_output_that_is_a_target():
    x = fastnn.Variable(np.array([0.2, 0.9]))
    with fastnn.GradientTape(persistent=True) as tape:
        s, c = tanh_exp(x)
        other = (c * c).sum()
        s_consumed = (s * 3.0).sum()
        both = other + (s * 2.0).sum()
    xv = x.numpy()
    d_tanh, ex = 1 - np.tanh(xv) ** 2, np.exp(xv)
    # the output alone (a non-scalar target is differentiated as its sum)
    np.testing.assert_allclose(tape.gradient(s, x).numpy(), d_tanh)
    # the output and an objective on the other output together: their gradients add up
    np.testing.assert_allclose(tape.gradient([s, other], x).numpy(), d_tanh + 2 * ex * ex)
    # the output as a target and as a consumer's input at once
    np.testing.assert_allclose(tape.gradient([s, s_consumed], x).numpy(), 4 * d_tanh)
    # the gradient with respect to an output itself (a wanted tensor that is not a leaf)
    gs, gc = tape.gradient(both, [s, c])
    np.testing.assert_array_equal(gs.numpy(), [2.0, 2.0])
    np.testing.assert_allclose(gc.numpy(), 2 * ex)


def test_backward_from_an_output():
    x = fastnn.Tensor(np.array([0.4, 1.1]), requires_grad=True)
    s, c = tanh_exp(x)
    c.backward(np.array([2.0, 3.0]))
    np.testing.assert_allclose(x.grad.numpy(), np.array([2.0, 3.0]) * np.exp(x.numpy()))
    with pytest.raises(RuntimeError, match="already freed"):
        s.backward()  # the pass through c released the node the outputs share


def test_non_persistent_tape_frees_the_node_and_a_persistent_one_keeps_it():
    x = fastnn.Variable(np.array([0.5]))
    with fastnn.GradientTape() as tape:
        s, c = tanh_exp(x)
        loss = (s + c).sum()
    tape.gradient(loss, x)
    assert s._node.freed and s._node.backward is None and s._node.parents == ()

    log = []
    with fastnn.GradientTape(persistent=True) as tape:
        s, c = tanh_exp(x, log=log)
        loss = (s * c).sum()
    first = tape.gradient(loss, x).numpy()
    second = tape.gradient(loss, x).numpy()
    only_s = tape.gradient(s, x).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(only_s, 1 - np.tanh(x.numpy()) ** 2)
    assert len(log) == 3 and not s._node.freed  # once per gradient call
    assert log[2][1][1] is None  # the third call reached only s


def test_unconnected_sources_and_watch():
    x = fastnn.Tensor(np.array([0.1, 0.2]))
    z = fastnn.Tensor(np.array([5.0]))
    with fastnn.GradientTape() as tape:
        tape.watch([x, z])
        s, c = tanh_exp(x)
        loss = (s * 2.0).sum()
    gx, gz = tape.gradient(loss, [x, z], unconnected_gradients="zero")
    np.testing.assert_allclose(gx.numpy(), 2 * (1 - np.tanh(x.numpy()) ** 2))
    np.testing.assert_array_equal(gz.numpy(), [0.0])
    with fastnn.GradientTape() as tape:
        tape.watch(x)
        s, c = tanh_exp(x)
    assert tape.gradient((c * 0.0).sum(), z) is None  # z was never watched by this tape: None


def test_a_consumer_the_tape_did_not_record_gives_that_output_no_gradient():
    log = []
    x = fastnn.Variable(np.array([0.3, 0.6]))
    with fastnn.GradientTape() as tape:
        s, c = tanh_exp(x, log=log)
        with tape.stop_recording():
            unrecorded = c * 10.0
        loss = (s + unrecorded).sum()
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), 1 - np.tanh(x.numpy()) ** 2)
    assert log[0][1][1] is None


def test_nested_tapes_share_the_node():
    x = fastnn.Variable(np.array([0.7]))
    y = fastnn.Tensor(np.array([1.5]))
    with fastnn.GradientTape() as outer:
        outer.watch(y)
        with fastnn.GradientTape(persistent=True) as inner:
            s, c = tanh_exp(x)
            loss = (s * c).sum()
        scaled = loss * y  # on the outer tape only
    assert s._node.tapes == (outer, inner)
    xv = x.numpy()
    d_loss = (1 - np.tanh(xv) ** 2 + np.tanh(xv)) * np.exp(xv)
    np.testing.assert_allclose(inner.gradient(loss, x).numpy(), d_loss)
    np.testing.assert_allclose(inner.gradient(loss, x).numpy(), d_loss)
    assert inner.gradient(scaled, x) is None  # inner did not record the last multiply
    gx, gy = outer.gradient(scaled, [x, y])
    np.testing.assert_allclose(gx.numpy(), 1.5 * d_loss)
    np.testing.assert_allclose(gy.numpy(), np.tanh(xv) * np.exp(xv))


def test_gradient_accumulates_over_passes_into_leaves():
    x = fastnn.Tensor(np.array([0.25]), requires_grad=True)
    for _ in range(2):
        s, c = tanh_exp(x)
        (s + c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(0.25) ** 2 + np.exp(0.25)))


def test_long_chain_of_multi_output_nodes():
    x = fastnn.Tensor(np.array([0.1]), requires_grad=True)
    t = x
    for _ in range(20000):
        a, b = ops.split(ops.concatenate([t, t]), 2)
        t = a * 0.5 + b * 0.5
    t.sum().backward()  # no recursion: deep graphs of multi-output nodes work as single-output ones do
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


# -- split ------------------------------------------------------------------------------------------------------
SPLIT_CASES = [((6,), 3, 0), ((2, 6), 2, 1), ((5, 2), [1, 3], 0), ((4, 3), [-1], 0), ((3, 4), [3, 1], 1),
               ((3, 4), [0, 9], 1), ((0, 4), 2, 1), ((1, 1), 1, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,sections,axis", SPLIT_CASES)
def test_split_forward_is_numpys(shape, sections, axis, dtype):
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    pieces = ops.split(fastnn.Tensor(x, requires_grad=True), sections, axis=axis)
    expected = np.split(x, sections, axis=axis)
    assert isinstance(pieces, list) and len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p.numpy(), e)
    assert len({id(p._node) for p in pieces}) == 1  # one node for all pieces


@pytest.mark.parametrize("shape,sections,axis", SPLIT_CASES)
def test_split_gradients(shape, sections, axis):
    x = np.random.default_rng(1).normal(size=shape)

    def fn(t):
        return ops.concatenate([p * float(i + 1) for i, p in enumerate(ops.split(t, sections, axis=axis))], axis=axis)

    check_gradients(fn, [x])


def test_split_of_integers_has_no_graph():
    pieces = ops.split(fastnn.Tensor(np.arange(6)), 3)
    assert [p.tolist() for p in pieces] == [[0, 1], [2, 3], [4, 5]] and all(p._node is None for p in pieces)


# -- moments ----------------------------------------------------------------------------------------------------
MOMENTS_CASES = [((4, 3), [0], False), ((4, 3), [1], True), ((2, 3, 4), [0, 2], False), ((2, 3, 4), (1,), True),
                 ((5,), 0, False), ((3, 2), None, False), ((3, 2), None, True), ((2, 3), [], False),
                 ((1, 1), [0, 1], False), ((0, 3), [1], False)]


def _numpy_moments(x, axes, keepdims):
    axes = tuple(axes) if isinstance(axes, list) else axes
    mean = np.mean(x, axis=axes, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    if not keepdims:
        mean, variance = np.squeeze(mean, axes), np.squeeze(variance, axes)
    return mean, variance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axes,keepdims", MOMENTS_CASES)
def test_moments_forward(shape, axes, keepdims, dtype):
    x = np.random.default_rng(0).normal(1.0, 2.0, size=shape).astype(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = _numpy_moments(x.astype(np.float64), axes, keepdims)
    mean, variance = ops.moments(fastnn.Tensor(x), axes, keepdims=keepdims)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in ((mean, expected[0]), (variance, expected[1])):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=rtol)
    # the same numbers as keras.ops-style mean and var, bit for bit
    ax = tuple(axes) if isinstance(axes, list) else axes
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal(mean.numpy(), ops.mean(x, axis=ax, keepdims=keepdims).numpy())
        np.testing.assert_array_equal(variance.numpy(), ops.var(x, axis=ax, keepdims=keepdims).numpy())


@pytest.mark.parametrize("which", ["mean", "variance", "both"])
@pytest.mark.parametrize("shape,axes,keepdims", [c for c in MOMENTS_CASES if 0 not in c[0]])
def test_moments_gradients(shape, axes, keepdims, which):
    x = np.random.default_rng(3).normal(size=shape)

    def fn(t):
        mean, variance = ops.moments(t, axes, keepdims=keepdims)
        return {"mean": mean, "variance": variance, "both": mean * 0.5 + variance * variance}[which]

    check_gradients(fn, [x])


def test_moments_float16_is_computed_in_float32_and_clipped():
    x = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 6.0]], np.float16)
    mean, variance = ops.moments(x, [1])
    assert mean.dtype == np.float16 and variance.dtype == np.float16
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(mean.numpy(), np.mean(x32, axis=1).astype(np.float16))
    np.testing.assert_array_equal(variance.numpy(), np.mean(np.square(x32 - x32.mean(1, keepdims=True)), 1)
                                  .astype(np.float16))
    big = np.array([-60000.0, 60000.0], np.float16)  # variance 3.6e9: beyond float16, clipped to its maximum
    m, v = ops.moments(big, [0])
    assert float(m) == 0.0 and float(v) == float(np.finfo(np.float16).max)
    t = fastnn.Tensor(x, requires_grad=True)
    mean, variance = ops.moments(t, [1])
    (mean + variance).sum().backward()
    expected = 1 / 3 + 2 * (x32 - x32.mean(1, keepdims=True)) / 3
    assert t.grad.dtype == np.float16
    np.testing.assert_allclose(t.grad.numpy().astype(np.float32), expected, rtol=1e-3)
    tb = fastnn.Tensor(big, requires_grad=True)
    m, v = ops.moments(tb, [0])
    (m + v).sum().backward()  # the clipped variance passes no gradient; the mean's does
    np.testing.assert_array_equal(tb.grad.numpy(), np.full(2, 0.5, np.float16))


def test_moments_of_integers_are_float32_and_synchronized_is_accepted():
    mean, variance = ops.moments([0, 1, 2, 3, 100], axes=[0], synchronized=True)
    assert mean.dtype == np.float32 and variance.dtype == np.float32
    np.testing.assert_allclose([float(mean), float(variance)], [21.2, 1553.36], rtol=1e-6)


def test_moments_errors():
    with pytest.raises(ValueError, match="moments: axis 2 is out of bounds"):
        ops.moments(np.ones((2, 3)), [2])
    with pytest.raises(ValueError, match="moments: repeated axis"):
        ops.moments(np.ones((2, 3)), [0, -2])
