"""Property-based fuzzing of ``_C.adam_rows_update`` (csrc/python/bind_optimizer.cpp): Adam's step for an embedding
table with Keras's per-lookup second moment, in place. Random shapes (empty included), dtypes (float32 / float64 and
refused ones), memory layouts, special values (NaN, inf, signed zeros, denormals), amsgrad on / off, mismatched
shapes and dtypes, read-only and aliased arguments. A valid call must equal the NumPy formula of Adam._update_rows
bit for bit (denormals flushed as the kernels do: compared on inputs without them); an invalid one must raise
TypeError or ValueError and leave nothing half-written that matters (it validates before writing).
test_fuzz_bindings.py's FUZZ_TARGETS names this target."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)


def numpy_rows_update(var, m, v, vhat, g, sq, b1c, b2c, alpha, eps):
    """Adam._update_rows's NumPy formula (the kernel's specification), on copies."""
    T = var.dtype.type
    var, m, v, vhat = var.copy(), m.copy(), v.copy(), None if vhat is None else vhat.copy()
    with np.errstate(all="ignore"):
        m = m + (g - m) * T(b1c)
        v = v + (sq - v) * T(b2c)
        use = v
        if vhat is not None:
            vhat = np.maximum(vhat, v)
            use = vhat
        var = var - (m * T(alpha)) / (np.sqrt(use) + T(eps))
    return var, m, v, vhat


def _no_denormals(*arrays):
    return all(not np.any((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)) for a in arrays if a.dtype.kind == "f")


@given(st.data())
def test_adam_rows_update(data):
    rng = fz.draw_rng(data)
    fz.case("adam_rows_update")
    shape = data.draw(st.sampled_from([(0,), (1,), (7,), (3, 5), (64, 33), (2, 3, 4)]), label="shape")
    dtype = fz.draw_dtype(data)
    amsgrad = data.draw(st.booleans(), label="amsgrad")
    names = ["var", "m", "v", "g", "squares"] + (["vhat"] if amsgrad else [])
    arrays = {}
    for name in names:
        odd = data.draw(st.integers(0, 30), label=f"{name}_odd")
        s = shape if odd else data.draw(st.sampled_from([shape + (1,), (5, 2), ()]), label=f"{name}_shape")
        d = dtype if odd != 1 else data.draw(st.sampled_from([np.float32, np.float64]), label=f"{name}_dtype")
        arrays[name] = fz.draw_array(data, rng, s, np.dtype(d), name)
    for name in ("v", "squares", "vhat"):  # second moments are non-negative in use; the kernel does not rely on it
        if name in arrays and arrays[name].dtype.kind == "f" and data.draw(st.booleans(), label=f"{name}_abs"):
            arrays[name] = np.abs(arrays[name])
    if data.draw(st.integers(0, 15), label="alias") == 0:
        arrays["g"] = arrays["m"]
    if data.draw(st.integers(0, 15), label="readonly") == 0:
        arrays["var"].flags.writeable = False
    consts = dict(b1c=0.1, b2c=0.001, alpha=data.draw(st.sampled_from([1e-3, 0.5, 0.0]), label="alpha"),
                  epsilon=1e-7)
    a = arrays
    vhat = a.get("vhat")
    ok = (dtype in (np.dtype(np.float32), np.dtype(np.float64))
          and all(fz.c_ready(x) and x.shape == a["var"].shape and x.dtype == a["var"].dtype for x in a.values())
          and a["g"] is not a["m"] and a["var"].flags.writeable)
    call = lambda: _C.adam_rows_update(a["var"], a["m"], a["v"], vhat, a["g"], a["squares"], **consts)  # noqa: E731
    if not ok:
        fz.expect(call, None, None, must_raise=ERR)
        return
    expected = numpy_rows_update(a["var"], a["m"], a["v"], vhat, a["g"], a["squares"], consts["b1c"],
                                 consts["b2c"], consts["alpha"], consts["epsilon"])
    call()
    if _no_denormals(*a.values(), *[e for e in expected if e is not None]):
        for got, want in zip((a["var"], a["m"], a["v"], vhat), expected):
            if want is not None:
                np.testing.assert_array_equal(got, want)
