"""fastnn.Tensor and fastnn.Variable: storage, NumPy interop, Keras dtype rules, operators, errors."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops


class TestStorageAndInterop:
    def test_numpy_arrays_are_wrapped_without_copy(self):
        a = np.arange(6.0).reshape(2, 3)
        t = fastnn.Tensor(a)
        assert np.shares_memory(np.asarray(t), a)
        assert t.numpy() is np.asarray(t)
        assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.dtype == np.float64 and t.dtype == "float64"
        assert np.asarray(t, dtype=np.float32).dtype == np.float32
        assert not np.shares_memory(np.array(t, copy=True), a)

    def test_buffer_lives_behind_one_indirection(self):
        t = fastnn.Tensor([1.0, 2.0])
        assert isinstance(t._data, np.ndarray) and fastnn.backend.to_numpy(t._data) is t.numpy()

    def test_python_values(self):
        t = fastnn.Tensor([[1.0, 2.0]])
        assert t.dtype == np.float32 and t.tolist() == [[1.0, 2.0]]
        assert fastnn.Tensor(3).dtype == np.int32 and int(fastnn.Tensor(3)) == 3
        assert fastnn.Tensor(True).dtype == np.bool_
        assert fastnn.Tensor([1, 2], dtype="float64").dtype == np.float64
        assert float(fastnn.Tensor(2.5)) == 2.5 and fastnn.Tensor(2.5).item() == 2.5
        assert len(fastnn.Tensor([1, 2, 3])) == 3 and [int(v) for v in fastnn.Tensor([1, 2])] == [1, 2]
        assert "shape=(1, 2)" in repr(t) and "float32" in repr(t)

    def test_rejects_non_numbers(self):
        with pytest.raises(TypeError, match="array of numbers"):
            fastnn.Tensor("abc")
        with pytest.raises(TypeError, match="array of numbers"):
            ops.add(object(), 1.0)

    def test_tensors_are_immutable(self):
        with pytest.raises(TypeError, match="item assignment"):
            fastnn.Tensor([1.0])[0] = 2.0

    def test_hashable_and_comparisons_are_elementwise(self):
        t = fastnn.Tensor([1.0, 2.0])
        assert {t: 1}[t] == 1
        np.testing.assert_array_equal((t == 2.0).numpy(), [False, True])
        np.testing.assert_array_equal((t >= 1.0).numpy(), [True, True])
        np.testing.assert_array_equal((t != 1.0).numpy(), [False, True])


class TestDtypeRules:
    @pytest.mark.parametrize("x1,x2,expected", [
        (np.ones(2, np.float32), 2.0, np.float32),
        (np.ones(2, np.float32), 2, np.float32),
        (np.ones(2, np.int32), 2, np.int32),
        (np.ones(2, np.int32), 2.0, np.float32),
        (np.ones(2, np.int64), np.ones(2, np.float32), np.float32),
        (np.ones(2, np.float32), np.ones(2, np.float64), np.float64),
        (np.ones(2, np.int32), np.ones(2, np.int64), np.int64),
        (np.ones(2, bool), 1, np.int32),
        ([1.0, 2.0], [1, 2], np.float32),
    ])
    def test_keras_promotion(self, x1, x2, expected):
        assert ops.add(x1, x2).dtype == expected
        assert ops.multiply(x2, x1).dtype == expected

    def test_float_ops_on_integers_give_float32(self):
        for f in (ops.exp, ops.sqrt, ops.relu, ops.sigmoid, ops.mean, ops.softmax):
            assert f(np.array([1, 2], np.int64)).dtype == np.float32
        assert ops.divide(np.array([1, 2]), np.array([2, 2])).dtype == np.float32
        assert ops.abs(np.array([-1], np.int32)).dtype == np.int32

    def test_scalar_operators_keep_tensor_dtype(self):
        x = fastnn.Tensor(np.ones(2, np.float32))
        for y in (x + 1, 1 + x, x * 2.0, 2.0 - x, x / 3, 3 / x, x**2, 2**x, -x, abs(x)):
            assert y.dtype == np.float32
        assert (np.float64(2.0) * x).dtype == np.float64  # NumPy scalars are not weak in Keras either
        assert isinstance(np.ones(2) * x, fastnn.Tensor)  # NumPy defers to Tensor's reflected operators

    def test_creation_ops(self):
        assert ops.zeros((2, 3)).dtype == np.float32 and ops.zeros((2, 3)).shape == (2, 3)
        assert ops.ones(4, dtype="int32").numpy().tolist() == [1, 1, 1, 1]
        assert ops.full((2,), 7).dtype == np.int32 and ops.full((2,), 7.0).dtype == np.float32
        assert ops.full((2,), 7.0, dtype="float64").numpy().tolist() == [7.0, 7.0]
        assert ops.zeros_like(np.ones((2, 2), np.float64)).dtype == np.float64
        assert ops.ones_like(np.ones(2), dtype="int32").dtype == np.int32
        assert ops.arange(5).dtype == np.int32 and ops.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
        assert ops.arange(0, 1, 0.25).dtype == np.float32
        np.testing.assert_array_equal(ops.arange(1, 7, 2).numpy(), [1, 3, 5])
        assert ops.convert_to_tensor([1.0, 2.0]).dtype == np.float32
        assert ops.convert_to_tensor([1, 2]).dtype == np.int32
        assert ops.convert_to_tensor(np.ones(2, np.float64)).dtype == np.float64
        t = fastnn.Tensor([1.0])
        assert ops.convert_to_tensor(t) is t
        assert ops.cast(np.array([1.7, -1.2]), "int32").numpy().tolist() == [1, -1]
        assert ops.zeros((0, 3)).shape == (0, 3)

    def test_one_hot_out_of_range_gives_zeros(self):
        np.testing.assert_array_equal(ops.one_hot(np.array([0, 3, -1]), 3).numpy(),
                                      [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
        assert ops.one_hot(np.array([1]), 3, axis=0).shape == (3, 1)


class TestVariable:
    def test_assign_family(self):
        v = fastnn.Variable(np.zeros(3), name="bias")
        assert v.name == "bias" and v.path == "bias" and v.trainable and v.requires_grad
        buffer_id = id(v._data)
        assert v.assign([1.0, 2.0, 3.0]) is v
        v.assign_add(np.ones(3))
        v.assign_sub(fastnn.Tensor([0.5, 0.5, 0.5]))
        np.testing.assert_array_equal(v.numpy(), [1.5, 2.5, 3.5])
        assert id(v._data) == buffer_id  # updated in place: nothing else held the buffer
        held = v.numpy()
        v.assign_add(np.ones(3))
        np.testing.assert_array_equal(held, [1.5, 2.5, 3.5])  # an array taken earlier is a snapshot (copy-on-write)
        assert isinstance(v.value, fastnn.Tensor) and v.value.tolist() == [2.5, 3.5, 4.5]

    def test_defaults_and_initializers(self):
        assert fastnn.Variable(1.0).dtype == np.float32
        assert fastnn.Variable([1.0, 2.0]).dtype == np.float32
        assert fastnn.Variable(np.ones(2)).dtype == np.float64
        v = fastnn.Variable(lambda shape, dtype: np.full(shape, 0.5, dtype), shape=(2, 2), dtype="float32")
        assert v.shape == (2, 2) and v.dtype == np.float32 and float(v[0, 0]) == 0.5
        a = np.ones(2)
        assert not np.shares_memory(fastnn.Variable(a).numpy(), a)  # a Variable owns its storage

    def test_trainable_toggle(self):
        v = fastnn.Variable(1.0)
        v.trainable = False
        assert not v.requires_grad
        with fastnn.GradientTape() as tape:
            y = v * 2.0
        assert tape.gradient(y, v) is None

    def test_errors(self):
        v = fastnn.Variable(np.zeros(2), name="w")
        with pytest.raises(ValueError, match=r"variable 'w'.*variable.shape=\(2,\), received value.shape=\(3,\)"):
            v.assign(np.zeros(3))
        with pytest.raises(ValueError, match="needs a shape"):
            fastnn.Variable(lambda shape, dtype: np.zeros(shape))
        with pytest.raises(ValueError, match=r"shape=\(3,\)"):
            fastnn.Variable(np.zeros(2), shape=(3,))

    def test_value_is_differentiable(self):
        v = fastnn.Variable(3.0)
        with fastnn.GradientTape() as tape:
            y = v.value * v.value
        assert float(tape.gradient(y, v)) == 6.0


class TestBadInput:
    @pytest.mark.parametrize("op", [ops.add, ops.subtract, ops.multiply, ops.divide, ops.maximum, ops.power,
                                    ops.equal, ops.less])
    def test_broadcast_errors_name_op_and_shapes(self, op):
        name = op.__name__
        with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
            op(np.ones((2, 3), np.float32), np.ones(4, np.float32))

    def test_operator_broadcast_error(self):
        with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
            fastnn.Tensor(np.ones((2, 3))) + fastnn.Tensor(np.ones(2))

    def test_shape_errors(self):
        x = np.ones((2, 3), np.float32)
        with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
            ops.reshape(x, (4, 2))
        with pytest.raises(ValueError, match="sum: axis 2 is out of bounds"):
            ops.sum(x, axis=2)
        with pytest.raises(ValueError, match="squeeze: cannot squeeze axis 1"):
            ops.squeeze(x, axis=1)
        with pytest.raises(ValueError, match="concatenate"):
            ops.concatenate([x, np.ones((3, 3))], axis=1)
        with pytest.raises(ValueError, match="stack: all inputs must have the same shape"):
            ops.stack([x, x.T])
        with pytest.raises(ValueError, match="split: axis 1 of length 3"):
            ops.split(x, 2, axis=1)
        with pytest.raises(ValueError, match="transpose"):
            ops.transpose(x, (0, 0))
        with pytest.raises(IndexError, match="take"):
            ops.take(x, [5], axis=0)
        with pytest.raises(IndexError, match="getitem"):
            fastnn.Tensor(x)[5]
        with pytest.raises(ValueError, match="where"):
            ops.where(np.ones(4, bool), x, x)
        with pytest.raises(ValueError, match="matmul: inner dimensions differ"):
            fastnn.Tensor(x) @ fastnn.Tensor(x)

    def test_crossentropy_errors(self):
        with pytest.raises(ValueError, match=r"categorical_crossentropy: target and output must have the same shape.*"
                                             r"\(2, 3\).*\(2, 4\)"):
            ops.categorical_crossentropy(np.ones((2, 3)), np.ones((2, 4)))
        with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: target must have shape"):
            ops.sparse_categorical_crossentropy(np.array([0, 1, 2]), np.ones((2, 4)))
        with pytest.raises(ValueError, match="label 4 at position 1 is outside the valid range"):
            ops.sparse_categorical_crossentropy(np.array([0, 4]), np.ones((2, 4)), from_logits=True)
        with pytest.raises(ValueError, match="label -1"):
            ops.sparse_categorical_crossentropy(np.array([-1, 0]), np.ones((2, 4)))

    def test_nan_inputs_do_not_crash(self):
        x = np.full((3, 4), np.nan)
        for f in (ops.softmax, ops.log_softmax, ops.logsumexp, ops.gelu, ops.sum, ops.argmax):
            f(x)
        out = ops.sparse_categorical_crossentropy(np.array([0, 1, 2]), x, from_logits=True)
        assert np.isnan(out.numpy()).all()
        out = ops.categorical_crossentropy(np.eye(4)[:3], np.full((3, 4), np.inf), from_logits=True)
        assert np.isnan(out.numpy()).all()
