"""Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate (a list of inputs -> one)."""
from __future__ import annotations

from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
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
