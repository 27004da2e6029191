"""``Model``: a Layer that trains. compile / fit / evaluate / predict, train_on_batch / test_on_batch /
predict_on_batch, overridable ``train_step`` / ``test_step`` / ``predict_step``, summary, get_layer.

``Model(inputs, outputs)`` builds a functional model (``fastnn.models.functional.Functional``); subclasses define
``call``. The user's data becomes backend buffers once, at the entry of fit / evaluate / predict; the loop slices
batches from them through ``fastnn.backend`` (views when not shuffling, gathered rows when shuffling), runs the
forward pass on autograd Tensors, differentiates with a GradientTape and applies all gradients with one fused
optimizer call. predict hands NumPy arrays out.

Example:
    >>> model = fastnn.Sequential([fastnn.Input((4,)), fastnn.layers.Dense(3, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from fastnn import backend as B
from fastnn import callbacks as _callbacks
from fastnn import losses as _losses
from fastnn import metrics as _metrics
from fastnn import optimizers as _optimizers
from fastnn import utils as _utils
from fastnn.autograd import GradientTape, Tensor, no_grad
from fastnn.autograd.ops import elementwise as _ew
from fastnn.layers.layer import Layer, flatten, map_structure


# ---------------------------------------------------------------------------------------------------------------
# Data helpers
# ---------------------------------------------------------------------------------------------------------------
def _as_buffer(x, what):
    """The user's data (a NumPy array, a Tensor, a buffer, nested lists of numbers) as a backend buffer: NumPy
    arrays keep their dtype (no copy on the CPU), Python floats become float32 (Keras's floatx)."""
    if isinstance(x, Tensor):
        return x._data
    if B.is_buffer(x):
        return x
    try:
        a = B.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{what}: expected a NumPy array, a fastnn Tensor or a list of numbers, but received "
                        f"{type(x).__name__}") from exc
    if a.dtype == object:
        raise TypeError(f"{what}: expected numeric arrays, but received an object array (ragged lists?)")
    if a.dtype.kind == "f" and a.dtype != np.float32 and not isinstance(x, np.ndarray):
        a = B.astype(a, "float32")
    return a


def _output_buffer(t):
    """A predict_step output as a buffer (Tensors give theirs; other values are converted as they are)."""
    if isinstance(t, Tensor):
        return t._data
    return t if B.is_buffer(t) else B.asarray(t)


def _is_array_like(d):
    return isinstance(d, (np.ndarray, Tensor)) or B.is_buffer(d)


def _standardize(data, what):
    """The user's arrays as backend buffers: a dict stays a dict, a list / tuple of arrays (several inputs or
    outputs) stays a list, anything else (an array, a Tensor, nested lists of numbers) becomes one buffer."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _as_buffer(v, f"{what}[{k!r}]") for k, v in data.items()}
    if isinstance(data, (list, tuple)) and data and all(_is_array_like(d) for d in data):
        return [_as_buffer(d, f"{what}[{i}]") for i, d in enumerate(data)]
    return _as_buffer(data, what)


def _num_samples(*structures):
    sizes = {}
    for name, s in structures:
        if s is None:
            continue
        for i, a in enumerate(flatten(s)):
            if a.ndim == 0:
                raise ValueError(f"{name}: expected arrays with a batch axis, but received a scalar")
            sizes.setdefault(a.shape[0], []).append(name)
    if len(sizes) > 1:
        detail = ", ".join(f"{', '.join(sorted(set(v)))} size {k}" for k, v in sizes.items())
        raise ValueError("Data cardinality is ambiguous. Make sure all arrays contain the same number of samples: "
                         f"{detail}")
    return next(iter(sizes)) if sizes else 0


def _slice(structure, index):
    """The rows ``index`` (a slice: views; an index buffer: gathered copies) of every buffer of ``structure``."""
    if structure is None:
        return None
    return map_structure(lambda a: B.getitem(a, index), structure)


def _batch_len(x):
    """The number of samples of a batch (its first array's leading axis)."""
    first = flatten(x)[0]
    return first.shape[0] if hasattr(first, "shape") else len(first)


# NumPy boundary: metric results leave as Python floats (or NumPy arrays for vector results) for the logs.
def _to_float(v):
    if isinstance(v, Tensor):
        v = v.numpy()
    elif B.is_buffer(v) and not isinstance(v, np.ndarray):
        v = B.to_numpy(v)
    if isinstance(v, np.ndarray):
        # As Keras's logs: a scalar result becomes a float, a vector result (F1Score per class, even of size 1)
        # stays an array.
        return float(v) if v.ndim == 0 else v
    if isinstance(v, (np.generic, numbers.Number)):
        return float(v)
    return v


def _logs_to_float(logs):
    """A step's logs with every value through _to_float (a Python float, the usual value, is already one)."""
    return {k: v if type(v) is float else _to_float(v) for k, v in logs.items()}


def _check_batch_size(batch_size, what="batch_size"):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"{what} must be a positive int, but received {batch_size!r}")
    return int(batch_size)


def _class_weights_to_sample_weights(y, class_weight):
    """Keras's ``class_weight_to_sample_weights``: one weight per sample from its class (argmax of one-hot rows,
    else the rounded label); a class missing from ``class_weight`` gets weight 1.0."""
    if isinstance(y, (list, dict)):
        raise ValueError("`class_weight` is only supported for Models with a single output.")
    if not isinstance(class_weight, dict):
        raise TypeError(f"`class_weight` must be a dict {{class index: weight}}, but received "
                        f"{type(class_weight).__name__}")
    y = _as_buffer(y, "y")
    if y.ndim > 1:
        labels = B.argmax(y, axis=-1) if y.shape[-1] != 1 else B.squeeze(y, axis=-1)
    else:
        labels = y
    labels = B.astype(B.round(labels), "int32")
    if labels.ndim > 1:
        labels = B.getitem(B.reshape(labels, (labels.shape[0], -1)), (slice(None), 0))
    return B.asarray([class_weight.get(label, 1.0) for label in B.tolist(labels)], dtype="float32")


def _metrics_per_output(spec, n, names, argument):
    """Keras's CompileMetrics._build_metrics_set: one list of metrics per output. One output takes every metric
    (nested lists and dicts flattened); several outputs need a list / tuple with one entry (a metric, a list of
    them, or None) per output, or a dict keyed by output names."""
    if n == 1:
        return [flatten(spec)]
    if isinstance(spec, (list, tuple)) and len(spec) == n:
        return [[] if m is None else (list(m) if isinstance(m, (list, tuple)) else [m]) for m in spec]
    if isinstance(spec, dict) and set(spec) <= set(names):
        return [[] if spec.get(k) is None else (list(spec[k]) if isinstance(spec[k], (list, tuple)) else [spec[k]])
                for k in names]
    raise ValueError(f"Invalid `{argument}`. `{argument}` should contain metrics objects and either be a dict or a "
                     f"list matching the output names of the functional model {names} or match the output structure "
                     f"of the model ({n} outputs). Received: {argument}={spec}")


class _CompiledMetric:
    """One metric of ``compile``: its spec, the output it watches, whether it takes sample weights, and the key of
    its value in the logs (``log_name``, given by ``_CompileMetrics.assign_log_names``)."""
    __slots__ = ("spec", "output", "obj", "weighted", "log_name")

    def __init__(self, spec, output, weighted):
        self.spec, self.output, self.obj, self.weighted, self.log_name = spec, output, None, weighted, None


class _CompileMetrics:
    """Keras's ``CompileMetrics``: the container of the metrics given to ``compile`` (``model.metrics[1]``, named
    "compile_metrics"); its ``result()`` is the dict of their values under Keras's log names."""

    name = "compile_metrics"

    def __init__(self):
        self.entries = []  # _CompiledMetric, unweighted ones first (Keras's _flat_metrics + _flat_weighted_metrics)
        self.built = False

    @property
    def metrics(self):
        return [e.obj for e in self.entries]

    def assign_log_names(self, output_names):
        """Keras's ``CompileMetrics.result`` naming: the metric's name, prefixed with the output's name for models
        with several outputs; a repeated name gets ``_1``, ``_2``, ...; a weighted metric whose name is taken
        becomes ``weighted_<name>`` (then ``_1``, ... if that is taken too)."""
        counters = {}
        for e in self.entries:
            prefix = f"{output_names[e.output]}_" if output_names else ""
            name = prefix + e.obj.name
            if name not in counters:
                counters[name] = 1
            elif not e.weighted:
                counters[name] += 1
                name = f"{name}_{counters[name] - 1}"
            else:
                name = f"{prefix}weighted_{e.obj.name}"
                if name not in counters:
                    counters[name] = 1
                else:
                    counters[name] += 1
                    name = f"{name}_{counters[name] - 1}"
            e.log_name = name

    def reset_state(self):
        for m in self.metrics:
            m.reset_state()

    def result(self):
        return {e.log_name: e.obj.result() for e in self.entries} if self.built else {}

    def __repr__(self):
        return f"<CompileMetrics name={self.name}>"


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------
class Model(Layer):
    """A trainable stack of layers: the Keras training API.

    ``Model(inputs, outputs)`` creates a functional model; subclass Model and define ``call`` for a custom one.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or ("outputs" in kwargs and args)):
            from fastnn.models.functional import Functional

            return Functional.__new__(Functional, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        if type(self) is Model or (args or "inputs" in kwargs):
            if args or "inputs" in kwargs:
                raise TypeError("Model(inputs, outputs) creates a functional model; it cannot be combined with "
                                "subclassing")
        trainable = kwargs.pop("trainable", True)
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        super().__init__(trainable=trainable, name=name, dtype=dtype, **kwargs)
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._in_fit = False
        self._loss_tracker = None
        self._compiled_metrics = []
        self._loss_objs = None
        self._compile_metrics = None
        self._per_output_loss_trackers = []
        self.run_eagerly = False
        self.jit_compile = False
        self.steps_per_execution = 1
        self._initial_epoch = None  # as Keras: set by callbacks (BackupAndRestore) in on_train_begin
        self._fit_position = None  # while fit runs: its random streams (models/training_state.py)

    # -- building -------------------------------------------------------------------------------------------------
    def build(self, input_shape=None):
        """Builds a subclassed model for ``input_shape`` (batch axis included) by running ``call`` once on zeros,
        so its layers create their weights (``summary`` and ``count_params`` then work before any data)."""
        if input_shape is None:
            self.built = True
            return
        from fastnn.layers.layer import _shape_by_running

        self._build_input_shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) and all(
            d is None or isinstance(d, int) for d in input_shape) else input_shape
        _shape_by_running(self, input_shape)
        self.built = True

    def _maybe_build(self, shapes):
        # A subclassed model's layers build themselves during its first call; no separate dummy pass.
        self.built = True
        self._build_input_shape = shapes

    # -- structure ------------------------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._sublayers())

    def get_layer(self, name=None, index=None):
        """The layer with this ``name`` or at this ``index`` of ``layers``."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: index={index}, name={name}.")
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self.layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f'You tried to call `count_params` on model "{self.name}", but the model is not built. '
                             "Call it on data or build it with `model.build(input_shape)` first.")
        return sum(math.prod(w.shape) for w in self.weights)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Prints Keras's table: layer (type), output shape, parameter count ("Connected to" for branching functional
        models), then the parameter totals and, once the optimizer is built, "Optimizer params" (counted in the
        total, as Keras does).

        Args:
            line_length: total width (default: 88, or 108 with "Connected to", capped at the terminal width - 4).
            positions: the columns' end positions as fractions of line_length (Keras's default [0.45, 0.80, 1.0]).
            print_fn: called with the whole text (default print).
            expand_nested: also list the layers of nested models, indented.
            show_trainable: add a "Trainable" column (Y / N, "-" for layers without weights).
            layer_range: [first, last] regular expressions matched against layer names (both included).
        """
        from fastnn.models.summary import print_summary

        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    def _summary_shape(self, layer):
        from fastnn.models.summary import _fmt_shape

        shape = getattr(layer, "_last_output_shape", None)
        if layer._inbound_nodes:
            try:
                outs = layer._inbound_nodes[-1].output_tensors
                shape = [o.shape for o in outs] if len(outs) > 1 else outs[0].shape
            except (AttributeError, IndexError):
                pass
        return _fmt_shape(shape)

    # -- compile --------------------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Configures training.

        Args:
            optimizer: name ("adam", "sgd", ...) or Optimizer instance.
            loss: name, function, Loss instance, or a list / dict of them (one per output).
            loss_weights: list or dict of floats weighting the per-output losses.
            metrics: list of names ("accuracy", "mae", ...), functions or Metric instances; or a list / dict per
                output.
            weighted_metrics: metrics that also receive the sample weights (named ``weighted_<name>`` in the logs
                when ``metrics`` already has one of that name, as in Keras).
            run_eagerly: True runs every step eagerly (no compiled step); as in Keras's TensorFlow backend, the
                per-output losses of a multi-output model are then averaged weighted by batch size (True) or as the
                plain mean of the batch values (False, Keras's traced step); see ``compute_metrics``.
            steps_per_execution: batches run per "execution" (a positive int): callbacks'
                ``on_*_batch_begin`` / ``on_*_batch_end`` are called once per execution, with the index of its first
                and of its last batch (``begin + steps_per_execution - 1``), as Keras does. Training itself is the
                same batch by batch.
            jit_compile: "auto" (the default) or True: the compiled step (models/compiled.py): the first batch of
                each input signature records its kernel calls, later batches replay them without the per-layer
                Python, with bit-identical results. A model that cannot be traced warns once (naming the layer) and
                runs eagerly. "auto" resolves to True unless ``run_eagerly``; False runs every step eagerly.
            auto_scale_loss: as in Keras, it only acts on a ``mixed_float16`` dtype policy, which fastnn does not
                have, so it never changes anything; it must be a bool.
        """
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, numbers.Integral) or \
                steps_per_execution < 1:
            raise ValueError(f"compile: steps_per_execution must be a positive int, but received "
                             f"{steps_per_execution!r}")
        if not isinstance(run_eagerly, bool):
            raise TypeError(f"compile: run_eagerly must be True or False, but received {run_eagerly!r}")
        if not isinstance(auto_scale_loss, bool):
            raise TypeError(f"compile: auto_scale_loss must be True or False, but received {auto_scale_loss!r}")
        if jit_compile not in ("auto", True, False, None):
            raise ValueError(f'compile: jit_compile must be "auto", True or False, but received {jit_compile!r}')
        if jit_compile == "auto" or jit_compile is None:
            # Keras's resolution on its JAX backend (a compiled step whenever the model supports it); on TensorFlow
            # it is False on a CPU because XLA is slower there, but fastnn's compiled step is never slower than
            # eager and gives the same bits, so it is the default.
            jit_compile = not run_eagerly
        if jit_compile and run_eagerly:
            warnings.warn("If `run_eagerly` is True, then `jit_compile` cannot also be True. Disabling "
                          "`jit_compile`.", stacklevel=2)  # Keras's warning
            jit_compile = False
        self.jit_compile = bool(jit_compile)
        self.__dict__.pop("_compiled_steps", None)  # plans recorded with the previous losses / optimizer
        self.run_eagerly = run_eagerly
        self.steps_per_execution = int(steps_per_execution)
        self._auto_scale_loss = auto_scale_loss
        self.optimizer = _optimizers.get(optimizer)
        self._loss_spec = loss
        self._loss_weights_spec = loss_weights
        # Resolve names now so a typo fails at compile, not in the middle of fit.
        for l in flatten(loss) if isinstance(loss, (list, tuple, dict)) else [loss]:
            if l is not None:
                _losses.get(l)
        for argument, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value and not isinstance(value, (list, tuple, dict)):
                raise ValueError(f"Expected `{argument}` argument to be a list, tuple, or dict. Received instead: "
                                 f"{argument}={value} of type {type(value)}")
        self._metrics_spec = metrics
        for m in (flatten(metrics) if isinstance(metrics, (list, tuple, dict)) else [metrics]):
            if m is not None and not (isinstance(m, str) and m.lower() in ("accuracy", "acc")):
                _metrics.get(m)
        self._weighted_metrics_spec = weighted_metrics
        self._loss_tracker = _metrics.Mean(name="loss")
        self._loss_objs = None
        self._compiled_metrics = None
        # As Keras: the container exists from compile on when metrics were given (metrics_names shows it).
        self._compile_metrics = _CompileMetrics() if metrics is not None or weighted_metrics is not None else None
        self._per_output_loss_trackers = []
        self.compiled = True
        self.stop_training = False

    def _assert_compiled(self, method):
        if not self.compiled or self.optimizer is None and method in ("fit", "train_on_batch"):
            raise RuntimeError(f"You must call `compile()` before using the model in `{method}()`. (Model "
                               f'"{self.name}")')

    @property
    def metrics(self) -> list:
        """As Keras: the loss tracker ("loss"), the container of the compiled metrics ("compile_metrics", its
        ``.metrics`` lists them), one loss tracker per output ("<output>_loss") for several outputs, then the
        metrics held as attributes of the model and of its layers."""
        out = []
        if self.compiled:
            if self._loss_tracker is not None:
                out.append(self._loss_tracker)
            if getattr(self, "_compile_metrics", None) is not None:
                out.append(self._compile_metrics)
            out.extend(self._per_output_loss_trackers)
        # Then, as Keras, metrics held as attributes of the model, then those of its layers (not of nested models,
        # whose own training state Keras ignores).
        out.extend(self._tracked_metrics)
        stack = list(reversed(self._sublayers()))
        while stack:
            layer = stack.pop()
            if isinstance(layer, Model):
                continue
            out.extend(m for m in layer._tracked_metrics if all(m is not o for o in out))
            stack.extend(reversed(layer._sublayers()))
        return out

    @property
    def metrics_names(self) -> list:
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _output_names(self, n):
        names = getattr(self, "output_names", None)
        if names and len(names) == n:
            return list(names)
        return [f"output_{i}" for i in range(n)]

    def _flat_y(self, y, n, names, what):
        if y is None:
            return [None] * n
        if isinstance(y, dict):
            missing = [k for k in names if k not in y]
            if missing:
                raise ValueError(f"{what}: the dict is missing the output(s) {missing}; expected keys {names}")
            return [y[k] for k in names]
        if isinstance(y, (list, tuple)) and n > 1:
            if len(y) != n:
                raise ValueError(f"{what}: the model has {n} outputs, but {len(y)} targets were given")
            return list(y)
        if n != 1:
            raise ValueError(f"{what}: the model has {n} outputs; pass a list or dict of {n} targets")
        return [y]

    def _build_compiled(self, y_flat, p_flat):
        n = len(p_flat)
        names = self._output_names(n)
        spec = self._loss_spec
        if isinstance(spec, dict):
            if set(spec) != set(names):  # Keras's CompileLoss: every output has a key (its value may be None)
                raise ValueError(f"Expected keys {names} in loss dict, but found loss.keys()={sorted(spec)}")
            objs = [spec.get(k) for k in names]
        elif isinstance(spec, (list, tuple)):
            if len(spec) != n:
                raise ValueError(f"compile: {len(spec)} losses were given for a model with {n} outputs")
            objs = list(spec)
        else:
            objs = [spec] * n
        self._loss_objs = []
        for o in objs:
            fn = _losses.get(o) if o is not None else None
            if fn is not None and not isinstance(fn, _losses.Loss):
                fn = _losses.LossFunctionWrapper(fn)
            self._loss_objs.append(fn)
        w = self._loss_weights_spec
        if w is None:
            self._loss_w = [1.0] * n
        elif isinstance(w, dict):
            missing = [k for k in names if k not in w]
            if missing and n > 1:  # Keras fails here too (a KeyError)
                raise ValueError(f"compile: loss_weights has no weight for the output(s) {missing}; expected the keys "
                                 f"{names}")
            self._loss_w = [float(w.get(k, 1.0)) for k in names]
        elif isinstance(w, (list, tuple)):
            if len(w) != n:
                raise ValueError(f"compile: {len(w)} loss_weights were given for a model with {n} outputs")
            self._loss_w = [float(v) for v in w]
        else:
            if n > 1:
                raise TypeError(f"compile: loss_weights for a model with {n} outputs must be a list or a dict keyed by "
                                f"output name, but received {w!r}")
            self._loss_w = [float(w)] * n
        if sum(l is not None for l in self._loss_objs) > 1:  # Keras: per-output trackers only for several losses
            self._per_output_loss_trackers = [_metrics.Mean(name=f"{nm}_loss") for nm, l in zip(names, self._loss_objs)
                                              if l is not None]
        # Metrics, in Keras's order: every unweighted one (output by output), then every weighted one.
        compiled = []
        for weighted, mspec in ((False, self._metrics_spec), (True, self._weighted_metrics_spec)):
            if not mspec:
                continue
            per = _metrics_per_output(mspec, n, names, "weighted_metrics" if weighted else "metrics")
            for i, ms in enumerate(per):
                ms = ms if isinstance(ms, (list, tuple)) else [ms]
                for m in ms:
                    cm = _CompiledMetric(m, i, weighted)
                    cm.obj = self._make_metric(m, y_flat[i], p_flat[i])
                    compiled.append(cm)
        self._compiled_metrics = compiled
        if self._compile_metrics is None and compiled:
            self._compile_metrics = _CompileMetrics()
        if self._compile_metrics is not None:
            self._compile_metrics.entries = compiled
            self._compile_metrics.assign_log_names(names if n > 1 else None)
            self._compile_metrics.built = True

    @staticmethod
    def _make_metric(identifier, y_true, y_pred):
        if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
            ps = tuple(y_pred.shape)
            ts = tuple(_as_buffer(y_true, "y").shape) if y_true is not None else ps
            if ps and ps[-1] == 1:
                obj = _metrics.BinaryAccuracy(name=identifier)
            elif len(ts) == len(ps) - 1 or (ts and ts[-1] == 1 and ps and ps[-1] > 1):
                obj = _metrics.SparseCategoricalAccuracy(name=identifier)
            else:
                obj = _metrics.CategoricalAccuracy(name=identifier)
            return obj
        obj = _metrics.get(identifier)
        if isinstance(obj, _metrics.Metric):
            if isinstance(identifier, str):
                obj.name = identifier
            return obj
        return _metrics.MeanMetricWrapper(obj, name=identifier if isinstance(identifier, str) else
                                          getattr(obj, "__name__", "metric"))

    # -- loss and metrics -----------------------------------------------------------------------------------------
    def _flat_pred(self, y_pred):
        if isinstance(y_pred, dict):
            names = self._output_names(len(y_pred))
            return [y_pred[k] for k in names] if all(k in y_pred for k in names) else list(y_pred.values())
        if isinstance(y_pred, (list, tuple)):
            return list(y_pred)
        return [y_pred]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss: the compiled losses (weighted by ``loss_weights``) plus the layers' regularization
        losses. Override it for custom objectives."""
        p_flat = self._flat_pred(y_pred)
        y_flat = self._flat_y(y, len(p_flat), self._output_names(len(p_flat)), "compute_loss: y")
        if self._loss_objs is None or self._compiled_metrics is None:
            self._build_compiled(y_flat, p_flat)
        total = None
        sw_flat = self._flat_y(sample_weight, len(p_flat), self._output_names(len(p_flat)), "sample_weight") \
            if isinstance(sample_weight, (dict, list, tuple)) else [sample_weight] * len(p_flat)
        self._last_output_losses = []
        for fn, w, yt, yp, sw in zip(self._loss_objs, self._loss_w, y_flat, p_flat, sw_flat):
            if fn is None:
                continue
            if yt is None:
                raise ValueError("compute_loss: the model was compiled with a loss, but no targets `y` were given")
            l = fn(yt, yp, sample_weight=sw)
            self._last_output_losses.append(l)
            l = _ew.multiply(l, w) if w != 1.0 else l
            total = l if total is None else _ew.add(total, l)
        for reg in self.losses:
            total = reg if total is None else _ew.add(total, reg)
        if total is None:
            if self._loss_spec is None:
                raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
            total = Tensor(0.0)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics with a batch and returns ``get_metrics_result()``."""
        p_flat = self._flat_pred(y_pred)
        names = self._output_names(len(p_flat))
        y_flat = self._flat_y(y, len(p_flat), names, "y")
        if self._compiled_metrics is None:
            self._build_compiled(y_flat, p_flat)
        sw_flat = self._flat_y(sample_weight, len(p_flat), names, "sample_weight") \
            if isinstance(sample_weight, (dict, list, tuple)) else [sample_weight] * len(p_flat)
        for cm in self._compiled_metrics:
            i = cm.output
            # The prediction Tensor itself (its buffer stays on the backend, and its mask, as Keras's y_pred's
            # _keras_mask, stays attached for the metrics).
            cm.obj.update_state(y_flat[i], p_flat[i], sample_weight=sw_flat[i] if cm.weighted else None)
        if self._per_output_loss_trackers and getattr(self, "_last_output_losses", None):
            # Keras's CompileLoss weights each batch's per-output loss by `y_pred.shape[0]`; inside the traced step
            # of the TensorFlow backend (the default, run_eagerly=False) that static size is unknown (None), so
            # each batch counts once: the epoch value is the plain mean of the batch values, unlike "loss" (weighted
            # by batch size). With a partial last batch the per-output losses then do not add up to "loss". We
            # reproduce both: size-weighted with run_eagerly=True, plain mean otherwise.
            n = _batch_len(x) if (x is not None and self.run_eagerly) else None
            for t, l in zip(self._per_output_loss_trackers, self._last_output_losses):
                t.update_state(float(l.numpy()), sample_weight=n)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict:
        """{name: value} for every metric, sorted by name (as Keras's logs)."""
        out = {}
        for m in self.metrics:
            r = m.result()
            if isinstance(r, dict):
                out.update({k: _to_float(v) for k, v in r.items()})
            else:
                out[m.name] = _to_float(r)
        return dict(sorted(out.items()))

    # -- steps ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _unpack(data):
        if isinstance(data, tuple):
            if len(data) == 1:
                return data[0], None, None
            if len(data) == 2:
                return data[0], data[1], None
            if len(data) == 3:
                return data
        return data, None, None

    def train_step(self, data):
        """One optimization step on a batch ``(x, y, sample_weight)``; returns the logs. Override for custom
        training (the default: forward in training mode, compute_loss, GradientTape, optimizer.apply).

        With the compiled step (``compile(jit_compile="auto" / True)``, models/compiled.py) the forward pass,
        losses and gradients of a batch replay the plan recorded at the first batch of its signature; the
        optimizer, loss tracker and metrics run after it either way."""
        x, y, sample_weight = self._unpack(data)
        if not self.built:
            # As Keras's fit (which builds the model before the first step): a subclassed model creates its weights
            # in its first call, so run it once, or the first step would find no variables and not update.
            with no_grad():
                self(x, training=False)
        variables = self.trainable_weights
        steps = self._compiled_steps_for_run()
        if steps is not None:
            y_pred, loss, grads, output_losses = steps.train(x, y, sample_weight, variables)
            object.__setattr__(self, "_last_output_losses", output_losses)  # bookkeeping, not a tracked attribute
        else:
            y_pred, loss, grads = self._forward_backward(x, y, sample_weight, variables)
        if variables:
            self.optimizer.apply(grads, variables)  # optimizer.apply unscales the gradients
        n = _batch_len(x)
        self._loss_tracker.update_state(float(loss.numpy()), sample_weight=n)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def _forward_backward(self, x, y, sample_weight, variables):
        """train_step up to the optimizer: (predictions, loss, gradients of ``variables`` or [])."""
        self._clear_activity_losses()
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)  # as Keras: loss_scale_factor / LossScaleOptimizer
        grads = tape.gradient(scaled_loss, variables) if variables else []
        return y_pred, loss, list(grads)

    def _forward_loss(self, x, y, sample_weight):
        """test_step's computation: (predictions, loss) in inference mode."""
        self._clear_activity_losses()
        with no_grad():
            y_pred = self(x, training=False)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        return y_pred, loss

    def _forward_predict(self, x):
        with no_grad():
            return self(x, training=False)

    def _compiled_steps_for_run(self):
        """The model's compiled steps when the built-in steps may use them (jit_compile on, not run_eagerly)."""
        if not self.jit_compile or self.run_eagerly:
            return None
        steps = self.__dict__.get("_compiled_steps")
        if steps is None:
            from fastnn.models.compiled import CompiledSteps

            steps = CompiledSteps(self)
            object.__setattr__(self, "_compiled_steps", steps)
        return steps

    def test_step(self, data):
        """One evaluation step (inference mode): updates the loss tracker and the metrics; returns the logs."""
        x, y, sample_weight = self._unpack(data)
        steps = self._compiled_steps_for_run()
        if steps is not None:
            y_pred, loss, output_losses = steps.test(x, y, sample_weight)
            object.__setattr__(self, "_last_output_losses", output_losses)
        else:
            y_pred, loss = self._forward_loss(x, y, sample_weight)
        n = _batch_len(x)
        self._loss_tracker.update_state(float(loss.numpy()), sample_weight=n)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = self._unpack(data)
        steps = self._compiled_steps_for_run()
        if steps is not None:
            return steps.predict(x)
        return self._forward_predict(x)

    # -- fit ------------------------------------------------------------------------------------------------------
    def _prepare(self, x, y, sample_weight, what):
        if x is None:
            raise ValueError(f"{what}: `x` must be given (NumPy arrays or fastnn Tensors)")
        x = _standardize(x, "x")
        y = _standardize(y, "y")
        sample_weight = _standardize(sample_weight, "sample_weight")
        n = _num_samples(("x", x), ("y", y), ("sample_weight", sample_weight))
        return x, y, sample_weight, n

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains the model on NumPy data for ``epochs`` epochs; returns a ``History``.

        Args:
            x, y: arrays (or lists / dicts of arrays for several inputs / outputs) with the same first axis.
            batch_size: samples per step (32). epochs: index of the last epoch (training starts at initial_epoch).
            verbose: "auto" / 1 (progress bar; one line per epoch when stdout is not a terminal), 2 (one line per
                epoch), 0 (silent).
            callbacks: list of Callback.
            validation_split: fraction of the data (taken from the end, before shuffling) held out for validation.
            validation_data: (x_val, y_val) or (x_val, y_val, sample_weight_val); overrides validation_split.
            shuffle: reshuffle the training data every epoch (with fastnn's seeded generator).
            class_weight: {class index: weight}, turned into sample weights.
            sample_weight: per-sample weights.
            initial_epoch: the epoch to start at (0-based; Keras's resume argument): epochs initial_epoch ..
                epochs - 1 run, numbered as in the uninterrupted run (History.epoch, "Epoch i/N", callbacks). A
                BackupAndRestore callback that finds a backup overrides it with the epoch the backup reached.
            steps_per_epoch: batches per epoch (the data is cycled, reshuffled at each pass).
        """
        self._assert_compiled("fit")
        batch_size = _check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, but received {epochs!r}")
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"fit: verbose must be 'auto', 0, 1 or 2, but received {verbose!r}")
        _should_eval(0, validation_freq)  # a bad validation_freq fails before any training
        x, y, sample_weight, n = self._prepare(x, y, sample_weight, "fit")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        val = None
        if validation_data is not None:
            vd = tuple(validation_data)
            if len(vd) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"val_sample_weight), but received a tuple of length {len(vd)}")
            vx, vy, vsw, _ = self._prepare(vd[0], vd[1], vd[2] if len(vd) == 3 else None, "fit (validation_data)")
            val = (vx, vy, vsw)
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be a float in (0, 1), but received {validation_split}")
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation data for "
                                 f"{n} samples")
            val = (_slice(x, slice(split, None)), _slice(y, slice(split, None)),
                   _slice(sample_weight, slice(split, None)))
            x, y, sample_weight = _slice(x, slice(0, split)), _slice(y, slice(0, split)), \
                _slice(sample_weight, slice(0, split))
            n = split
        if n == 0:
            raise ValueError("fit: the training data is empty (0 samples)")
        if class_weight is not None:
            # As Keras: class weights weight the training data only (after the validation split), never the
            # validation data.
            sample_weight = _class_weights_to_sample_weights(y, class_weight)
        steps = steps_per_epoch or int(math.ceil(n / batch_size))
        cbs = _callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self)
        cbs.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        self.stop_training = False
        self._in_fit = True
        rng = _utils.rng()
        batches = _BatchIterator(n, batch_size, shuffle, rng, steps_per_epoch)
        # BackupAndRestore saves / restores the random streams through this (models/training_state.py), and sets
        # `_initial_epoch` in on_train_begin as in Keras. Unlike Keras (which never clears it, so a later fit of
        # the same model would start at a stale epoch), fastnn clears it at every fit.
        from fastnn.models.training_state import FitPosition

        position = self._fit_position = FitPosition(self, batches)
        self._initial_epoch = None
        logs = {}
        nan_reported = False
        try:
            cbs.on_train_begin()
            initial_epoch = self._initial_epoch or initial_epoch  # Keras's rule
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                # Batch hooks no callback overrides are not dispatched (History and a silent fit have none).
                batch_begin = cbs.wants("on_train_batch_begin")
                batch_end = cbs.wants("on_train_batch_end")
                position.epoch_begin(epoch)
                epoch_batches = list(batches.epoch())
                # A mid-epoch backup resumes after the batches it had trained (fastnn; Keras restarts the epoch).
                skip = position.steps_to_skip(epoch)
                for step, index in enumerate(epoch_batches):
                    if step < skip:
                        continue
                    begin, end = _execution_of(step, self.steps_per_execution)
                    if step == begin and batch_begin:
                        cbs.on_train_batch_begin(begin)
                    data = (_slice(x, index), _slice(y, index), _slice(sample_weight, index))
                    if data[2] is None:
                        data = data[:2] if data[1] is not None else (data[0],)
                    logs = _logs_to_float(self.train_step(data))
                    loss = logs.get("loss")
                    if not nan_reported and isinstance(loss, float) and not math.isfinite(loss):
                        warnings.warn(f"fit: the loss became {loss} at epoch {epoch + 1}, batch {step + 1}; training "
                                      "diverged (use fastnn.callbacks.TerminateOnNaN to stop at once)",
                                      RuntimeWarning, stacklevel=2)
                        nan_reported = True
                    position.steps_done = step + 1
                    if step == end or step == len(epoch_batches) - 1:
                        if batch_end:
                            cbs.on_train_batch_end(end, logs)
                        if self.stop_training:
                            break
                # As Keras: the metrics' results, or the last step's logs when a custom train_step returns others.
                results = self.get_metrics_result()
                epoch_logs = dict(results) if set(logs) <= set(results) else dict(logs)
                if val is not None and _should_eval(epoch, validation_freq):
                    val_logs = self.evaluate(val[0], val[1], batch_size=validation_batch_size or batch_size,
                                             sample_weight=val[2], verbose=0, steps=validation_steps,
                                             return_dict=True, _callbacks=cbs)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                    # Keras's CallbackList passes logs through tree.map_structure, which sorts dict keys: the
                    # validation values end up interleaved by name, not appended.
                    epoch_logs = dict(sorted(epoch_logs.items()))
                cbs.on_epoch_end(epoch, epoch_logs)
                position.epoch_end()
                logs = epoch_logs
                if self.stop_training:
                    break
            if epochs > 0:  # Keras: with use_ema, the variables take their moving averages at the end
                self.optimizer.finalize_variable_values(self.trainable_weights)
            cbs.on_train_end(logs)
        finally:
            self._in_fit = False
            self._fit_position = None
        return self.history

    # -- evaluate / predict ---------------------------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """The loss and metrics over the data (inference mode). Returns a scalar (loss only), a list
        ``[loss, metric...]``, or a dict with ``return_dict=True``."""
        inner = kwargs.pop("_callbacks", None)
        if kwargs:
            raise TypeError(f"evaluate: unexpected arguments {sorted(kwargs)}")
        if not self.compiled:
            raise RuntimeError(f"You must call `compile()` before using the model in `evaluate()`. (Model "
                               f'"{self.name}")')
        batch_size = _check_batch_size(batch_size)
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"evaluate: verbose must be 'auto', 0, 1 or 2, but received {verbose!r}")
        x, y, sample_weight, n = self._prepare(x, y, sample_weight, "evaluate")
        if inner is not None:
            cbs = inner
        else:
            cbs = _callbacks.CallbackList(callbacks, add_progbar=verbose != 0, model=self)
            total = steps or int(math.ceil(n / batch_size))
            cbs.set_params({"verbose": verbose, "epochs": 1, "steps": total})
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        n_batches = int(math.ceil(n / batch_size)) if steps is None else min(steps, int(math.ceil(n / batch_size)))
        batch_begin, batch_end = cbs.wants("on_test_batch_begin"), cbs.wants("on_test_batch_end")
        for step, index in enumerate(_BatchIterator(n, batch_size, False, None, None).epoch()):
            if step >= n_batches:
                break
            begin, end = _execution_of(step, self.steps_per_execution)
            if step == begin and batch_begin:
                cbs.on_test_batch_begin(begin)
            data = (_slice(x, index), _slice(y, index), _slice(sample_weight, index))
            logs = _logs_to_float(self.test_step(data))
            if (step == end or step == n_batches - 1) and batch_end:
                cbs.on_test_batch_end(end, logs)
        logs = self.get_metrics_result()
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        return self._flatten_in_order(logs)

    def _flatten_in_order(self, logs):
        """Keras's ``_flatten_metrics_in_order``: the values of ``logs`` whose keys are the names of the metric
        objects (the loss tracker, each compiled metric's own name, the per-output loss trackers), in that order,
        then every other key sorted. As in Keras, a name listed twice (``metrics=["mae"]`` with
        ``weighted_metrics=["mae"]``: both objects are named "mae") puts its value in the list twice, so the list
        can be longer than the dict: ``[loss, mae, mae, weighted_mae]``; and metrics of several outputs, whose
        log keys carry the output's prefix, come after the losses in sorted order."""
        names = []
        for m in self.metrics:
            if isinstance(m, _CompileMetrics):
                names += [sub.name for sub in m.metrics]
            else:
                names.append(m.name)
        out = [logs[k] for k in names if k in logs]
        out += [logs[k] for k in sorted(logs) if k not in names]
        return out[0] if len(out) == 1 else out

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs on ``x`` (inference mode), batch by batch, as NumPy arrays."""
        batch_size = _check_batch_size(batch_size)
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"predict: verbose must be 'auto', 0, 1 or 2, but received {verbose!r}")
        x = _standardize(x, "x")
        n = _num_samples(("x", x))
        cbs = _callbacks.CallbackList(callbacks, add_progbar=verbose != 0, model=self)
        total = steps or int(math.ceil(n / batch_size))
        cbs.set_params({"verbose": verbose, "epochs": 1, "steps": total})
        cbs.on_predict_begin()
        outs = []
        n_batches = int(math.ceil(n / batch_size)) if steps is None else min(steps, int(math.ceil(n / batch_size)))
        execution_start = 0
        # Hooks no callback overrides are not dispatched, and then the per-batch outputs the end hook would receive
        # (a concatenation and a host copy each batch) are not built.
        batch_begin, batch_end = cbs.wants("on_predict_batch_begin"), cbs.wants("on_predict_batch_end")
        single = B.is_buffer(x)
        for step, index in enumerate(_BatchIterator(n, batch_size, False, None, None).epoch()):
            if step >= n_batches:
                break
            begin, end = _execution_of(step, self.steps_per_execution)
            if step == begin:
                if batch_begin:
                    cbs.on_predict_batch_begin(begin)
                execution_start = len(outs)
            out = self.predict_step((B.getitem(x, index) if single else _slice(x, index),))
            outs.append(out._data if type(out) is Tensor else map_structure(_output_buffer, out))
            if (step == end or step == n_batches - 1) and batch_end:
                # As Keras: the outputs of every batch of the execution, concatenated.
                cbs.on_predict_batch_end(end, {"outputs": _to_host(_concatenate_outputs(outs[execution_start:]))})
        cbs.on_predict_end()
        if not outs:
            raise ValueError("predict: the input is empty (0 samples)")
        return _to_host(_concatenate_outputs(outs))

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on one batch. As in Keras 3, the metrics are reset first: the returned loss and metrics
        are this batch's alone."""
        self._assert_compiled("train_on_batch")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight, "train_on_batch")
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError("Arguments `sample_weight` and `class_weight` cannot be specified at the same time. "
                                 f"Received: sample_weight={sample_weight}, class_weight={class_weight}")
            sample_weight = _class_weights_to_sample_weights(y, class_weight)
        self.reset_metrics()
        logs = {k: _to_float(v) for k, v in self.train_step((x, y, sample_weight)).items()}
        return logs if return_dict else self._flatten_in_order(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model in `test_on_batch()`.")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight, "test_on_batch")
        self.reset_metrics()  # this batch's loss and metrics alone, as in Keras 3
        logs = {k: _to_float(v) for k, v in self.test_step((x, y, sample_weight)).items()}
        return logs if return_dict else self._flatten_in_order(logs)

    def predict_on_batch(self, x):
        out = self.predict_step((_standardize(x, "x"),))
        return _to_host(map_structure(_output_buffer, out))

    # -- config ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config, custom_objects=None):
        """As Keras's ``Model.from_config``: a functional config (name, layers, input_layers, output_layers) rebuilds
        the functional model when the class can be revived as one (Model, Functional, or a subclass whose
        ``__init__`` takes Functional's arguments or ``*args, **kwargs``); any other config goes to the class's
        constructor."""
        import inspect

        from fastnn.models.functional import Functional

        functional_keys = ("name", "layers", "input_layers", "output_layers")
        is_functional_config = all(key in config for key in functional_keys)
        argspec = inspect.getfullargspec(cls.__init__)
        functional_init_args = inspect.getfullargspec(Functional.__init__).args[1:]
        revivable_as_functional = (cls in (Functional, Model) or argspec.args[1:] == functional_init_args
                                   or (argspec.varargs == "args" and argspec.varkw == "kwargs"))
        if is_functional_config and revivable_as_functional:
            return Functional.from_config.__func__(Functional if cls is Model else cls, config,
                                                   custom_objects=custom_objects)
        try:
            return cls(**config)
        except TypeError as e:
            raise TypeError("Unable to revive model from config. When overriding the `get_config()` method, make "
                            "sure that the returned config contains all items used as arguments in the  constructor "
                            f"to {cls}, which is the default behavior. You can override this default behavior by "
                            "defining a `from_config(cls, config)` class method to specify how to create an "
                            f"instance of {cls.__name__} from its config.\n\nReceived config={config}\n\nError "
                            f"encountered during deserialization: {e}") from e

    def to_json(self, **kwargs):
        """The model's config (``serialize_keras_object(model)``: architecture, build and compile configs, no
        weights) as a JSON string; ``fastnn.models.model_from_json`` rebuilds the model.

        Args:
            **kwargs: passed on to ``json.dumps`` (e.g. ``indent=2``).
        """
        import json

        from fastnn.saving import serialization_lib

        return json.dumps(serialization_lib.serialize_keras_object(self), **kwargs)

    def get_compile_config(self):
        """What ``compile`` was given, as Keras's ``get_compile_config``: optimizer (the optimizer object's
        config), loss, loss_weights, metrics, weighted_metrics, run_eagerly, steps_per_execution, jit_compile, each
        serialized with ``serialize_keras_object`` ({} for a model that was never compiled)."""
        if not self.compiled:
            return {}
        from fastnn.saving import serialization_lib

        return serialization_lib.serialize_dict({
            "optimizer": self.optimizer, "loss": self._loss_spec, "loss_weights": self._loss_weights_spec,
            "metrics": self._metrics_spec, "weighted_metrics": self._weighted_metrics_spec,
            "run_eagerly": self.run_eagerly, "steps_per_execution": self.steps_per_execution,
            "jit_compile": self.jit_compile})

    def compile_from_config(self, config):
        """Compiles the model from ``get_compile_config()``'s dict (Keras's ``compile_from_config``): the optimizer,
        losses and metrics are deserialized first; the optimizer's variables are created when the model is built.
        A subclass that overrides ``compile`` is not compiled (with Keras's warning)."""
        if type(self).compile is not Model.compile:
            warnings.warn("`compile()` was not called as part of model loading because the model's `compile()` "
                          "method is custom. All subclassed Models that have `compile()` overridden should also "
                          "override `get_compile_config()` and `compile_from_config(config)`. Alternatively, you "
                          "can call `compile()` manually after loading.", stacklevel=2)
            return
        from fastnn.saving import serialization_lib

        config = serialization_lib.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)

    # -- saving (h-core, issue 14): Keras 3's Model.save / save_weights / load_weights -------------------------------
    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Saves the model (architecture, weights, optimizer state) to a ``.keras`` file, or to a legacy ``.h5`` /
        ``.hdf5`` file; the write is atomic. ``overwrite=False`` asks before replacing a file."""
        from fastnn.saving import saving_api

        return saving_api.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Saves the weights and the optimizer state to a ``.weights.h5`` file (Keras 3's layout), or the weights to
        a legacy ``.h5`` file (tf.keras's layout)."""
        from fastnn.saving import saving_api

        return saving_api.save_weights(self, filepath, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights (and optimizer state) from a ``.weights.h5`` or ``.keras`` file, or a legacy ``.h5`` weights
        file (``by_name=True``: matched by layer name). ``skip_mismatch=True`` warns about and skips the layers
        whose weights do not fit instead of raising."""
        from fastnn.saving import saving_api

        return saving_api.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """The (uncompiled unless the JSON has a compile config) model of ``Model.to_json()``'s string, as Keras's
    ``keras.models.model_from_json``.

    Args:
        json_string: the JSON text of a model config (fastnn's or Keras 3's).
        custom_objects: ``{name: class or function}`` for the custom objects the config names.
    """
    import json

    from fastnn.saving import serialization_lib

    return serialization_lib.deserialize_keras_object(json.loads(json_string), custom_objects=custom_objects)


def _should_eval(epoch, validation_freq):
    """Keras's ``_should_eval``: an int runs validation every ``validation_freq`` epochs, a list at those (1-based)
    epochs."""
    epoch = epoch + 1
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        return epoch % validation_freq == 0
    if isinstance(validation_freq, list):
        return epoch in validation_freq
    raise ValueError(f"Expected `validation_freq` to be a list or int. Received: validation_freq={validation_freq} of "
                     f"the type {type(validation_freq)}.")


def _execution_of(step, steps_per_execution):
    """(first, last) batch index of the execution holding batch ``step``; Keras reports ``last`` as
    ``first + steps_per_execution - 1`` even when the data ends sooner."""
    begin = step - step % steps_per_execution
    return begin, begin + steps_per_execution - 1


def _concatenate_outputs(outs):
    """Per-batch predictions (buffers, or lists / tuples / dicts of buffers) joined along the batch axis."""
    first = outs[0]
    if isinstance(first, (list, tuple)):
        return type(first)(B.concatenate([o[i] for o in outs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: B.concatenate([o[k] for o in outs]) for k in first}
    return B.concatenate(outs)


# NumPy boundary: predictions leave as NumPy arrays (the structure of the model's outputs kept).
def _to_host(structure):
    return map_structure(B.to_numpy, structure)


class _BatchIterator:
    """Index batches over n samples: slices when not shuffling (views), index arrays when shuffling. With
    ``steps_per_epoch`` the position carries over between epochs and wraps around (reshuffling)."""

    def __init__(self, n, batch_size, shuffle, rng, steps_per_epoch):
        self.n, self.batch_size, self.shuffle, self.rng = n, batch_size, shuffle, rng
        self.steps_per_epoch = steps_per_epoch
        self._order = None
        self._pos = 0
        self._pass_state = None  # the generator's state just before the current pass's permutation was drawn

    def _new_pass(self):
        if self.shuffle:
            self._pass_state = B.random_generator_state(self.rng)
            self._order = B.random_permutation(self.rng, self.n)
        else:
            self._order = None
        self._pos = 0

    # The position as plain data, for a resumed fit (models/training_state.py): the permutation is not stored but
    # drawn again from the generator state it came from.
    def get_state(self):
        return {"pos": self._pos, "pass_state": self._pass_state if self._order is not None else None}

    def set_state(self, state):
        self._pos = int(state["pos"])
        self._pass_state = state["pass_state"]
        if self.shuffle and self._pass_state is not None:
            gen = B.random_generator()
            B.set_random_generator_state(gen, self._pass_state)
            self._order = B.random_permutation(gen, self.n)
        else:
            self._order = None

    def _next(self):
        if self._order is None and self.shuffle or self._pos >= self.n:
            self._new_pass()
        start, stop = self._pos, min(self._pos + self.batch_size, self.n)
        self._pos = stop
        return B.getitem(self._order, slice(start, stop)) if self._order is not None else slice(start, stop)

    def epoch(self):
        if self.steps_per_epoch is None:
            self._new_pass()
            while self._pos < self.n:
                yield self._next()
        else:
            # As Keras's EpochIterator: an epoch continues the previous one's pass over the data; when the data runs
            # out before steps_per_epoch batches, the epoch ends early with Keras's warning, and the next epoch
            # starts a new pass (reshuffled). It never wraps around inside an epoch.
            if self._order is None and self.shuffle or self._pos >= self.n:
                self._new_pass()
            for _ in range(self.steps_per_epoch):
                if self._pos >= self.n:
                    warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or "
                                  "generator can generate at least `steps_per_epoch * epochs` batches. You may need "
                                  "to use the `.repeat()` function when building your dataset.", UserWarning,
                                  stacklevel=3)
                    break
                yield self._next()
