"""Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot (a list of inputs -> one)."""
from __future__ import annotations

from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import matmul as _matmul
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import Layer, shape_str


def _mask_data(mask):
    """A mask (a bool Tensor, or host data) as a bool buffer."""
    return B.astype(mask._data, "bool", copy=False) if isinstance(mask, Tensor) else B.asarray(mask, dtype="bool")


def _check_masks(inputs, mask):
    if not isinstance(mask, (tuple, list)):
        raise ValueError(f"`mask` should be a list. Received: mask={mask}")
    if not isinstance(inputs, (tuple, list)):
        raise ValueError(f"`inputs` should be a list. Received: inputs={inputs}")
    if len(mask) != len(inputs):
        raise ValueError(f"The lists `inputs` and `mask` should have the same length. Received: inputs={inputs} of "
                         f"length {len(inputs)}, and mask={mask} of length {len(mask)}")


class _Merge(Layer):
    _min_inputs = 2

    def _check(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not shapes or not isinstance(shapes[0], (list, tuple)):
            raise ValueError(f'A merge layer should be called on a list of inputs. Received: input_shape='
                             f'{shapes} (layer "{self.name}")')
        if len(shapes) < self._min_inputs:
            raise ValueError(f'A merge layer should be called on a list of at least {self._min_inputs} inputs. '
                             f'Got {len(shapes)} inputs (layer "{self.name}")')

    def _merged_shape(self, shapes):
        out = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(out):
                raise ValueError(f'Layer "{self.name}": inputs have incompatible shapes. Received shapes '
                                 f"{' and '.join(shape_str(x) for x in shapes)}")
            for i, (a, b) in enumerate(zip(out, s)):
                if a is None or a == 1:
                    out[i] = b if a == 1 or b is not None else a
                elif b is not None and b != 1 and a != b:
                    raise ValueError(f'Layer "{self.name}": inputs have incompatible shapes. Received shapes '
                                     f"{' and '.join(shape_str(x) for x in shapes)}")
        return tuple(out)

    def build(self, input_shape):
        self._check(input_shape)
        self._merged_shape([tuple(s) for s in input_shape])
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return self._merged_shape([tuple(s) for s in input_shape])

    def call(self, inputs):
        shapes = [tuple(x.shape) for x in inputs]
        self._check(shapes)
        self._merged_shape(shapes)
        out = inputs[0]
        for x in inputs[1:]:
            out = self._op(out, x)
        return self._finish(out, len(inputs))

    def _finish(self, out, n):
        return out

    def compute_mask(self, inputs, mask=None):
        """Keras's merge mask: the elementwise OR of the inputs' masks; None when any input has none."""
        if mask is None:
            return None
        _check_masks(inputs, mask)
        if any(m is None for m in mask):
            return None
        output_mask = _mask_data(mask[0])
        for m in mask[1:]:
            output_mask = B.logical_or(output_mask, _mask_data(m))
        return Tensor._wrap(output_mask)


class Add(_Merge):
    """Elementwise sum of a list of inputs of one shape."""

    @staticmethod
    def _op(a, b):
        return _ew.add(a, b)


class Subtract(_Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""

    def _check(self, shapes):
        super()._check(shapes)
        if len(shapes) != 2:
            raise ValueError(f'A `Subtract` layer should be called on exactly 2 inputs. Received: {len(shapes)} '
                             f'inputs (layer "{self.name}")')

    @staticmethod
    def _op(a, b):
        return _ew.subtract(a, b)


class Multiply(_Merge):
    @staticmethod
    def _op(a, b):
        return _ew.multiply(a, b)


class Average(_Merge):
    @staticmethod
    def _op(a, b):
        return _ew.add(a, b)

    def _finish(self, out, n):
        return _ew.divide(out, float(n))


class Maximum(_Merge):
    @staticmethod
    def _op(a, b):
        return _ew.maximum(a, b)


class Minimum(_Merge):
    @staticmethod
    def _op(a, b):
        return _ew.minimum(a, b)


class Concatenate(_Merge):
    """Concatenates a list of inputs along ``axis`` (default -1); other axes must match."""

    _min_inputs = 1

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _merged_shape(self, shapes):
        rank = len(shapes[0])
        ax = self.axis % rank if -rank <= self.axis < rank else None
        if ax is None or any(len(s) != rank for s in shapes):
            raise ValueError(f'A `Concatenate` layer requires inputs with matching shapes except for the concatenation '
                             f"axis. Received: input_shape={[shape_str(s) for s in shapes]} (layer \"{self.name}\")")
        out = list(shapes[0])
        for s in shapes[1:]:
            for i in range(rank):
                if i == ax:
                    out[i] = None if out[i] is None or s[i] is None else out[i] + s[i]
                elif out[i] is not None and s[i] is not None and out[i] != s[i]:
                    raise ValueError(f'A `Concatenate` layer requires inputs with matching shapes except for the '
                                     f'concatenation axis. Received: input_shape={[shape_str(x) for x in shapes]} '
                                     f'(layer "{self.name}")')
                elif out[i] is None:
                    out[i] = s[i]
        return tuple(out)

    def call(self, inputs):
        shapes = [tuple(x.shape) for x in inputs]
        self._check(shapes)
        self._merged_shape(shapes)
        return _shape.concatenate(list(inputs), axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """Keras's Concatenate mask: each input's mask (all True for an input without one, broadcast over the
        input's last axis when it has one axis less) concatenated along ``axis``, then any over the last axis."""
        if mask is None:
            return None
        _check_masks(inputs, mask)
        if all(m is None for m in mask):
            return None
        masks = []
        for input_i, mask_i in zip(inputs, mask):
            if mask_i is None:
                masks.append(B.ones(tuple(input_i.shape), dtype="bool"))
            elif mask_i.ndim < input_i.ndim:
                masks.append(B.broadcast_to(B.expand_dims(_mask_data(mask_i), -1), tuple(input_i.shape)))
            else:
                masks.append(_mask_data(mask_i))
        return Tensor._wrap(B.any(B.concatenate(masks, axis=self.axis), axis=-1))

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def _dot_axes(axes, shape1, shape2):
    """Keras's Dot axes for inputs of these ranks: an int is both inputs' axis, negative ones count from the end."""
    if isinstance(axes, int):
        return [axes % len(shape1), axes % len(shape2)] if axes < 0 else [axes] * 2
    return [a % len(s) if a < 0 else a for a, s in zip(axes, (shape1, shape2))]


def _l2_normalize(x, axis):
    """keras.ops.normalize(x, axis, order=2): x * min(rsqrt(sum(x^2)), 1 / epsilon), epsilon 1e-7 (Keras's)."""
    square_sum = _reduce.sum(_ew.square(x), axis=axis, keepdims=True)
    with B.errstate(divide="ignore"):
        inv_norm = _ew.divide(1.0, _ew.sqrt(square_sum))
    return _ew.multiply(x, _ew.minimum(inv_norm, 1.0 / 1e-7))


def _batch_dot(x, y, axes):
    """Keras's batch_dot (keras/src/layers/merging/dot.py), step for step: the contracted axis of x moved last and
    of y moved to 1, both flattened to rank 3 around it, one batched matmul, the kept axes restored."""
    x_ndim, y_ndim = x.ndim, y.ndim
    a0, a1 = axes
    orig_x_ndim, orig_y_ndim = x_ndim, y_ndim
    if x_ndim == 2:
        x = _shape.expand_dims(x, 1)
        a0 += 1
        x_ndim += 1
    if y_ndim == 2:
        y = _shape.expand_dims(y, 2)
        y_ndim += 1
    if a0 != x_ndim - 1:
        pattern = list(range(x_ndim))
        for i in range(a0, x_ndim - 1):
            pattern[i] = pattern[i + 1]
        pattern[-1] = a0
        x = _shape.transpose(x, pattern)
    if a1 != 1:
        pattern = list(range(y_ndim))
        for i in range(a1, 1, -1):
            pattern[i] = pattern[i - 1]
        pattern[1] = a1
        y = _shape.transpose(y, pattern)
    x_mid = y_trail = None
    if x_ndim > 3:
        x_mid = tuple(x.shape[1:-1])
        x = _shape.reshape(x, (x.shape[0], -1, x.shape[-1]))
    if y_ndim > 3:
        y_trail = tuple(y.shape[2:])
        y = _shape.reshape(y, (y.shape[0], y.shape[1], -1))
    result = _matmul.matmul(x, y)
    out_shape = tuple(result.shape)
    if x_mid is not None or y_trail is not None:
        if x_mid is not None:
            out_shape = out_shape[:1] + x_mid + out_shape[-1:]
        if y_trail is not None:
            out_shape = out_shape[:-1] + y_trail
        result = _shape.reshape(result, out_shape)
    if orig_x_ndim == 2:
        result = _shape.squeeze(result, 1)
    elif orig_y_ndim == 2:
        result = _shape.squeeze(result, -1)
    return result


class Dot(_Merge):
    """Dot product of two samples' tensors along ``axes`` (``keras.layers.Dot``): an int (the same axis of both) or
    a pair; ``normalize=True`` L2-normalizes both along those axes first, giving the cosine similarity. (B, n) and
    (B, n) give (B, 1); (B, T, n) and (B, S, n) with axes=2 give the (B, T, S) score matrix. The batch axis cannot
    be contracted. Masks are dropped, as in Keras."""

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axes, int) or isinstance(axes, bool):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Invalid type for argument `axes`: it should be a list or an int. Received: "
                                f"axes={axes}")
            if len(axes) != 2:
                raise ValueError(f"Invalid format for argument `axes`: it should contain two elements. Received: "
                                 f"axes={axes}")
            if any(not isinstance(a, int) or isinstance(a, bool) for a in axes):
                raise ValueError(f"Invalid format for argument `axes`: list elements should be integers. Received: "
                                 f"axes={axes}")
        self.axes = axes
        self.normalize = bool(normalize)
        self.supports_masking = True

    def _pair(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"A `Dot` layer should be called on a list of 2 inputs. Received: "
                             f"input_shape={input_shape}")
        shape1, shape2 = tuple(input_shape[0]), tuple(input_shape[1])
        if len(shape1) < 2 or len(shape2) < 2:
            raise ValueError(f"Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes {shape1} "
                             f"and {shape2}.")
        axes = _dot_axes(self.axes, shape1, shape2)
        if not (0 <= axes[0] < len(shape1) and 0 <= axes[1] < len(shape2)):
            raise ValueError(f'Layer "{self.name}": axes={self.axes} are out of range for inputs of shapes {shape1} '
                             f"and {shape2}")
        if 0 in axes:
            raise ValueError("Cannot perform batch_dot over axis 0. If your inputs are not batched, add a dummy batch "
                             "dimension to your inputs using keras.ops.expand_dims(x, 0)")
        if shape1[axes[0]] is not None and shape2[axes[1]] is not None and shape1[axes[0]] != shape2[axes[1]]:
            raise ValueError(f"Incompatible input shapes: axis values {shape1[axes[0]]} (at axis {axes[0]}) != "
                             f"{shape2[axes[1]]} (at axis {axes[1]}). Full input shapes: {shape1}, {shape2}")
        if shape1[0] is not None and shape2[0] is not None and shape1[0] != shape2[0]:
            raise ValueError(f"Cannot do batch_dot on inputs with different batch sizes. Received inputs with shapes "
                             f"{shape1} and {shape2}.")
        return shape1, shape2, axes

    def build(self, input_shape):
        self._pair(input_shape)
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"A `Dot` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        x1, x2 = inputs
        x1 = x1 if isinstance(x1, Tensor) else Tensor(B.asarray(x1))
        x2 = x2 if isinstance(x2, Tensor) else Tensor(B.asarray(x2))
        _, _, axes = self._pair([tuple(x1.shape), tuple(x2.shape)])
        if self.normalize:
            x1, x2 = _l2_normalize(x1, axes[0]), _l2_normalize(x2, axes[1])
        return _batch_dot(x1, x2, axes)

    def compute_output_shape(self, input_shape):
        shape1, shape2, axes = self._pair(input_shape)
        shape1, shape2 = list(shape1), list(shape2)
        shape1.pop(axes[0])
        shape2.pop(axes[1])
        shape2.pop(0)
        output_shape = shape1 + shape2
        if len(output_shape) == 1:
            output_shape += [1]
        return tuple(output_shape)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"axes": self.axes, "normalize": self.normalize})
        return config


def dot(inputs, axes=-1, **kwargs):
    """The functional form of Dot: ``dot([a, b], axes)``."""
    return Dot(axes=axes, **kwargs)(inputs)


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
