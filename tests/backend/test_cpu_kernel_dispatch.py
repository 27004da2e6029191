"""The CPU backend's kernel-or-NumPy functions (the `# --- added by h-cpp-kernels ---` section of backend/cpu.py):
B.sum / mean / max / where / clip / unbroadcast / relu_mask_multiply / dropout_mask_multiply return exactly what the
NumPy expression they replace returns (values, signs of zero, dtype, shape, scalar-or-array), whether the call
takes the C++ kernel (C-contiguous float32/float64) or falls back to NumPy (strided views, other dtypes, scalars,
extra arguments, non-adjacent axes, empty reductions); and contiguous float calls really take the kernel."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastnn.backend import cpu as B
from fastnn.testing.wrapped_backend import WRAPPED, WrappedBuffer

RNG = np.random.default_rng(0)


def _same(actual, expected):
    assert type(actual) is type(expected), (type(actual), type(expected))
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)
    if actual.dtype.kind == "f":
        numbers = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))


def _inputs(shape, dtype):
    """The same values as a C-contiguous array, a transposed copy's view, a strided slice and a reversed view."""
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    if x.size:
        x.reshape(-1)[:: 7] = 0.0
        x.reshape(-1)[3:: 11] = -0.0
    views = [x]
    if x.ndim >= 2:
        views.append(np.ascontiguousarray(x.T).T)
    if x.ndim >= 1:
        wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
        wide[..., ::2] = x
        views.append(wide[..., ::2])
        views.append(np.ascontiguousarray(x[..., ::-1])[..., ::-1])
    return views


class KernelSpy:
    """Stands in for fastnn._C in backend/cpu.py and counts the kernel calls that returned."""

    def __init__(self, real):
        self._real = real
        self.calls = 0

    def __getattr__(self, name):
        fn = getattr(self._real, name)

        def counted(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.calls += 1
            return out

        return counted


@pytest.fixture
def spy(monkeypatch):
    s = KernelSpy(B._C)
    monkeypatch.setattr(B, "_C", s)
    return s


DTYPES = [np.float32, np.float64, np.float16, np.int32]
SHAPES = [(), (1,), (7,), (32, 1), (32, 64), (3, 5, 7), (0, 4)]


def _axes(ndim):
    out = [None] + list(range(ndim)) + [-1] * (ndim > 0)
    if ndim >= 2:
        out.append((0, 1))
    if ndim >= 3:
        out.append((0, 2))  # not adjacent: NumPy
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_reductions_equal_numpy(dtype, shape):
    for x in _inputs(shape, dtype):
        for axis in _axes(x.ndim):
            for keepdims in (False, True):
                _same(B.sum(x, axis=axis, keepdims=keepdims), np.sum(x, axis=axis, keepdims=keepdims))
                _same(B.sum(x, axis, None, None, keepdims), np.sum(x, axis, None, None, keepdims))  # positional
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing
                    _same(B.mean(x, axis=axis, keepdims=keepdims), np.mean(x, axis=axis, keepdims=keepdims))
                try:
                    expected = np.max(x, axis=axis, keepdims=keepdims)
                except ValueError:  # a zero-size reduction: the same error
                    with pytest.raises(ValueError, match="zero-size array"):
                        B.max(x, axis=axis, keepdims=keepdims)
                    continue
                _same(B.max(x, axis=axis, keepdims=keepdims), expected)


def test_reduction_arguments_the_kernel_does_not_take_go_to_numpy():
    x = RNG.standard_normal((6, 5)).astype(np.float32)
    _same(B.sum(x, axis=0, dtype=np.float64), np.sum(x, axis=0, dtype=np.float64))
    out = np.empty(5, np.float32)
    assert B.sum(x, axis=0, out=out) is out
    _same(out, np.sum(x, axis=0))
    _same(B.sum(x, axis=1, where=x > 0), np.sum(x, axis=1, where=x > 0))
    _same(B.max(x, axis=1, initial=10.0), np.max(x, axis=1, initial=10.0))
    _same(B.mean(x, axis=0, dtype=np.float64), np.mean(x, axis=0, dtype=np.float64))
    _same(B.sum([1.0, 2.0]), np.sum([1.0, 2.0]))
    _same(B.max(3.0), np.max(3.0))
    big = RNG.standard_normal(B._MAX_KERNEL_SIZE + 1).astype(np.float32)
    _same(B.max(big), np.max(big))
    with pytest.raises(np.exceptions.AxisError):
        B.sum(x, axis=2)
    with pytest.raises(TypeError):
        B.sum(x, axis=[0])
    _same(B.sum(x, axis=np.int64(1)), np.sum(x, axis=np.int64(1)))
    with pytest.warns(RuntimeWarning, match="overflow"):  # NumPy's warning, as np.clip gives it
        _same(B.clip(x, 0.0, 1e40), np.clip(x, 0.0, np.inf))


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_and_clip_equal_numpy(dtype):
    for x in _inputs((32, 64), dtype):
        y = np.ascontiguousarray(x[::-1])
        cond = np.asarray(x > 0.5)
        _same(B.where(cond, x, y), np.where(cond, x, y))
        _same(B.where(cond, x, 0.0), np.where(cond, x, 0.0))
        _same(B.where(cond, x, y[0]), np.where(cond, x, y[0]))  # a broadcast row
        _same(B.where(cond.astype(np.int8), x, y), np.where(cond.astype(np.int8), x, y))
        for lo, hi in ((-1.0, 1.0), (None, 0.5), (0, None), (1e-7, 1 - 1e-7), (0.0, 0.0), (2.0, -2.0),
                       (np.float32(-1), 1.0), (np.full(64, -0.5, dtype), 0.5)):
            _same(B.clip(x, lo, hi), np.clip(x, lo, hi))
    _same(B.where(np.array([True, False])), np.where(np.array([True, False])))
    x = np.linspace(-2, 2, 9)
    out = np.empty_like(x)
    assert B.clip(x, -1.0, 1.0, out=out) is out
    _same(out, np.clip(x, -1.0, 1.0))
    assert B.clip(x, -1.0, 1.0, out=x) is x  # in place
    _same(x, np.clip(np.linspace(-2, 2, 9), -1.0, 1.0))


# (g shape, target shape): the NumPy version sums once (leading axes, or size-1 axes) or twice (both).
UNBROADCAST = [((32, 64), (64,)), ((32, 64), (1, 64)), ((32, 64), (32, 1)), ((32, 1), (1,)), ((32, 1), ()),
               ((32, 1), (1, 1)), ((4, 5, 6), (6,)), ((4, 5, 6), (1, 6)), ((4, 5, 6), (5, 1)), ((4, 5, 6), (4, 1, 6)),
               ((4, 1, 6), (1, 6)), ((4, 5, 6), (1, 5, 1)), ((0, 3), (3,)), ((32, 64), (32, 64)), ((2, 3), (1, 1))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("gshape,shape", UNBROADCAST)
def test_unbroadcast_keeps_the_numpy_version_numbers(dtype, gshape, shape):
    for g in _inputs(gshape, dtype):
        _same(B.unbroadcast(g, shape), B._unbroadcast_numpy(g, shape))
    g = np.ones(gshape, dtype)
    if gshape == shape:
        assert B.unbroadcast(g, shape) is g


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_mask_multiplies_equal_their_numpy_expressions(dtype):
    for g in _inputs((32, 64), dtype):
        y = np.ascontiguousarray(g[::-1]) - 0.5
        with np.errstate(invalid="ignore"):
            _same(B.relu_mask_multiply(g, y), g * (y > 0))
        mask = np.asarray(RNG.random((32, 64)) >= 0.25)
        for m in (mask, mask[:1], mask[:, :1], mask.astype(dtype)):
            _same(B.dropout_mask_multiply(g, m, 1 / 0.75), g * m * (1 / 0.75))
        _same(B.dropout_mask_multiply(g, mask, np.float64(4 / 3)), g * mask * np.float64(4 / 3))
    g = np.array([1.0, -2.0, np.inf, np.nan, 3.0], np.float32)
    y = np.array([0.0, -1.0, -1.0, -1.0, 2.0], np.float32)
    with np.errstate(invalid="ignore"):
        _same(B.relu_mask_multiply(g, y), g * (y > 0))  # [0, -0, nan, nan, 3]


def test_contiguous_float_calls_take_the_kernels(spy):
    x = RNG.standard_normal((32, 64)).astype(np.float32)
    y = RNG.standard_normal((32, 64)).astype(np.float32)
    mask = x > 0
    calls = [lambda: B.sum(x, axis=0), lambda: B.sum(x), lambda: B.mean(x, axis=1, keepdims=True),
             lambda: B.max(x, axis=-1), lambda: B.where(mask, x, y), lambda: B.clip(x, -1.0, 1.0),
             lambda: B.unbroadcast(x, (64,)), lambda: B.unbroadcast(x[:, :1].copy(), (1,)),
             lambda: B.relu_mask_multiply(x, y), lambda: B.dropout_mask_multiply(x, mask, 2.0)]
    for i, call in enumerate(calls):
        before = spy.calls
        call()
        assert spy.calls == before + 1, f"call {i} did not use its kernel"
    before = spy.calls
    B.sum(x.T, axis=0)  # strided: NumPy (the binding refuses it before computing)
    B.unbroadcast(np.ones((4, 5, 6), np.float32), (1, 6))  # two NumPy passes
    assert spy.calls == before


def test_the_functions_run_on_the_wrapped_backend():
    x = RNG.standard_normal((8, 3)).astype(np.float32)
    wx = WRAPPED.asarray(x)
    cases = [(WRAPPED.sum(wx, axis=0), np.sum(x, axis=0)), (WRAPPED.mean(wx), np.asarray(np.mean(x))),
             (WRAPPED.max(wx, axis=1), np.max(x, axis=1)), (WRAPPED.clip(wx, -0.5, 0.5), np.clip(x, -0.5, 0.5)),
             (WRAPPED.unbroadcast(wx, (3,)), np.sum(x, axis=0)),
             (WRAPPED.relu_mask_multiply(wx, wx), x * (x > 0)),
             (WRAPPED.where(WRAPPED.greater(wx, 0.0), wx, wx), x)]
    for got, expected in cases:
        assert isinstance(got, WrappedBuffer)
        np.testing.assert_array_equal(WRAPPED.to_numpy(got), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_out_buffers_receive_the_results(dtype):
    # The backend's kernel-backed functions write into a caller's buffer (a later plan reuses memory); the NumPy
    # fallback (float16 here) honours out= the same way.
    rng = np.random.default_rng(3)
    g = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.standard_normal((6, 5)).astype(dtype)
    keep = rng.random((6, 5)) > 0.4
    cases = [
        (lambda out: B.relu_mask_multiply(g, y, out=out), g * (y > 0)),
        (lambda out: B.dropout_mask_multiply(g, keep, 2.0, out=out), g * keep * np.asarray(2.0, dtype)),
        (lambda out: B.where(y > 0, g, y, out=out), np.where(y > 0, g, y)),
        (lambda out: B.clip(g, -0.5, 0.5, out=out), np.clip(g, -0.5, 0.5)),
    ]
    for fn, expected in cases:
        out = np.full(g.shape, 7.0, dtype)
        result = fn(out)
        np.testing.assert_array_equal(out, expected.astype(dtype))
        assert result is out or np.shares_memory(result, out)
