"""Test ops and graphs for nodes with several outputs (``tape.record`` with a tuple of buffers).

The ops compute through ``fastnn.backend`` only (they run on the wrapped test backend too), and each can log what
its backward received, so tests see how often a node ran, in which order, and which output gradients were None.
Every graph in :data:`GRAPHS` is written once and runs twice: on the multi-output ops (``fn``) and as the same math
on single-output ops only (``ref``); ``tests/autograd/test_multi_output.py`` compares the two and checks ``fn``
against float64 finite differences, ``tests/backend/test_wrapped_tape.py`` runs ``fn`` on the wrapped backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Sequence

from fastnn import backend as B
from fastnn import ops
from fastnn.autograd.ops._util import float_tensor, promote
from fastnn.autograd.tape import record


def tanh_exp(x, log=None):
    """(tanh x, exp x) from one node. ``log``: a list the backward appends ("tanh_exp", gradients received) to."""
    t = float_tensor(x, "tanh_exp")
    a = t._data
    th, ex = B.tanh(a), B.exp(a)

    def backward(gs, needs):
        if log is not None:
            log.append(("tanh_exp", gs))
        g_tanh, g_exp = gs
        gx = None if g_tanh is None else B.multiply(g_tanh, B.subtract(1.0, B.square(th)))
        if g_exp is not None:
            through_exp = B.multiply(g_exp, ex)
            gx = through_exp if gx is None else B.add(gx, through_exp)
        return (gx,)

    return record((th, ex), (t,), backward, "tanh_exp")


def product_and_difference(x, y, log=None):
    """(x * y, x - y) from one node with two parents (broadcasting): checks the per-parent ``needs``."""
    (tx, ty), (a, b) = promote("product_and_difference", x, y)

    def backward(gs, needs):
        if log is not None:
            log.append(("product_and_difference", gs, needs))
        g_prod, g_diff = gs
        gx = gy = None
        if needs[0]:
            gx = None if g_prod is None else B.multiply(g_prod, b)
            if g_diff is not None:
                gx = g_diff if gx is None else B.add(gx, g_diff)
            gx = None if gx is None else B.unbroadcast(gx, a.shape)
        if needs[1]:
            gy = None if g_prod is None else B.multiply(g_prod, a)
            if g_diff is not None:
                gy = B.negative(g_diff) if gy is None else B.subtract(gy, g_diff)
            gy = None if gy is None else B.unbroadcast(gy, b.shape)
        return (gx, gy)

    return record((B.multiply(a, b), B.subtract(a, b)), (tx, ty), backward, "product_and_difference")


def abs_and_sign(x, log=None):
    """(|x|, sign(x) as int32): a float output with a gradient and an integer one without."""
    t = float_tensor(x, "abs_and_sign")
    a = t._data
    sign = B.sign(a)

    def backward(gs, needs):
        if log is not None:
            log.append(("abs_and_sign", gs))
        assert gs[1] is None, "an integer output never gets a gradient"
        return (B.multiply(gs[0], sign),)

    return record((B.abs(a), B.astype(sign, "int32")), (t,), backward, "abs_and_sign")


def logged(x, tag, log):
    """The identity as a one-output node that appends ``tag`` to ``log`` when its backward runs."""
    t = float_tensor(x, "logged")

    def backward(g, needs):
        log.append(tag)
        return (g,)

    return record(t._data, (t,), backward, "logged")


def _deep(t, depth):
    """``depth`` differentiable ops in a chain (a consumer far from the node that made ``t``)."""
    for _ in range(depth):
        t = ops.add(ops.multiply(t, 0.75), ops.multiply(ops.tanh(t), 0.25))
    return t


def _split_on_slices(x, indices_or_sections, axis=0):
    """``ops.split``'s pieces as one getitem node each (the single-output formulation split had before)."""
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        bounds = [i * (n // indices_or_sections) for i in range(1, indices_or_sections)]
    else:
        bounds = list(indices_or_sections)
    pieces = []
    for lo, hi in zip([0] + bounds, bounds + [n]):
        key = [slice(None)] * x.ndim
        key[axis] = slice(lo, max(lo, hi))
        pieces.append(x[tuple(key)])
    return pieces


# The multi-output ops, and the same math on single-output ops: every graph below is written once against one of
# these namespaces (``impl``), so the two formulations cannot drift apart.
MULTI = SimpleNamespace(
    tanh_exp=tanh_exp,
    product_and_difference=product_and_difference,
    abs_=lambda x: abs_and_sign(x)[0],
    split=ops.split,
    moments=ops.moments,
)
SINGLE = SimpleNamespace(
    tanh_exp=lambda x: (ops.tanh(x), ops.exp(x)),
    product_and_difference=lambda x, y: (x * y, x - y),
    abs_=ops.abs,
    split=_split_on_slices,
    moments=lambda x, axes, keepdims=False: (ops.mean(x, axis=axes, keepdims=keepdims),
                                             ops.var(x, axis=axes, keepdims=keepdims)),
)


@dataclass
class Graph:
    """A differentiable function ``body(impl, *inputs)``; ``fn`` runs it on the multi-output ops, ``ref`` on the
    single-output ones. ``shapes``: the float64 inputs; ``domain``: where they are drawn."""

    name: str
    body: Callable
    shapes: Sequence[tuple]
    domain: tuple = (-2.0, 2.0)

    def fn(self, *inputs):
        return self.body(MULTI, *inputs)

    def ref(self, *inputs):
        return self.body(SINGLE, *inputs)


def _weigh(pieces):
    """A weighted sum of the pieces, so each piece's gradient differs."""
    return sum(ops.sum(p * float(i + 1)) for i, p in enumerate(pieces))


def _chain(impl, x):
    """Each step's two outputs feed the next step through different ops."""
    for _ in range(4):
        th, ex = impl.tanh_exp(x)
        x = th * 0.5 + ex * 0.25
    return x


def _output_feeds_another(impl, x):
    th, ex = impl.tanh_exp(x)
    inner_th, inner_ex = impl.tanh_exp(th)
    return inner_th + inner_ex + ex


def _normalize(impl, x):
    """Batch normalization's arithmetic on ``moments``' outputs (the mean used at two places)."""
    mean, variance = impl.moments(x, [0], keepdims=True)
    return (x - mean) / ops.sqrt(variance + 1e-3) + mean * 0.1


def _split_of_split(impl, x):
    return _weigh([p for half in impl.split(x, 2, axis=0) for p in impl.split(half, 2, axis=1)])


GRAPHS = [
    Graph("first_output_only", lambda impl, x: impl.tanh_exp(x)[0] * 2.0, [(3, 4)]),
    Graph("second_output_only", lambda impl, x: impl.tanh_exp(x)[1], [(5,)]),
    Graph("both_outputs", lambda impl, x: (lambda th, ex: th * ex + ex)(*impl.tanh_exp(x)), [(2, 3)]),
    Graph("output_used_twice", lambda impl, x: (lambda th, ex: th * th + th)(*impl.tanh_exp(x)), [(4,)]),
    Graph("input_also_used_directly", lambda impl, x: (lambda th, ex: th * x + ex)(*impl.tanh_exp(x)) + x, [(3, 2)]),
    Graph("outputs_at_different_depths", lambda impl, x: (lambda th, ex: th + _deep(ex, 25))(*impl.tanh_exp(x)),
          [(3,)]),
    Graph("output_feeds_another_multi_node", _output_feeds_another, [(2, 2)]),
    Graph("chain_of_multi_nodes", _chain, [(3,)]),
    Graph("two_parents_broadcast", lambda impl, x, y: (lambda p, d: p * d + p)(*impl.product_and_difference(x, y)),
          [(3, 4), (4,)]),
    Graph("two_parents_one_output", lambda impl, x, y: impl.product_and_difference(x, y)[1] * 3.0,
          [(2, 3), (2, 3)]),
    Graph("same_tensor_as_both_parents", lambda impl, x: sum(impl.product_and_difference(x, x)), [(4,)]),
    Graph("integer_output_alongside", lambda impl, x: impl.abs_(x) * 2.0, [(3, 3)]),
    Graph("split_all_pieces", lambda impl, x: _weigh(impl.split(x, 3, axis=1)), [(2, 6)]),
    Graph("split_some_pieces", lambda impl, x: _weigh(impl.split(x, [1, 3], axis=0)[1:]), [(5, 2)]),
    Graph("split_piece_used_twice", lambda impl, x: (lambda a, b: a * a + a * b)(*impl.split(x, 2)), [(4,)]),
    Graph("split_unsorted_indices", lambda impl, x: _weigh(impl.split(x, [3, 1], axis=1)), [(2, 4)]),
    Graph("split_of_split", _split_of_split, [(4, 2)]),
    Graph("moments_mean_only", lambda impl, x: impl.moments(x, [0])[0], [(4, 3)]),
    Graph("moments_variance_only", lambda impl, x: impl.moments(x, [1])[1], [(4, 3)]),
    Graph("moments_both", lambda impl, x: (lambda m, v: m * 2.0 + v * v)(*impl.moments(x, [0, 2])), [(2, 3, 4)]),
    Graph("moments_keepdims_normalize", _normalize, [(5, 3)]),
    Graph("moments_all_axes", lambda impl, x: sum(impl.moments(x, None)), [(3, 2)]),
]
