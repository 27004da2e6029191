"""Regression tests for the bugs the hardening work (sanitizers, fuzzing) found in the binding layer."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops


def _misaligned(shape, dtype=np.float32):
    """A C-contiguous view whose data pointer is one byte off its item alignment."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n + 16, np.uint8)
    view = raw[1:1 + n].view(dtype).reshape(shape)
    assert not view.flags.aligned
    view[...] = np.arange(view.size, dtype=dtype).reshape(shape) - 2
    return view


class TestByteSwappedFloats:
    """'>f4' has kind 'f' and item size 4; the bindings used to read its bytes as native floats (wrong answers)."""

    x = (np.arange(6).reshape(2, 3) - 2).astype(">f4")

    @pytest.mark.parametrize("call", [
        lambda x: _C.gemm(x, np.ones((3, 2), np.float32)),
        lambda x: _C.gemm(np.ones((3, 2), np.float32).T.copy(), x.T.copy()),
        lambda x: _C.activation_forward(x, "relu"),
        lambda x: _C.softmax_forward(x),
        lambda x: _C.batched_matmul(x[None], np.ones((1, 3, 2), np.float32)),
    ])
    def test_bindings_reject_them(self, call):
        with pytest.raises(TypeError, match="native byte order"):
            call(self.x)

    def test_labels_must_be_native_int64(self):
        with pytest.raises(TypeError, match="labels must be int64"):
            _C.sparse_xent_forward(np.ones((2, 3), np.float32), np.array([0, 1], ">i8"))

    @pytest.mark.parametrize("op,ref", [
        (ops.relu, lambda x: np.maximum(x, 0)),
        (ops.softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
        (lambda x: ops.matmul(x, x.T), lambda x: x @ x.T),
        (lambda x: ops.bias_add(x, np.ones(3, ">f4")), lambda x: x + 1),
    ])
    def test_ops_convert_them(self, op, ref):
        out = op(self.x)
        np.testing.assert_allclose(np.asarray(out), ref(self.x.astype(np.float64)), rtol=1e-6, atol=1e-6)
        assert out.dtype.isnative


class TestMisalignedViews:
    """Scalar loads through a misaligned float* are undefined behaviour (UBSan's alignment check)."""

    @pytest.mark.parametrize("call", [
        lambda x: _C.gemm(x, np.ones((3, 2), np.float32)),
        lambda x: _C.activation_forward(x, "tanh"),
        lambda x: _C.log_softmax_forward(x),
        lambda x: _C.bias_add_forward(x, np.ones(3, np.float32)),
        lambda x: _C.bias_add_backward(x),
    ])
    def test_bindings_reject_them(self, call):
        with pytest.raises(ValueError, match="aligned"):
            call(_misaligned((2, 3)))

    def test_misaligned_labels(self):
        labels = _misaligned((2,), np.int64)
        labels[...] = 0
        with pytest.raises(ValueError, match="aligned"):
            _C.sparse_xent_forward(np.ones((2, 3), np.float32), labels)

    @pytest.mark.parametrize("op,ref", [
        (ops.relu, lambda x: np.maximum(x, 0)),
        (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
        (lambda x: ops.matmul(x, x.T), lambda x: x @ x.T),
        (ops.log_softmax, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    ])
    def test_ops_copy_them(self, op, ref):
        x = _misaligned((2, 3))
        np.testing.assert_allclose(np.asarray(op(x)), ref(x.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_gemm_bias_inside_c_is_rejected():
    # The epilogue used to read the bias after the tile it lives in had been overwritten: wrong answers.
    c = np.ones((2, 2))
    with pytest.raises(ValueError, match="bias must not share memory with c"):
        _C.gemm(np.ones((2, 2)), np.ones((2, 2)), c, bias=c[0])


@pytest.mark.parametrize("n", [0, -1, 1025, 10**6, 2**31])
def test_thread_count_is_bounded(n, restore_threads):
    # set_num_threads(10**6) used to be accepted: the next large kernel would try to start a million threads.
    with pytest.raises(ValueError, match="set_num_threads"):
        fastnn.set_num_threads(n)
    if n < 2**31:
        with pytest.raises(ValueError, match="set_num_threads"):
            _C.set_num_threads(n)


def test_moveaxis_moves_the_axis():
    # ops.moveaxis used to return its input unchanged (it permuted a 1-D index array instead of the axes).
    x = np.arange(24.0).reshape(2, 3, 4)
    assert ops.moveaxis(x, 0, -1).shape == (3, 4, 2)
    np.testing.assert_array_equal(ops.moveaxis(x, 0, -1).numpy(), np.moveaxis(x, 0, -1))
    np.testing.assert_array_equal(ops.moveaxis(x, (0, 2), (2, 0)).numpy(), np.moveaxis(x, (0, 2), (2, 0)))
    with pytest.raises(ValueError, match="moveaxis"):
        ops.moveaxis(x, 3, 0)
    with pytest.raises(ValueError, match="moveaxis"):
        ops.moveaxis(x, (0, 1), 0)


@pytest.mark.parametrize("shape", [(2.5,), (2, 1.0), (True, 2), "ab"])
def test_creation_shapes_must_be_integers(shape):
    # ops.zeros((2.5,)) used to truncate the float to a shape of (2,).
    with pytest.raises(TypeError, match="shape must be"):
        ops.zeros(shape)


@pytest.mark.parametrize("n", [3, 400, 5000])
def test_gemm_bias_given_as_a_list(n):
    # The binding converted a list bias into a temporary array that was freed before the kernel read it (a heap
    # use-after-free that AddressSanitizer reported once the list was longer than NumPy's small-buffer cache).
    a, b = np.ones((4, 3)), np.ones((3, n))
    bias = list(np.arange(n, dtype=np.float64))
    np.testing.assert_array_equal(_C.gemm(a, b, bias=bias), 3.0 + np.arange(n)[None, :].repeat(4, 0))
    np.testing.assert_array_equal(_C.gemm_ref(a, b, bias=bias), 3.0 + np.arange(n)[None, :].repeat(4, 0))


@pytest.mark.parametrize("kwargs", [dict(params={"lr": "fast"}), dict(grad_scales=["x"]), dict(grad_scales=3)])
def test_optimizer_update_bad_numbers_are_type_errors(kwargs):
    # pybind11 turned these failed casts into RuntimeError; the contract for a wrong type is TypeError.
    v, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(TypeError, match="optimizer_update"):
        _C.optimizer_update("sgd", [v], [g], [], **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_with_zero_input_channels(dtype):
    # The thin-row forward's size rule divided by the channel count: an input with C = 0 (a valid, empty reduction)
    # raised SIGFPE and killed the process (found by tests/fuzz/test_fuzz_conv.py).
    x = np.zeros((2, 5, 6, 0), dtype)
    w = np.zeros((3, 3, 0, 4), dtype)
    bias = np.arange(4, dtype=dtype)
    for fn in (_C.conv2d_forward, _C.conv2d_forward_ref):
        y = fn(x, w, bias, padding="same")
        np.testing.assert_array_equal(y, np.broadcast_to(bias, (2, 5, 6, 4)))


@pytest.mark.parametrize("first_path", ["generic", "best"])
def test_every_kernel_family_runs_on_a_path_chosen_before_its_first_call(first_path):
    # Each family's dispatcher built its per-ISA kernel tables as function statics one after another, so the first
    # call on the generic path (a test fixture, FASTNN_SIMD=generic) also ran the AVX2 and AVX-512 files' table
    # constructors, compiled with those ISAs: on a Zen 3 (no AVX-512) that was SIGILL. Each table is now built only
    # when its path is active. A fresh process, since the tables are built once.
    import subprocess
    import sys

    script = f"""
import numpy as np
from fastnn import _C
if {first_path!r} == "generic":
    _C.set_simd_path("generic")
for dt in (np.float32, np.float64):
    x = np.linspace(-2, 2, 2 * 6 * 6 * 16).astype(dt).reshape(2, 6, 6, 16)
    _C.activation_forward(x, "relu")
    _C.gemm(x.reshape(72, 16), np.ones((16, 8), dt))
    _C.max_pool2d_forward(x, 2, 2)
    flat = x.reshape(72, 16)
    _C.batch_norm_train_forward(flat, np.ones(16, dt), np.zeros(16, dt), 1e-3, False)
    _C.conv2d_forward(x, np.ones((3, 3, 16, 16), dt), None, strides=1, padding="same")
    v, g = np.zeros(5, dt), np.ones(5, dt)
    _C.optimizer_update("sgd", [v], [g], [], params={{"lr": 0.1}})
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stdout, done.stderr[:3000])
