"""The Layer base class, symbolic KerasTensors for the functional API, InputSpec and layer variables.

A layer validates and stores its arguments in ``__init__``, creates its weights in ``build(input_shape)`` with
``add_weight``, computes in ``call(inputs, training=None, mask=None)`` on fastnn Tensors (differentiable ops), and
describes itself with ``compute_output_shape`` and ``get_config``. Calling a layer on NumPy arrays or Tensors runs
it eagerly; calling it on KerasTensors (from ``fastnn.Input``) records a node of the functional graph.

Example:
    >>> class Scale(fastnn.layers.Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")
    ...     def call(self, x):
    ...         return x * self.w
    >>> Scale()(np.ones((2, 3), "float32")).shape
    (2, 3)
"""
from __future__ import annotations

import collections
import functools
import inspect
import math
import re
import threading
import warnings

import numpy as np

from fastnn import backend as B
from fastnn.autograd import Tensor, Variable, no_grad
from fastnn.autograd import dtypes as _dtypes
from fastnn.autograd.keras_attrs import _MASKS, get_keras_mask, set_keras_mask

_NAME_UIDS = collections.Counter()


def unique_name(base: str) -> str:
    """Keras's automatic names: the first ``dense``, then ``dense_1``, ``dense_2``, ..."""
    _NAME_UIDS[base] += 1
    n = _NAME_UIDS[base]
    return base if n == 1 else f"{base}_{n - 1}"


def to_snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``Dense`` -> ``dense``, ``ZeroPadding2D`` -> ``zero_padding2d`` (a digit
    followed by a capital is not split, so Conv2D is ``conv2d`` as in Keras)."""
    s = re.sub(r"\W+", "", name)
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", s)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------------------------------------------
# Call context: the `training` flag flows from the outermost call into nested layers (as in Keras).
# ---------------------------------------------------------------------------------------------------------------
class _Context(threading.local):
    def __init__(self):
        self.training = None
        self.depth = 0  # nesting of eager layer calls: the outermost call resets activity losses


_ctx = _Context()

# The layers whose _activity_losses list is not empty (add_loss and activity regularizers add to it, the clearing
# walk empties it); weak, so a dropped layer leaves it. While it is empty, clearing is a no-op.
import weakref as _weakref  # noqa: E402

_ACTIVITY_LOSS_HOLDERS = _weakref.WeakSet()
# Its set of weak references, tested for emptiness on every outermost call: a C-level test, where the WeakSet's own
# __len__ is Python code. (A reference whose layer just died may linger there: a harmless walk.)
_HOLDERS_REFS = _ACTIVITY_LOSS_HOLDERS.data

# Per class: may Layer.__call__ take the fast path (the class keeps the base _eager_call and _convert_input)?
_FAST_CLASSES: dict = {}


def _fast_class(cls) -> bool:
    return cls._eager_call is Layer._eager_call and cls._convert_input is Layer._convert_input and \
        cls._set_mask_metadata is Layer._set_mask_metadata and cls.__call__ in (Layer.__call__, _functional_call())


def _functional_call():
    from fastnn.models.functional import Functional

    return Functional.__call__


_NP_DTYPES: dict = {}


def _np_dtype(name):
    """np.dtype(name), memoized (a layer's dtype is a string; np.dtype() of it costs more than the lookup)."""
    d = _NP_DTYPES.get(name)
    if d is None:
        d = _NP_DTYPES[name] = np.dtype(name)
    return d


def _fast_kwargs(kwargs) -> bool:
    """Only `training` (None or a bool) and a `mask` of None: what _fast_eager_call handles."""
    for k, v in kwargs.items():
        if k == "training":
            if v is not None and v is not True and v is not False:
                return False
        elif k != "mask" or v is not None:
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Symbolic tensors
# ---------------------------------------------------------------------------------------------------------------
class KerasTensor:
    """A symbolic tensor of the functional API: a shape (None for the batch axis), a dtype and the layer call
    that produced it."""

    _uid = 0
    _keras_mask = None  # the symbolic mask (a bool KerasTensor) a masking layer attaches, as in Keras

    def __init__(self, shape, dtype="float32", history=None, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self._history = history  # (layer, node_index, tensor_index)
        KerasTensor._uid += 1
        self.name = name or f"keras_tensor_{KerasTensor._uid}"

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse=False, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A KerasTensor is symbolic: it is a placeholder for the functional API (fastnn.Input / Model(inputs, "
            "outputs)) and has no values. Call the model on NumPy arrays to compute values."
        )

    # Operators on symbolic tensors are graph nodes of Keras's operation classes (fastnn.layers.symbolic_ops), so
    # `x ** 2` works in functional graphs and is written into configs as Keras writes it.
    def _op(self, name, *operands):
        from fastnn.layers import symbolic_ops

        return symbolic_ops.OPS[name]()(*operands)

    def __add__(self, o):
        return self._op("Add", self, o)

    def __radd__(self, o):
        return self._op("Add", o, self)

    def __sub__(self, o):
        return self._op("Subtract", self, o)

    def __rsub__(self, o):
        return self._op("Subtract", o, self)

    def __mul__(self, o):
        return self._op("Multiply", self, o)

    def __rmul__(self, o):
        return self._op("Multiply", o, self)

    def __truediv__(self, o):
        return self._op("TrueDivide", self, o)

    def __rtruediv__(self, o):
        return self._op("TrueDivide", o, self)

    def __pow__(self, o):
        return self._op("Power", self, o)

    def __rpow__(self, o):
        return self._op("Power", o, self)

    def __neg__(self):
        return self._op("Negative", self)

    def __matmul__(self, o):
        return self._op("Matmul", self, o)

    def __rmatmul__(self, o):
        return self._op("Matmul", o, self)


class Node:
    """One call of a layer in a functional graph."""

    def __init__(self, layer, args, kwargs, outputs):
        self.layer = layer
        self.args = args          # the call's positional args (nested structures of KerasTensors or constants)
        self.kwargs = kwargs      # other call arguments (may hold KerasTensors too)
        self.outputs = outputs    # nested structure of output KerasTensors
        self.input_tensors = [t for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)]
        self.output_tensors = [t for t in flatten(outputs) if isinstance(t, KerasTensor)]

    @property
    def parent_nodes(self):
        return [t._history[0]._inbound_nodes[t._history[1]] for t in self.input_tensors]


def flatten(structure):
    out = []
    stack = [structure]
    while stack:
        s = stack.pop()
        if isinstance(s, (list, tuple)):
            stack.extend(reversed(s))
        elif isinstance(s, dict):
            stack.extend(s[k] for k in reversed(sorted(s)))
        else:
            out.append(s)
    return out


def map_structure(fn, structure):
    if isinstance(structure, list):
        return [map_structure(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


# ---------------------------------------------------------------------------------------------------------------
# InputSpec
# ---------------------------------------------------------------------------------------------------------------
class InputSpec:
    """What a layer accepts: ``ndim``, ``min_ndim``, ``max_ndim``, ``axes`` ({axis: size}) and ``shape``."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None,
                 allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim, self.min_ndim = max_ndim, min_ndim
        self.axes = {int(k): v for k, v in (axes or {}).items()}
        self.allow_last_axis_squeeze = bool(allow_last_axis_squeeze)
        self.name = name
        self.optional = optional


def assert_input_compatibility(specs, inputs, layer_name):
    """Raises Keras's ValueError when ``inputs`` (shapes) do not match the layer's input specs."""
    if specs is None:
        return
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    flat = flatten(inputs)
    if len(specs) > 1 and len(flat) != len(specs):
        raise ValueError(f'Layer "{layer_name}" expects {len(specs)} input(s), but it received {len(flat)} input '
                         "tensors.")
    for i, (spec, x) in enumerate(zip(specs, flat)):
        if spec is None or (x is None and spec.optional):
            continue
        shape = tuple(x.shape)
        ndim = len(shape)
        head = f'Input {i} of layer "{layer_name}" is incompatible with the layer: '
        if spec.dtype is not None and str(np.dtype(x.dtype)) != str(np.dtype(spec.dtype)):
            raise ValueError(f"{head}expected dtype={np.dtype(spec.dtype)}, found dtype={np.dtype(x.dtype)}")
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ValueError(f"{head}expected ndim={spec.ndim}, found ndim={ndim}. Full shape received: {shape_str(shape)}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{head}expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"{head}expected min_ndim={spec.min_ndim}, found ndim={ndim}. Full shape received: "
                             f"{shape_str(shape)}")
        for axis, value in spec.axes.items():
            if value is None:
                continue
            if axis >= ndim or axis < -ndim:
                raise ValueError(f"{head}expected axis {axis} of input shape to have value {value}, but received "
                                 f"input with shape {shape_str(shape)}")
            got = shape[axis]
            if got is not None and got != value:
                raise ValueError(f"{head}expected axis {axis} of input shape to have value {value}, but received "
                                 f"input with shape {shape_str(shape)}")
        if spec.shape is not None:
            want_shape = spec.shape
            if spec.allow_last_axis_squeeze:  # as Keras: a trailing axis of size 1 on either side is ignored
                shape = shape[:-1] if shape and shape[-1] == 1 else shape
                want_shape = want_shape[:-1] if want_shape and want_shape[-1] == 1 else want_shape
            for want, got in zip(want_shape, shape):
                if want is not None and got is not None and want != got:
                    raise ValueError(f"{head}expected shape={shape_str(spec.shape)}, found shape={shape_str(shape)}")


# ---------------------------------------------------------------------------------------------------------------
# Layer variables
# ---------------------------------------------------------------------------------------------------------------

def _recording_build(build):
    """Keras's build wrapper: a layer built by calling ``layer.build(shape)`` directly (not through ``__call__``)
    is marked built and records its input shape, so its ``build_config`` (and a saved model's) lets a loader
    rebuild it before assigning the saved weights."""
    if getattr(build, "_fastnn_records_build", False):
        return build

    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        result = build(self, *args, **kwargs)
        if getattr(self, "_build_input_shape", None) is None:
            shape = args[0] if args else (next(iter(kwargs.values())) if len(kwargs) == 1 else None)
            if shape is not None:
                self._build_input_shape = shape
        if not self.built:
            self.built = True
        return result

    wrapper._fastnn_records_build = True
    return wrapper

class LayerVariable(Variable):
    """A Variable created by ``Layer.add_weight``: it knows its layer path, regularizer and constraint."""

    __slots__ = ("regularizer", "constraint", "_path")

    @property
    def path(self):
        return self._path

    def __repr__(self):
        return f"<Variable path={self._path}, shape={self.shape}, dtype={self.dtype}>"


# ---------------------------------------------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------------------------------------------
_BASE_KWARGS = {"input_shape", "input_dim", "batch_input_shape", "batch_size", "weights", "activity_regularizer",
                "autocast"}


class Layer:
    """Base class of every layer (and of Model).

    Args:
        trainable: whether the layer's weights are updated by training (``layer.trainable = False`` freezes it).
        name: unique name; defaults to the snake-cased class name made unique (``dense``, ``dense_1``, ...).
        dtype: the dtype of the weights and computations (float32 by default).
        input_shape: (first layer of a Sequential model) the shape of one sample, without the batch axis.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _recording_build(cls.__dict__["build"])

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # Attributes the base needs even if a subclass sets attributes before calling super().__init__().
        object.__setattr__(obj, "_tracked_layers", [])
        object.__setattr__(obj, "_trainable_variables", [])
        object.__setattr__(obj, "_non_trainable_variables", [])
        object.__setattr__(obj, "_tracked_metrics", [])
        return obj

    def __init__(self, *, activity_regularizer=None, trainable=True, dtype=None, autocast=True, name=None, **kwargs):
        unknown = set(kwargs) - _BASE_KWARGS
        if unknown:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                            f"{ {k: kwargs[k] for k in sorted(unknown)} }")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, but received {name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        if not isinstance(autocast, bool):
            raise TypeError(f"{type(self).__name__}: autocast must be True or False, but received {autocast!r}")
        # As Keras: with autocast (the default) float inputs of another dtype are cast to the layer's dtype;
        # autocast=False leaves them as they are (a float64 input stays float64). Integer inputs are never cast.
        self.autocast = autocast
        from fastnn.layers.serialization import dtype_from_config

        dtype = dtype_from_config(dtype)  # Keras configs write {"class_name": "DTypePolicy", ...}
        self.dtype = str(_dtypes.standardize_dtype(dtype, type(self).__name__) or _dtypes.floatx)
        self.built = False
        self.input_spec = None
        # As Keras: a layer that overrides compute_mask supports masking; others may set the flag themselves.
        self._overrides_compute_mask = type(self).compute_mask is not Layer.compute_mask
        self.supports_masking = self._overrides_compute_mask
        self._inbound_nodes = []
        self._activity_losses = []
        from fastnn import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._build_input_shape = None
        input_shape = kwargs.get("input_shape")
        batch_input_shape = kwargs.get("batch_input_shape")
        if kwargs.get("input_dim") is not None and input_shape is None:
            input_shape = (kwargs["input_dim"],)
        if input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            batch_input_shape = (kwargs.get("batch_size"),) + tuple(input_shape)
        self._batch_input_shape = tuple(batch_input_shape) if batch_input_shape is not None else None
        self._initial_weights = kwargs.get("weights")
        cls = type(self)
        sig = _call_signature(cls)
        self._call_has_training = "training" in sig or _has_var_kw(cls)
        self._call_has_mask = "mask" in sig
        self._call_mask_args = tuple(n for n in sig if n.endswith("_mask"))  # Keras's `<argument>_mask`
        # The names of call's positional parameters, to find `<argument>_mask` for positional tensor arguments.
        self._call_positional_names = tuple(n for n, p in list(sig.items())[1:] if p.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)) if self._call_mask_args else ()

    # -- attribute tracking -----------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if _is_metric(value) and name != "_loss_tracker":
            # As Keras: metrics held as attributes join model.metrics (reset every epoch, reported in the logs).
            if all(value is not m for m in self._tracked_metrics):
                self._tracked_metrics.append(value)
        if isinstance(value, Layer) and not name.startswith("_inbound"):
            if value is not self and all(value is not l for l in self._tracked_layers):
                self._tracked_layers.append(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value) and \
                not name.startswith("_"):
            for v in value:
                if v is not self and all(v is not l for l in self._tracked_layers):
                    self._tracked_layers.append(v)
        object.__setattr__(self, name, value)

    # -- trainable / weights ----------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        value = bool(value)
        self._trainable = value
        for v in self._trainable_variables:
            v.trainable = value
        for layer in self._sublayers():
            layer.trainable = value

    def _sublayers(self):
        return list(self._tracked_layers)

    @property
    def weights(self) -> list:
        """All variables: this layer's trainable then non-trainable ones, then those of its sublayers (Keras order)."""
        out = []
        self._gather_weights(out, set())
        return out

    def _gather_weights(self, out, seen):
        # One walk with one `seen` set: the first occurrence of each variable in the pre-order walk, the order the
        # per-layer lists concatenated and deduplicated give (a sublayer overriding `weights` is asked for it).
        for w in self._trainable_variables + self._non_trainable_variables:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        for layer in self._sublayers():
            if type(layer).weights is _LAYER_WEIGHTS:
                layer._gather_weights(out, seen)
            else:
                for w in layer.weights:
                    if id(w) not in seen:
                        seen.add(id(w))
                        out.append(w)

    variables = weights

    @property
    def trainable_weights(self) -> list:
        """The weights training updates: none when this layer is frozen, and only the trainable ones of
        sublayers that are not frozen themselves."""
        if not self.trainable:
            return []
        out = []
        self._gather_trainable(out, set())
        return out

    def _gather_trainable(self, out, seen):
        # As _gather_weights; a frozen sublayer contributes nothing (its trainable_weights is empty).
        for w in self._trainable_variables:
            if w.trainable and id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        for layer in self._sublayers():
            if type(layer).trainable_weights is _LAYER_TRAINABLE_WEIGHTS:
                if layer.trainable:
                    layer._gather_trainable(out, seen)
            else:
                for w in layer.trainable_weights:
                    if id(w) not in seen:
                        seen.add(id(w))
                        out.append(w)

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    non_trainable_variables = non_trainable_weights

    # NumPy boundary: the weights leave as NumPy arrays for the user.
    def get_weights(self) -> list:
        """The weights as a list of NumPy arrays (copies), in Keras's order."""
        return [np.array(w.numpy(), copy=True) for w in self.weights]

    # NumPy boundary: the user's arrays come in (checked for shape, then assigned into the variables).
    def set_weights(self, weights) -> None:
        """Sets the weights from a list of arrays in ``get_weights`` order; shapes must match."""
        params = self.weights
        weights = list(weights)
        if len(params) != len(weights):
            raise ValueError(
                f'Layer "{self.name}" expected {len(params)} weight(s), but it received {len(weights)} input '
                f"weight(s). Weights expected: {[w.path for w in params]}"
            )
        for p, w in zip(params, weights):
            w = np.asarray(w)
            if tuple(p.shape) != tuple(w.shape):
                raise ValueError(
                    f'Layer "{self.name}" weight shape mismatch for {p.path}: expected shape {tuple(p.shape)}, but '
                    f"received shape {tuple(w.shape)}"
                )
        for p, w in zip(params, weights):
            p.assign(np.asarray(w))

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f'You tried to call `count_params` on layer "{self.name}", but the layer isn\'t built. '
                             "You can build it manually via: `layer.build(input_shape)`.")
        return sum(math.prod(w.shape) for w in self.weights)

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, regularizer=None,
                   constraint=None, name=None, **kwargs):
        """Creates a weight Variable of this layer.

        Args:
            shape: tuple of ints (default ``()``).
            initializer: name, Initializer or callable; default "glorot_uniform" for floats ("zeros" otherwise).
            trainable: whether training updates it.
            regularizer, constraint: names or objects.
            name: the variable name (its path is ``layer_name/name``).
        """
        from fastnn import constraints as _constraints
        from fastnn import initializers as _initializers
        from fastnn import regularizers as _regularizers

        shape = () if shape is None else tuple(int(s) for s in shape)
        dt = _dtypes.standardize_dtype(dtype, "add_weight") or np.dtype(self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dt.kind == "f" else "zeros"
        init = _initializers.get(initializer)
        value = init(shape, dtype=str(dt))
        name = name or f"variable_{len(self._trainable_variables) + len(self._non_trainable_variables)}"
        v = LayerVariable(value, dtype=dt, trainable=trainable and self.trainable, name=name)
        v._trainable = bool(trainable) and self.trainable
        v._requires_grad = v._trainable and dt.kind == "f"
        v.regularizer = _regularizers.get(regularizer)
        v.constraint = _constraints.get(constraint)
        v._path = f"{self.name}/{name}"
        (self._trainable_variables if trainable else self._non_trainable_variables).append(v)
        return v

    @property
    def losses(self) -> list:
        """Regularization penalties (Tensors) of this layer's weights and sublayers', plus activity losses."""
        out = []
        for w in self.weights:
            reg = getattr(w, "regularizer", None)
            if reg is not None and w.trainable:
                out.append(reg(w))
        out.extend(self._collect_activity_losses())
        return out

    def _collect_activity_losses(self):
        if not _HOLDERS_REFS:  # no layer holds one: nothing to collect, no walk
            return []
        out = list(self._activity_losses)
        for layer in self._sublayers():
            out.extend(layer._collect_activity_losses())
        return out

    def _clear_activity_losses(self):
        # Nothing to clear while no layer holds a loss (the common case, without activity regularizers or
        # add_loss): the recursive walk over the sublayers is skipped.
        if not _HOLDERS_REFS:
            return
        self._clear_activity_losses_walk()

    def _clear_activity_losses_walk(self):
        self._activity_losses = []
        _ACTIVITY_LOSS_HOLDERS.discard(self)
        for layer in self._sublayers():
            layer._clear_activity_losses_walk()

    def add_loss(self, loss):
        self._activity_losses.append(loss)
        _ACTIVITY_LOSS_HOLDERS.add(self)

    # -- build / call -----------------------------------------------------------------------------------------
    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"Layer {type(self).__name__} does not implement call()")

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch axis None). The default runs ``call`` on zeros."""
        return _shape_by_running(self, input_shape)

    def compute_mask(self, inputs, previous_mask):
        """The mask of the outputs (Keras's default: the mask of the first input, passed through). Called after
        ``call`` when ``supports_masking`` is True and the outputs carry no mask yet."""
        return previous_mask

    def _maybe_build(self, shapes):
        if self.built:
            return
        sig = inspect.signature(self.build)
        if len(sig.parameters) == 0:
            self.build()
        else:
            self.build(shapes)
        self.built = True
        self._build_input_shape = shapes
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def __call__(self, *args, **kwargs):
        # Fast path (the common eager case: one Tensor or buffer in, an already built layer of a class that keeps the
        # base _eager_call, no mask anywhere, no arguments beyond `training` and a None `mask`): the same steps as
        # _eager_call without flattening the arguments. _fast_eager_call is its twin; tests/layers/
        # test_layer_fast_path.py pins the two together.
        if len(args) == 1 and not _MASKS and (not kwargs or _fast_kwargs(kwargs)):
            x = args[0]
            if (type(x) is Tensor or B.is_buffer(x)) and self.__dict__.get("built") is True and \
                    "_inbound_nodes" in self.__dict__:
                fast = _FAST_CLASSES.get(type(self))
                if fast is None:
                    fast = _FAST_CLASSES[type(self)] = _fast_class(type(self))
                if fast:
                    return self._fast_eager_call(x, kwargs.get("training"))
        if not args:
            if "inputs" in kwargs:
                args = (kwargs.pop("inputs"),)
            else:
                raise TypeError(f'Layer "{self.name}": call() needs the input tensor(s) as first argument')
        if not hasattr(self, "_inbound_nodes"):
            raise RuntimeError(f"{type(self).__name__}: super().__init__() was not called in __init__")
        flat = flatten((args, kwargs))
        if any(isinstance(t, KerasTensor) for t in flat):
            return self._symbolic_call(args, kwargs)
        return self._eager_call(args, kwargs)

    def _convert_input(self, x):
        if isinstance(x, Tensor):
            if x.dtype.kind == "f" and x.dtype != np.dtype(self.dtype) and self._autocast():
                from fastnn.autograd.ops.shape import cast

                y = cast(x, self.dtype)
                mask = get_keras_mask(x)
                if mask is not None:  # as Keras's maybe_convert: the cast keeps the mask
                    set_keras_mask(y, mask)
                return y
            return x
        if (B.is_buffer(x) or isinstance(x, (np.ndarray, list, float, int, np.generic))) and not isinstance(x, bool):
            a = x if B.is_buffer(x) else B.asarray(x)  # the user's data enters the backend here
            if a.dtype.kind == "f" and a.dtype != np.dtype(self.dtype) and self._autocast():
                a = B.astype(a, self.dtype)
            elif a.dtype.kind not in "biuf":
                raise TypeError(f'Layer "{self.name}": cannot convert input of dtype {a.dtype} to a tensor')
            return Tensor._wrap(a)
        return x

    def _autocast(self):
        return self.autocast

    def _eager_call(self, args, kwargs):
        inputs = map_structure(self._convert_input, args[0])
        args = (inputs,) + tuple(args[1:])
        shapes = _shapes_of(inputs)
        if not self.built:
            if self.input_spec is not None:
                assert_input_compatibility(self.input_spec, inputs, self.name)
            self._maybe_build(_with_none_batch_if_list(shapes))
        assert_input_compatibility(self.input_spec, inputs, self.name)
        training = kwargs.pop("training", None)
        prev = _ctx.training
        if training is None:
            training = prev
        if self._call_has_training:
            kwargs["training"] = training
        # Fast path: no Tensor carries a mask (the side table is empty) and the call takes no mask argument.
        previous_mask = self._populate_masks(inputs, args, kwargs, get_keras_mask) if (
            _MASKS or self._call_has_mask or self._call_mask_args or "mask" in kwargs) else None
        if not self._call_has_mask:
            kwargs.pop("mask", None)
        _ctx.training = training
        if _ctx.depth == 0:  # as Keras: each outermost call starts with fresh activity losses
            self._clear_activity_losses()
        _ctx.depth += 1
        try:
            out = self.call(*args, **kwargs)
        finally:
            _ctx.training = prev
            _ctx.depth -= 1
        if self.supports_masking:
            if previous_mask is not None or self._overrides_compute_mask:
                self._set_mask_metadata(inputs, out, previous_mask)
        elif previous_mask is not None:
            self._warn_mask_dropped(previous_mask)
        if isinstance(out, Tensor):  # shown by summary() for models built by calling them
            self._last_output_shape = (None,) + tuple(out.shape[1:])
        if self.activity_regularizer is not None:
            self._add_activity_losses(out)
        return out

    def _fast_eager_call(self, x, training):
        """``_eager_call`` for one Tensor (or buffer) input, no mask in the side table (so neither the input nor any
        tensor carries one) and no call argument but ``training``: the same steps in the same order, without the
        structure walks. The input-spec check runs only when the input's (shape, dtype) or the spec object differ
        from the last ones checked, since the check depends on nothing else."""
        if type(x) is Tensor and (x._data.dtype.kind != "f" or x._data.dtype == _np_dtype(self.dtype)):
            inputs = x  # what _convert_input returns for it (no cast: not a float, or already the layer's dtype)
        else:
            inputs = self._convert_input(x)
        spec = self.input_spec
        if spec is not None:
            sig = (inputs._data.shape, inputs._data.dtype, spec)
            if self.__dict__.get("_checked_input_sig") != sig:
                assert_input_compatibility(spec, inputs, self.name)
                object.__setattr__(self, "_checked_input_sig", sig)
        ctx = _ctx
        prev = ctx.training
        if training is None:
            training = prev
        ctx.training = training
        if ctx.depth == 0 and _HOLDERS_REFS:  # as Keras: each outermost call starts with fresh losses
            self._clear_activity_losses()
        ctx.depth += 1
        try:
            if self._call_has_training:
                if self._call_has_mask:
                    out = self.call(inputs, training=training, mask=None)
                else:
                    out = self.call(inputs, training=training)
            elif self._call_has_mask:
                out = self.call(inputs, mask=None)
            else:
                out = self.call(inputs)
        finally:
            ctx.training = prev
            ctx.depth -= 1
        if self._overrides_compute_mask and self.supports_masking:
            self._set_mask_metadata(inputs, out, None)
        if isinstance(out, Tensor):  # shown by summary() for models built by calling them
            object.__setattr__(self, "_last_output_shape", (None,) + tuple(out._data.shape[1:]))
        if self.activity_regularizer is not None:
            self._add_activity_losses(out)
        return out

    def _add_activity_losses(self, out):
        from fastnn.autograd.ops import elementwise as _ew

        for o in flatten(out):
            if isinstance(o, Tensor):
                n = o.shape[0] if o.ndim else 1
                self._activity_losses.append(_ew.divide(self.activity_regularizer(o), float(max(n, 1))))
                _ACTIVITY_LOSS_HOLDERS.add(self)

    # -- masks (Keras's Layer.__call__ steps 6 and 8, and _set_mask_metadata) --------------------------------------
    def _populate_masks(self, inputs, args, kwargs, get_mask):
        """Fills in the mask arguments the caller left out, as Keras does, and returns the "previous mask" that
        ``compute_mask`` receives (None when no input carries one).

        A call with one tensor argument and a ``mask`` parameter receives the masks of that argument (a structure
        like it, of masks or None); with several tensor arguments, each keyword argument ``k`` with a ``k_mask``
        parameter receives the masks of ``k``. The previous mask is the ``mask`` argument when given, else the
        masks of the first argument."""
        if self._call_has_mask or self._call_mask_args:
            tensor_arguments = {k: v for k, v in kwargs.items() if not k.endswith("mask") and _holds_tensor(v)}
            for i, a in enumerate(args):
                if _holds_tensor(a):
                    names = self._call_positional_names
                    tensor_arguments[names[i] if i < len(names) else i] = a
            if len(tensor_arguments) == 1:
                if self._call_has_mask and kwargs.get("mask") is None:
                    kwargs["mask"] = map_structure(get_mask, next(iter(tensor_arguments.values())))
            elif len(tensor_arguments) > 1:
                for k, v in tensor_arguments.items():
                    if f"{k}_mask" in self._call_mask_args and kwargs.get(f"{k}_mask") is None:
                        kwargs[f"{k}_mask"] = map_structure(get_mask, v)
        previous_mask = kwargs.get("mask")
        if previous_mask is None:
            previous_mask = map_structure(get_mask, inputs)
        return previous_mask if _any_mask(previous_mask) else None

    def _set_mask_metadata(self, inputs, outputs, previous_mask):
        """Attaches ``compute_mask(inputs, previous_mask)`` to the outputs that have no mask yet (none of it when
        every output already has one, e.g. set by ``call``)."""
        flat_outputs = [o for o in flatten(outputs)]
        if all(get_keras_mask(o) is not None for o in flat_outputs):
            return
        output_masks = self.compute_mask(inputs, previous_mask)
        if output_masks is None:
            return
        for tensor, mask in zip(flat_outputs, flatten(output_masks)):
            if isinstance(tensor, Tensor) and mask is not None and get_keras_mask(tensor) is None:
                set_keras_mask(tensor, mask)

    def _warn_mask_dropped(self, previous_mask):
        warnings.warn(f"Layer '{self.name}' (of type {type(self).__name__}) was passed an input with a mask attached "
                      "to it. However, this layer does not support masking and will therefore destroy the mask "
                      "information. Downstream layers will not see the mask.", UserWarning, stacklevel=4)

    def _symbolic_output_masks(self, inputs, outputs, previous_mask):
        """The symbolic masks of a functional call: the previous mask passed through by the default compute_mask,
        else the specs (shape, bool) of what compute_mask returns for zeros standing in for the inputs."""
        if not self._overrides_compute_mask:
            return previous_mask
        to_dummy = lambda t: _dummy_tensor(t.shape, t.dtype) if isinstance(t, KerasTensor) else t  # noqa: E731
        dummy_inputs = map_structure(to_dummy, inputs)
        dummy_mask = map_structure(to_dummy, previous_mask)
        with no_grad():
            masks = self.compute_mask(dummy_inputs, dummy_mask)
        return map_structure(lambda m: None if m is None else KerasTensor((None,) + tuple(m.shape[1:]), "bool"),
                             masks)

    def _symbolic_call(self, args, kwargs):
        inputs = args[0]
        for t in flatten(inputs):
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    f'Layer "{self.name}": in a functional model every input must be a symbolic tensor from '
                    f"fastnn.Input or another layer, but received {type(t).__name__}"
                )
        shapes = _shapes_of(inputs)
        assert_input_compatibility(self.input_spec, inputs, self.name)
        if not self.built:
            self._maybe_build(shapes)
        assert_input_compatibility(self.input_spec, inputs, self.name)
        out_shapes = self.compute_output_shape(shapes)
        out_dtype = self._output_dtype(inputs)
        node_index = len(self._inbound_nodes)

        counter = iter(range(10**9))

        def make(shape):
            return KerasTensor(shape, out_dtype, history=(self, node_index, next(counter)))

        if _is_shape(out_shapes):
            outputs = make(out_shapes)
        else:
            outputs = map_structure_shapes(make, out_shapes)
        call_kwargs = {k: v for k, v in kwargs.items()}
        tensor_arguments = [a for a in list(args) + list(kwargs.values())
                            if any(isinstance(t, KerasTensor) for t in flatten(a))]
        if self._call_has_training and "training" not in call_kwargs:
            # Keras resolves `training` (the call context, else the call signature's default) and records a
            # value that is not None in the node (Dropout: training=False); a model's own training flag still
            # overrides it when the graph runs (Functional.call).
            value = _ctx.training if _ctx.training is not None else _training_default(type(self))
            if value is not None:
                call_kwargs["training"] = value
        if self._call_has_mask and "mask" not in call_kwargs and len(tensor_arguments) == 1 and \
                not isinstance(tensor_arguments[0], (list, tuple)):
            # Keras fills in the inputs' mask for a call with a `mask` argument and records it in the node. fastnn
            # records None: when the graph runs, each call fills in the mask its input tensor carries then (the
            # same mask Keras computes through the mask's own graph operations). A list of inputs without masks
            # (Attention([query, value])) records nothing, as in Keras.
            call_kwargs["mask"] = None
        previous_mask = kwargs.get("mask")
        if previous_mask is None:
            previous_mask = map_structure(_symbolic_mask, inputs)
        previous_mask = previous_mask if _any_mask(previous_mask) else None
        if self.supports_masking:
            if previous_mask is not None or self._overrides_compute_mask:
                output_masks = self._symbolic_output_masks(inputs, outputs, previous_mask)
                if output_masks is not None:
                    for t, m in zip(flatten(outputs), flatten(output_masks)):
                        if m is not None:
                            t._keras_mask = m
        elif previous_mask is not None:
            self._warn_mask_dropped(previous_mask)
        node = Node(self, args, call_kwargs, outputs)
        self._inbound_nodes.append(node)
        return outputs

    def _output_dtype(self, inputs):
        return self.dtype

    # -- config -----------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Keras's base config: name, trainable, the dtype policy, and the activity regularizer when there is one.
        (``input_shape=`` is not written: a Sequential model records it as its InputLayer, as Keras does.)"""
        from fastnn.layers.serialization import dtype_policy_config, serialize_keras_object

        config = {"name": self.name, "trainable": self.trainable, "dtype": dtype_policy_config(self.dtype)}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = serialize_keras_object(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {"input_shape": self._build_input_shape} if self._build_input_shape is not None else None

    # -- graph introspection ----------------------------------------------------------------------------------
    @property
    def input(self):
        if not self._inbound_nodes:
            raise AttributeError(f'Layer "{self.name}" has never been called and thus has no defined input.')
        node = self._inbound_nodes[0]
        ins = node.input_tensors
        return ins[0] if len(ins) == 1 else ins

    @property
    def output(self):
        if not self._inbound_nodes:
            raise AttributeError(f'Layer "{self.name}" has no inbound nodes (it was never called on a symbolic '
                                 "tensor).")
        return self._inbound_nodes[0].outputs

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_LAYER_WEIGHTS = Layer.weights
_LAYER_TRAINABLE_WEIGHTS = Layer.trainable_weights

_METRIC_CLASS = []


def _is_metric(value) -> bool:
    if isinstance(value, (int, float, str, tuple, list, dict, np.ndarray, Tensor)) or value is None:
        return False  # the common attribute values, without the lookup below
    if not _METRIC_CLASS:
        from fastnn.metrics import Metric  # imported here: fastnn.metrics is imported after the layers

        _METRIC_CLASS.append(Metric)
    return isinstance(value, _METRIC_CLASS[0])


def _is_shape(s) -> bool:
    return isinstance(s, tuple) and all(d is None or isinstance(d, (int, np.integer)) for d in s)


def map_structure_shapes(fn, shapes):
    if _is_shape(shapes):
        return fn(shapes)
    if isinstance(shapes, list):
        return [map_structure_shapes(fn, s) for s in shapes]
    if isinstance(shapes, tuple):
        return tuple(map_structure_shapes(fn, s) for s in shapes)
    if isinstance(shapes, dict):
        return {k: map_structure_shapes(fn, v) for k, v in shapes.items()}
    raise TypeError(f"not a shape: {shapes!r}")


def _shapes_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [_shapes_of(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: _shapes_of(v) for k, v in inputs.items()}
    return tuple(getattr(inputs, "shape", ()))


def _with_none_batch_if_list(shapes):
    return shapes


def _call_signature(cls):
    try:
        return inspect.signature(cls.call).parameters
    except (TypeError, ValueError):
        return {}


def _training_default(cls):
    p = _call_signature(cls).get("training")
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def _has_var_kw(cls):
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in _call_signature(cls).values())


def _holds_tensor(value) -> bool:
    return any(isinstance(t, (Tensor, KerasTensor)) for t in flatten(value))


def _symbolic_mask(t):
    return t._keras_mask if isinstance(t, KerasTensor) else None


def _any_mask(masks) -> bool:
    return any(m is not None for m in flatten(masks))


def _dummy_tensor(shape, dtype):
    """Zeros standing in for a symbolic tensor (unknown axes of size 1)."""
    return Tensor._wrap(B.zeros(tuple(1 if d is None else d for d in shape), dtype=dtype))


def _shape_by_running(layer, input_shape):
    """Output shape(s) of ``layer`` for ``input_shape`` by calling it on zeros (None axes become 1), under
    no_grad and in inference mode; the batch axis of the results becomes None again."""

    def dummy(shape):
        return _dummy_tensor(shape, layer.dtype)

    if _is_shape(input_shape):
        inputs = dummy(input_shape)
    else:
        inputs = map_structure_shapes(dummy, input_shape)
    prev = _ctx.training
    _ctx.training = False
    try:
        with no_grad():
            kwargs = {"training": False} if layer._call_has_training else {}
            out = layer.call(inputs, **kwargs)
    finally:
        _ctx.training = prev
    return map_structure(lambda t: (None,) + tuple(t.shape[1:]), out)
