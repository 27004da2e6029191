"""The broadcasting elementwise and reduction C++ kernels (csrc/cpu/binary.cpp, reduce.cpp) against NumPy, bit for bit,
and against their reference twins: broadcasting patterns, sizes 0 / 1 / around the vector and pairwise block edges /
large, float32 and float64, NaN / inf / signed zeros, 1 and 2 threads, out= buffers, and the bindings' argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import backend
from fastnn.testing.threads import count_parallel_regions

_C = backend._C
DTYPES = [np.float32, np.float64]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]
COMPARE = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
# (a shape, b shape): same shape, row vector (bias), column vector, scalar either side, middle axes, empty, inner runs
# around the kernels' 16 Ki-element chunks.
PAIRS = [((0,), (0,)), ((1,), (1,)), ((), ()), ((5,), ()), ((), (5,)), ((32, 64), (32, 64)), ((32, 64), (64,)),
         ((32, 64), (32, 1)), ((32, 1), (32, 1)), ((1, 64), (32, 1)), ((3, 1, 5), (1, 4, 1)), ((2, 3, 4, 5), (3, 1, 5)),
         ((1,), (7,)), ((33, 17), (1, 17)), ((5, 0), (1,)), ((300, 300), (300, 1)), ((16385,), (16385,)),
         ((3, 16387), (16387,)), ((70001,), (1,))]


def _values(rng, shape, dtype, special=0.1):
    """Normal values with a fraction replaced by NaN, +-inf, +-0 and repeated values (ties for maximum / minimum)."""
    x = rng.standard_normal(shape)
    if x.size:
        mask = rng.random(shape) < special
        x[mask] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], int(mask.sum()))
    return np.asarray(x.astype(dtype))


def _same_bits(actual, expected):
    """Equal values, NaN in the same places, the same signs of zero, the same shape and dtype (a NaN's sign and
    payload are not compared: which NaN an operation on two NaNs returns is the CPU's choice)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.shape, expected.shape,
                                                                               actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)
    if actual.dtype.kind == "f":
        numbers = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", PAIRS)
def test_binary_ops_are_numpy_bit_for_bit(dtype, sa, sb):
    rng = np.random.default_rng(1)
    a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
    with np.errstate(all="ignore"):
        for op in BINARY:
            ref = getattr(np, op)(a, b)
            _same_bits(_C.binary(a, b, op), ref)
            _same_bits(_C.binary(a, b, op, reference=True), ref)
        for op in COMPARE:
            ref = getattr(np, op)(a, b)
            _same_bits(_C.compare(a, b, op), ref)
            _same_bits(_C.compare(a, b, op, reference=True), ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_minimum_ties_and_nan_follow_numpy(dtype):
    a = np.array([0.0, -0.0, 1.0, np.nan, 2.0, np.nan, -np.inf], dtype)
    b = np.array([-0.0, 0.0, 1.0, 3.0, np.nan, np.nan, -np.inf], dtype)
    for op in ("maximum", "minimum"):
        _same_bits(_C.binary(a, b, op), getattr(np, op)(a, b))
        _same_bits(_C.binary(b, a, op), getattr(np, op)(b, a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sc,sa,sb", [((32, 64), (32, 64), (32, 64)), ((32, 64), (32, 64), ()), ((32, 64), (), (32, 64)),
                                      ((64,), (32, 64), (32, 1)), ((32, 1), (1, 64), ()), ((0, 3), (3,), ()),
                                      ((), (), ()), ((20000,), (20000,), (1,))])
def test_where_is_numpy_bit_for_bit(dtype, sc, sa, sb):
    rng = np.random.default_rng(2)
    cond = np.asarray(rng.random(sc) < 0.5)
    a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
    ref = np.where(cond, a, b)
    _same_bits(_C.where(cond, a, b), ref)
    _same_bits(_C.where(cond, a, b, reference=True), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (32, 64), (20001,)])
def test_clip_is_numpy_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(3)
    x = _values(rng, shape, dtype, special=0.3)
    bounds = [(-0.5, 0.5), (None, 0.3), (0.0, None), (1.0, -1.0), (np.nan, 1.0), (0.0, np.nan), (0.0, 0.0),
              (-0.0, 0.0), (0.0, -0.0), (-0.0, None), (None, -0.0), (None, None), (-1, 2), (1e-8, 1 - 1e-8)]
    for lo, hi in bounds:
        ref = np.clip(x, lo, hi) if (lo, hi) != (None, None) else x
        _same_bits(_C.clip(x, lo, hi), ref)
        _same_bits(_C.clip(x, lo, hi, reference=True), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (1,), (32, 1), (32, 64), (5, 7, 3), (20001,)])
def test_relu_mask_multiply_is_g_times_y_gt_0(dtype, shape):
    rng = np.random.default_rng(4)
    g, y = _values(rng, shape, dtype, 0.2), _values(rng, shape, dtype, 0.2)
    with np.errstate(invalid="ignore"):
        ref = g * (y > 0)  # -0 for negative g, NaN for inf / NaN g where the mask is 0: NumPy's product
    _same_bits(_C.relu_mask_multiply(g, y), ref)
    _same_bits(_C.relu_mask_multiply(g, y, reference=True), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sx,sm", [((0,), (0,)), ((1,), (1,)), ((32, 64), (32, 64)), ((32, 64), (1, 64)),
                                   ((32, 64), (32, 1)), ((4, 5, 6), (4, 1, 6)), ((20001,), (20001,))])
def test_dropout_mask_multiply_is_x_times_mask_times_scale(dtype, sx, sm):
    rng = np.random.default_rng(5)
    x = _values(rng, sx, dtype, 0.1)
    mask = np.asarray(rng.random(sm) >= 0.3)
    scale = 1.0 / (1.0 - 0.3)  # a Python float: rounded to x's dtype, as NumPy does
    with np.errstate(invalid="ignore"):
        ref = x * mask * scale
    _same_bits(_C.dropout_mask_multiply(x, mask, scale), ref)
    _same_bits(_C.dropout_mask_multiply(x, mask, scale, reference=True), ref)


class TestOut:
    def test_out_receives_the_result(self):
        a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.float32([1, 2, 3])
        out = np.empty((2, 3), np.float32)
        assert _C.binary(a, b, "add", out=out) is out
        np.testing.assert_array_equal(out, a + b)
        cond = np.array([True, False, True])
        assert _C.where(cond, a, b, out=out) is out
        np.testing.assert_array_equal(out, np.where(cond, a, b))
        assert _C.clip(a, 1.0, 4.0, out=out) is out
        np.testing.assert_array_equal(out, np.clip(a, 1.0, 4.0))
        flags = np.empty((2, 3), bool)
        assert _C.compare(a, b, "greater", out=flags) is flags
        np.testing.assert_array_equal(flags, a > b)

    def test_in_place_on_an_unbroadcast_input(self):
        a = np.arange(6, dtype=np.float64).reshape(2, 3)
        b = np.float64([1, 2, 3])
        expected = a * b
        assert _C.binary(a, b, "multiply", out=a) is a
        np.testing.assert_array_equal(a, expected)
        g = np.float32([1, -2, 3])
        _C.relu_mask_multiply(g, np.float32([1, 1, -1]), out=g)
        _same_bits(g, np.float32([1, -2, 0]))

    def test_bad_out_raises(self):
        a, b = np.ones((2, 3), np.float32), np.ones(3, np.float32)
        with pytest.raises(ValueError, match=r"out must have shape \(2, 3\), but received shape \(3,\)"):
            _C.binary(a, b, "add", out=np.empty(3, np.float32))
        with pytest.raises(TypeError, match="out must have dtype float32"):
            _C.binary(a, b, "add", out=np.empty((2, 3), np.float64))
        ro = np.empty((2, 3), np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="out is read-only"):
            _C.binary(a, b, "add", out=ro)
        with pytest.raises(ValueError, match="C-contiguous"):
            _C.binary(a, b, "add", out=np.empty((3, 2), np.float32).T)
        big = np.ones((3, 3), np.float32)
        with pytest.raises(ValueError, match="out overlaps an input"):
            _C.binary(big[1:], big[0], "add", out=big[:2])  # the broadcast row is rewritten while it is read
        buf = np.ones(7, np.float32)
        with pytest.raises(ValueError, match="out overlaps an input"):
            _C.binary(buf[:6].reshape(2, 3), b, "add", out=buf[1:].reshape(2, 3))  # shifted by one element
        with pytest.raises(TypeError, match="out must be a NumPy array or None"):
            _C.binary(a, b, "add", out=[0.0] * 6)


class TestArgumentChecks:
    def test_dtypes(self):
        with pytest.raises(TypeError, match="add: a must be float32 or float64, but received dtype int64"):
            _C.binary(np.ones(3, np.int64), np.ones(3, np.int64), "add")
        with pytest.raises(TypeError, match=r"add: b must have the dtype of a \(float32\), but received float64"):
            _C.binary(np.ones(3, np.float32), np.ones(3), "add")
        with pytest.raises(TypeError, match="where: cond must be a bool array"):
            _C.where(np.ones(3), np.ones(3), np.ones(3))
        with pytest.raises(TypeError, match="mask must be a bool array"):
            _C.dropout_mask_multiply(np.ones(3), np.ones(3), 2.0)
        with pytest.raises(TypeError, match="byte-swapped"):
            _C.reduce_sum(np.ones(3, ">f4"))
        with pytest.raises(TypeError, match="lo must be a float, an int or None"):
            _C.clip(np.ones(3), "0", 1.0)
        with pytest.raises(TypeError, match="lo must be a float, an int or None"):
            _C.clip(np.ones(3), True, 1.0)
        # finite numbers that round to infinity in float32 (NumPy warns "overflow encountered in cast")
        with pytest.raises(ValueError, match="overflows float32"):
            _C.clip(np.ones(3, np.float32), 0.0, 1e40)
        with pytest.raises(ValueError, match="overflows float32"):
            _C.dropout_mask_multiply(np.ones(3, np.float32), np.ones(3, bool), 1e300)
        np.testing.assert_array_equal(_C.clip(np.ones(3, np.float32), 0.0, 3.4028235e38), np.ones(3, np.float32))
        np.testing.assert_array_equal(_C.clip(np.ones(3), 0.0, 1e40), np.ones(3))

    def test_shapes_layouts_and_names(self):
        with pytest.raises(ValueError, match=r"operands could not be broadcast together with shapes \(2, 3\) \(2,\)"):
            _C.binary(np.ones((2, 3)), np.ones(2), "add")
        with pytest.raises(ValueError, match="a must be C-contiguous"):
            _C.binary(np.ones((3, 2)).T, np.ones(2), "add")
        with pytest.raises(ValueError, match="unknown op 'pow'"):
            _C.binary(np.ones(2), np.ones(2), "pow")
        with pytest.raises(ValueError, match="unknown op 'gt'"):
            _C.compare(np.ones(2), np.ones(2), "gt")
        with pytest.raises(ValueError, match=r"y must have the shape of g \(2,\)"):
            _C.relu_mask_multiply(np.ones(2), np.ones(3))
        with pytest.raises(ValueError, match="must broadcast to x's shape"):
            _C.dropout_mask_multiply(np.ones(2), np.ones((3, 2), bool), 2.0)

    def test_reduction_axes(self):
        x = np.ones((2, 3, 4), np.float32)
        with pytest.raises(ValueError, match="axis 3 is out of bounds for an array of dimension 3"):
            _C.reduce_sum(x, 3)
        with pytest.raises(ValueError, match="duplicate value in axis"):
            _C.reduce_sum(x, (1, -2))
        with pytest.raises(ValueError, match="the reduced axes must be adjacent"):
            _C.reduce_sum(x, (0, 2))
        with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
            _C.reduce_sum(x, 1.0)
        with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
            _C.reduce_sum(x, [0, 1])  # as NumPy: a list is no axis
        with pytest.raises(ValueError, match="zero-size reduction"):
            _C.reduce_max(np.ones((0, 3)), 0)
        with pytest.raises(ValueError, match="zero-size reduction"):
            _C.reduce_mean(np.ones((0,)))
        # size-1 axes between the reduced ones are no gap
        np.testing.assert_array_equal(_C.reduce_sum(np.ones((2, 1, 4)), (0, 2)), np.full((1,), 8.0))

    def test_unbroadcast_shapes(self):
        with pytest.raises(ValueError, match=r"does not broadcast to g's shape \(2, 3\)"):
            _C.unbroadcast(np.ones((2, 3)), (2,))
        with pytest.raises(ValueError, match="more dimensions than g's shape"):
            _C.unbroadcast(np.ones(3), (1, 3))


# -- reductions ---------------------------------------------------------------------------------------------------

# Shapes with every adjacent-axes reduction of them: runs below 8, at the 8-accumulator and 128-element pairwise
# block edges, long runs split across threads along the pairwise tree (2^16 and more), columns around the block
# widths.
RED_SHAPES = [(0,), (1,), (5,), (7,), (8,), (9,), (127,), (128,), (129,), (1000,), (4099,), (65536,), (131075,),
              (32, 1), (32, 64), (32, 100), (1, 32), (3, 5, 7), (2, 1, 9), (0, 4), (4, 0), (300, 2049), (3, 70001),
              (2, 3, 4, 5)]


def _axes(ndim):
    yield None
    for i in range(ndim):
        yield i
        yield i - ndim
    for i in range(ndim):
        for j in range(i + 2, ndim + 1):
            yield tuple(range(i, j))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", RED_SHAPES)
def test_sum_mean_max_are_numpy_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(6)
    x = np.asarray((rng.standard_normal(shape) * 10).astype(dtype))
    for axis in _axes(x.ndim):
        for keepdims in (False, True):
            _same_bits(_C.reduce_sum(x, axis, keepdims), np.asarray(np.sum(x, axis=axis, keepdims=keepdims)))
            reduced = x.shape if axis is None else [x.shape[a] for a in np.atleast_1d(axis)]
            if 0 in reduced:
                continue
            _same_bits(_C.reduce_mean(x, axis, keepdims), np.asarray(np.mean(x, axis=axis, keepdims=keepdims)))
            _same_bits(_C.reduce_max(x, axis, keepdims), np.asarray(np.max(x, axis=axis, keepdims=keepdims)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((1000,), None), ((40, 50), 1), ((40, 50), 0), ((3, 70001), 1)])
def test_reductions_propagate_nan_and_inf(dtype, shape, axis):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 3, replace=False)] = np.nan
    flat[rng.choice(flat.size, 3, replace=False)] = np.inf
    flat[rng.choice(flat.size, 3, replace=False)] = -np.inf
    with np.errstate(invalid="ignore"):
        for kernel, ref in ((_C.reduce_sum, np.sum), (_C.reduce_mean, np.mean), (_C.reduce_max, np.max)):
            _same_bits(kernel(x, axis), np.asarray(ref(x, axis=axis)))
            np.testing.assert_allclose(kernel(x, axis, reference=True), np.asarray(ref(x, axis=axis)),
                                       rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((100003,), None), ((64, 1000), 1), ((1000, 64), 0), ((32, 64), 0)])
def test_reductions_match_their_reference_twins(dtype, shape, axis):
    """The twins sum in double: the fast float32 sums stay within the pairwise error bound of them."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(_C.reduce_max(x, axis), _C.reduce_max(x, axis, reference=True))
    r = x.size if axis is None else x.shape[axis]
    eps = np.finfo(dtype).eps
    magnitude = np.sum(np.abs(x.astype(np.float64)), axis=axis)
    err = np.abs(_C.reduce_sum(x, axis).astype(np.float64) - _C.reduce_sum(x, axis, reference=True))
    # contiguous runs (axis None / last): pairwise, error <= (log2(r / 128) + 128) eps sum|x| at worst; an outer axis
    # adds sequentially: r eps sum|x|
    bound = (r if axis == 0 and len(shape) == 2 else np.log2(max(r, 2)) + 128) * eps * magnitude + 1e-300
    assert np.all(err <= bound)
    mean_err = np.abs(_C.reduce_mean(x, axis).astype(np.float64) - _C.reduce_mean(x, axis, reference=True))
    assert np.all(mean_err <= bound / r + eps * np.abs(_C.reduce_mean(x, axis, reference=True)))


def test_float32_sum_precision_is_pairwise():
    """The precision the float32 sums give (documented in reduce.h): for 2^20 values in [0, 1) the pairwise sum is
    within a few units of 1e-7 relative, where a sequential float32 sum drifts by 1e-4 or more."""
    rng = np.random.default_rng(9)
    x = rng.random(1 << 20).astype(np.float32)
    exact = np.sum(x.astype(np.float64))
    rel = abs(float(_C.reduce_sum(x)) - exact) / exact
    sequential = np.cumsum(x)[-1]  # NumPy's cumsum adds in order, one float32 rounding per element
    assert rel < 1e-6
    assert abs(float(sequential) - exact) / exact > 10 * rel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gshape,shape", [((32, 64), (64,)), ((32, 64), (1, 64)), ((32, 64), (32, 1)), ((32, 1), (1,)),
                                          ((32, 1), ()), ((4, 5, 6), (6,)), ((4, 5, 6), (5, 6)), ((4, 5, 6), (4, 1, 1)),
                                          ((4, 5, 6), (4, 5, 6)), ((0, 3), (3,)), ((3, 0), (1, 0)), ((3, 4), (1, 1)),
                                          ((2, 1, 3), (1, 3)), ((300, 2049), (2049,))])
def test_unbroadcast_is_one_numpy_sum(dtype, gshape, shape):
    rng = np.random.default_rng(10)
    g = rng.standard_normal(gshape).astype(dtype)
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    expected = np.sum(g, axis=axes).reshape(shape) if axes else g
    _same_bits(_C.unbroadcast(g, shape), expected)
    np.testing.assert_allclose(_C.unbroadcast(g, shape, reference=True), expected,
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_results_do_not_depend_on_thread_count(restore_threads):
    """Every kernel's numbers are the same on 1 and 2 threads, and on 2 threads each really ran in parallel."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((300, 1031)).astype(np.float32)
    y = rng.standard_normal((300, 1031)).astype(np.float32)
    row = rng.standard_normal(1031).astype(np.float32)
    mask = x > 0
    long = rng.standard_normal(1 << 18).astype(np.float32)
    x3 = rng.standard_normal((4, 300, 1031)).astype(np.float32)  # outer-axis reductions split over outer = 4
    outs, counts = [], []
    for threads in (1, 2):
        backend.set_num_threads(threads)
        with count_parallel_regions() as seen:
            outs.append([
                _C.binary(x, row, "add"), _C.compare(x, y, "less"), _C.where(mask, x, y), _C.clip(x, -0.5, 0.5),
                _C.relu_mask_multiply(x, y), _C.dropout_mask_multiply(x, mask, 2.0), _C.reduce_sum(x3, 1),
                _C.reduce_sum(x, 1), _C.reduce_sum(long), _C.reduce_mean(x3, 1), _C.reduce_max(x, 1),
                _C.reduce_max(x3, 1), _C.unbroadcast(x3, (4, 1, 1031)),
            ])
        counts.append(seen.count)
    assert counts[0] == 0
    if backend.build_info()["openmp"]:
        assert counts[1] >= 13, f"each of the 13 kernels should have split its work over 2 threads: {counts[1]} did"
    for a, b in zip(*outs):
        _same_bits(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_denormals_count_as_zero(dtype):
    """As every fastnn kernel (tests/hardening/test_denormals.py): a denormal input counts as zero."""
    tiny = np.finfo(dtype).smallest_subnormal
    a = np.array([tiny, -tiny, 1.0], dtype)
    _same_bits(_C.binary(a, np.zeros(3, dtype), "add"), np.array([0.0, 0.0, 1.0], dtype))  # +-0 + 0 = +0
    np.testing.assert_array_equal(_C.reduce_sum(np.full(1000, tiny, dtype)), np.zeros((), dtype))


# -- add_relu: a residual Add and its ReLU in one pass (for the compiled step's tracer) ------------------------------
def _np_add_relu(a, b):
    s = np.add(a, b)
    return np.where(s < 0, np.zeros_like(s), s)  # fastnn's ReLU: NaN and -0 pass


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", PAIRS)
def test_add_relu_is_numpy_add_then_the_relu_kernel_bit_for_bit(dtype, sa, sb):
    rng = np.random.default_rng(2)
    a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
    with np.errstate(all="ignore"):
        ref = _np_add_relu(a, b)
        s = np.add(a, b)
        if s.ndim and s.size:  # the unfused pair fastnn runs: np.add, then the ReLU kernel
            _same_bits(backend.activation_forward(np.ascontiguousarray(s), "relu"), ref)
    _same_bits(_C.binary(a, b, "add_relu"), ref)
    _same_bits(_C.binary(a, b, "add_relu", reference=True), ref)
    _same_bits(backend.add_relu(a, b), ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_relu_is_bit_identical_on_one_and_two_threads(restore_threads, dtype):
    import fastnn
    rng = np.random.default_rng(4)
    a, b = _values(rng, (32, 32, 32, 64), dtype), _values(rng, (32, 32, 32, 64), dtype)
    results = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        results.append(_C.binary(a, b, "add_relu"))
    _same_bits(results[0], results[1])
    out = np.empty_like(a)
    assert _C.binary(a, b, "add_relu", out=out) is out
    _same_bits(out, results[0])


def test_add_relu_unknown_op_message_lists_it():
    with pytest.raises(ValueError, match=r"expected one of add, subtract, multiply, divide, maximum, minimum, add_relu"):
        _C.binary(np.ones(2, np.float32), np.ones(2, np.float32), "add_relu6")
