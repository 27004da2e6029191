"""Optimizers with Keras 3's update formulas.

``apply_gradients(zip(grads, vars))`` (or ``apply(grads, vars)``) follows keras/src/optimizers/base_optimizer.py:
it divides the gradients by ``loss_scale_factor``, accumulates them over ``gradient_accumulation_steps`` calls
(updating on every N-th call with their mean), clips them (``clipvalue``, ``clipnorm`` per variable,
``global_clipnorm``), applies decoupled ``weight_decay`` and the optimizer's update, keeps the exponential moving
average of the variables (``use_ema``, overwriting them every ``ema_overwrite_frequency`` iterations), then the
variables' constraints, and increments ``iterations``. The element-wise optimizers (SGD, Adam, AdamW, Adagrad,
RMSprop, Adadelta, Adamax, Nadam, Lion, Ftrl), Lamb (a two-pass kernel for its per-variable trust ratio) and
Adafactor (factored row / column second moments) update every variable of one dtype in one fused C++ call
(``csrc/cpu/optimizer.cpp``). Step-dependent scalars (bias corrections, the
learning rate from a schedule) are computed here once per step.
"""
from __future__ import annotations

import itertools
import math
import numbers
import re
import warnings
import weakref

import numpy as np

from fastnn import backend
from fastnn.autograd import Tensor, Variable
from fastnn.autograd.dtypes import KERNEL_FLOAT_DTYPES as _ROW_KERNEL_DTYPES  # adam_rows_update's dtypes
from fastnn.optimizers.schedules import LearningRateSchedule


# -- a stable identity per variable ------------------------------------------------------------------------------
# The optimizer's state (slots, moving averages, gradient accumulators) is keyed by a number drawn once per Variable
# from a counter that never repeats, not by id(variable): CPython reuses the id of a collected object, and an
# optimizer keyed by ids could hand a dead variable's Adam moments to a new variable that happens to get its address.
# The registry maps id -> (weak reference, key); an entry whose referent died is replaced, so a reused id always
# draws a fresh key (the weakref callback also drops dead entries). fastnn.Variable has __slots__ (no room for an
# attribute), hence the side table.
_variable_keys = {}
_key_counter = itertools.count()


def _var_key(v) -> int:
    """The never-reused key of the Variable ``v`` (drawn the first time an optimizer sees it)."""
    vid = id(v)
    entry = _variable_keys.get(vid)
    if entry is not None and entry[0]() is v:
        return entry[1]
    key = next(_key_counter)

    def _forget(ref, vid=vid):
        current = _variable_keys.get(vid)
        if current is not None and current[0] is ref:
            del _variable_keys[vid]

    _variable_keys[vid] = (weakref.ref(v, _forget), key)
    return key


class _StateVariable:
    """One entry of ``Optimizer.variables`` in Keras's order: a name (Keras's variable path, for messages), the
    value as a buffer, and how a loaded value is put back (``load_own_variables`` assigns by position)."""

    __slots__ = ("name", "_get", "_set")

    def __init__(self, name, get, set_):
        self.name, self._get, self._set = name, get, set_

    def value(self):
        return self._get()

    def assign(self, array):
        self._set(array)


def _buffer_state(name, buf):
    """A state entry backed by a buffer the optimizer updates in place (slots, averages, accumulators)."""

    def set_(array):
        array = backend.asarray(array)
        if tuple(array.shape) != tuple(buf.shape):
            raise ValueError(f"Optimizer variable {name} has shape {tuple(buf.shape)} not compatible with provided "
                             f"weight shape {tuple(array.shape)}.")
        backend.copyto(buf, backend.astype(array, buf.dtype))

    return _StateVariable(name, lambda: buf, set_)


def _variable_state(variable, name=None):
    """A state entry backed by a fastnn Variable (iterations, step_counter, dynamic_scale)."""

    def set_(array):
        array = backend.asarray(array)
        if tuple(array.shape) != tuple(variable._data.shape):
            raise ValueError(f"Optimizer variable {name or variable.name} has shape {tuple(variable._data.shape)} not "
                             f"compatible with provided weight shape {tuple(array.shape)}.")
        variable.assign(backend.astype(array, variable._data.dtype))

    return _StateVariable(name or variable.name, lambda: variable._data, set_)


def _scalar_of(array, name):
    array = backend.asarray(array)
    if tuple(array.shape) != ():
        raise ValueError(f"Optimizer variable {name} has shape () not compatible with provided weight shape "
                         f"{tuple(array.shape)}.")
    return float(backend.item(array))


def _check_positive(cls, name, value, allow_zero=True):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{cls}: {name} must be a {'non-negative' if allow_zero else 'positive'} float, but received "
                         f"{name}={value!r}")
    return float(value)


def _snake_case(name):
    """keras.src.utils.naming.to_snake_case: "SGD" -> "sgd", "RMSprop" -> "rm_sprop", "AdamW" -> "adam_w"."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _grad_array(g):
    """A gradient as a buffer: a Tensor's own buffer, a buffer as it is, host data (the user's array) converted."""
    if isinstance(g, Tensor):
        return g._data
    return g if backend.is_buffer(g) else backend.asarray(g)


def _count(v) -> int:
    """The value of an int64 counter Variable (iterations, step_counter) as a Python int."""
    return int(backend.item(v._data))


def _copy_grads_inside_variables(grads, variables):
    """The gradients, with a copy of each one that shares memory with any of the variables (a backward that
    returned a variable's own buffer, or a user passing ``w.numpy()``): the fused update writes the variables
    while it reads the gradients, and optimizer_update rejects such overlaps. Only a gradient with the same
    memory owner as some variable gets the exact shares_memory test, so the usual step (fresh gradients)
    costs one dictionary lookup per gradient."""
    owners = {}
    for v in variables:
        owners.setdefault(backend.memory_owner_id(v._data), []).append(v._data)
    out = []
    for g in grads:
        same_owner = owners.get(backend.memory_owner_id(g))
        if same_owner and any(backend.shares_memory(g, w) for w in same_owner):
            g = backend.copy(g)
        out.append(g)
    return out


def _decayed(v, params, weight_decay):
    """The variable's own buffer after Keras's decoupled weight decay (var -= (var * weight_decay) * lr)."""
    w = v._own_buffer()
    if weight_decay:
        T = w.dtype.type
        backend.subtract(w, backend.multiply(backend.multiply(w, T(weight_decay)), T(params["lr"])), out=w)
    return w


class Optimizer:
    """Base class. Subclasses set ``_kind`` (the C++ kernel), ``_slot_names`` and ``_params(lr, step)``.

    Args:
        learning_rate: float, a LearningRateSchedule (evaluated at the number of ``apply`` calls, as Keras does) or
            a callable returning a float.
        weight_decay: decoupled weight decay factor (var -= var * weight_decay * lr before each update).
        clipnorm: clip each gradient to this L2 norm. clipvalue: clip each element to [-clipvalue, clipvalue].
        global_clipnorm: clip all gradients together to this global norm. Only one of the three may be set.
        use_ema: keep an exponential moving average of the variables: average = m * average + (1 - m) * var
            after every step, m = ``ema_momentum`` (0 on the first iteration). ``ema_overwrite_frequency``: every
            that many iterations the variables are overwritten with their averages; ``finalize_variable_values``
            (called by ``Model.fit`` at the end of training) does it once at the end.
        loss_scale_factor: ``scale_loss`` multiplies the loss by it and ``apply`` divides the gradients by it.
        gradient_accumulation_steps: an int >= 2: the variables are updated on every N-th ``apply`` call with the
            mean of the last N gradients; ``iterations`` then counts updates (calls // N).
    """

    _kind = None
    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=2)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if name is None:  # Keras's auto_name: "adam", "adam_1", ... from the same counter as layer names
            from fastnn.layers.layer import unique_name

            name = unique_name(_snake_case(cls))
        self.name = name
        self.weight_decay = _check_positive(cls, "weight_decay", weight_decay)
        self.clipnorm = _check_positive(cls, "clipnorm", clipnorm)
        self.clipvalue = _check_positive(cls, "clipvalue", clipvalue)
        self.global_clipnorm = _check_positive(cls, "global_clipnorm", global_clipnorm)
        if sum(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.loss_scale_factor = _check_positive(cls, "loss_scale_factor", loss_scale_factor, allow_zero=False)
        if gradient_accumulation_steps:
            if (isinstance(gradient_accumulation_steps, bool) or not isinstance(gradient_accumulation_steps,
                                                                                numbers.Integral)
                    or gradient_accumulation_steps < 2):
                raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                                 f"gradient_accumulation_steps={gradient_accumulation_steps!r}")
            gradient_accumulation_steps = int(gradient_accumulation_steps)
        self.gradient_accumulation_steps = gradient_accumulation_steps or None
        self.use_ema = bool(use_ema)
        if self.use_ema:
            if (isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real)
                    or not 0 <= ema_momentum <= 1):
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum!r}")
            if ema_overwrite_frequency and (isinstance(ema_overwrite_frequency, bool) or not isinstance(
                    ema_overwrite_frequency, numbers.Integral) or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency!r}")
        elif ema_overwrite_frequency:
            warnings.warn(f"{cls}: ema_overwrite_frequency={ema_overwrite_frequency!r} has no effect without "
                          "use_ema=True (as in Keras)", stacklevel=2)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        if isinstance(learning_rate, LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            self._learning_rate = _check_positive(cls, "learning_rate", learning_rate)
        self._iterations = Variable(backend.asarray(0, "int64"), trainable=False, name="iteration")
        # All keyed by _var_key(variable), a never-reused identity (see _var_key), not by id(variable).
        self._slots = {}  # key -> list of slot buffers (the update's state), aligned with _slot_names
        self._averages = {}  # key -> its moving average (use_ema)
        self._accumulated = {}  # key -> its gradient sum since the last update (gradient_accumulation_steps)
        self._known = {}  # key -> variable, in the order first seen (Keras's optimizer._trainable_variables)
        self._exclude_ids = set()  # keys
        self._exclude_names = None
        self.built = False

    @property
    def iterations(self):
        """The number of updates: ``apply`` calls, divided by ``gradient_accumulation_steps`` when set (Keras)."""
        if self.gradient_accumulation_steps:
            return Tensor._wrap(backend.asarray(_count(self._iterations) // self.gradient_accumulation_steps, "int64"))
        return self._iterations

    # -- learning rate ------------------------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule is evaluated at the number of ``apply`` calls, as in Keras)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(_count(self._iterations)))
        if callable(lr):
            return float(lr())
        return float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(value, LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                            "constructor argument, hence its learning rate is not settable.")
        if isinstance(value, LearningRateSchedule) or callable(value):
            self._learning_rate = value
        else:
            self._learning_rate = _check_positive(type(self).__name__, "learning_rate", value)

    lr = learning_rate

    def scale_loss(self, loss):
        """The loss times ``loss_scale_factor`` (Keras's train step differentiates this; ``apply`` unscales)."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    # -- variables ----------------------------------------------------------------------------------------------
    def build(self, var_list):
        """Creates the state of every variable of ``var_list`` (Keras's build: the moving averages, the gradient
        accumulators and the slots), so that ``variables`` lists them all in Keras's order before the first step
        (loading a saved optimizer builds it on ``model.trainable_variables`` and then assigns by position)."""
        for v in var_list:
            self._track(v)
        self.built = True

    def _track(self, v):
        key = _var_key(v)
        if key not in self._known:
            self._known[key] = v
            if self.use_ema:
                self._averages[key] = backend.zeros(v._data.shape, v._data.dtype)
            if self.gradient_accumulation_steps:
                self._accumulated[key] = backend.zeros(v._data.shape, v._data.dtype)
        return self._slots_for(v)

    def _slots_for(self, v):
        key = _var_key(v)
        s = self._slots.get(key)
        if s is None:
            s = [None if name is None else self._init_slot(name, v._data) for name in self._slot_names]
            self._slots[key] = s
        return s

    def _init_slot(self, name, like):
        return backend.zeros(like.shape, like.dtype)

    def _slot_groups(self):
        """The slots in the order Keras's build creates them: one tuple of slot indices per
        ``add_optimizer_variables`` call, whose slots are interleaved variable by variable (Adam's
        ["momentum", "velocity"] gives m0, v0, m1, v1, ...; a second call, amsgrad's velocity_hat, follows
        for all variables). The default: every slot in one call."""
        return [tuple(i for i, name in enumerate(self._slot_names) if name is not None)]

    def _var_label(self, v):
        return (getattr(v, "path", None) or getattr(v, "name", "variable")).replace("/", "_")

    def _slot_state(self, v, index, slots):
        return _buffer_state(f"{self.name}/{self._var_label(v)}_{self._slot_names[index]}", slots[index])

    def _learning_rate_state(self):
        """The learning rate as Keras's float32 variable, or None for a schedule or a callable (no variable)."""
        if isinstance(self._learning_rate, LearningRateSchedule) or callable(self._learning_rate):
            return None

        def set_(array):
            loaded = _scalar_of(array, f"{self.name}/learning_rate")
            # The file holds Keras's float32 variable; fastnn steps with the Python float. Keep the float this
            # optimizer already has (from its config) when it rounds to the saved value: a resumed run then uses
            # the very same learning rate, bit for bit.
            as_float32 = lambda value: backend.item(backend.asarray(value, "float32"))  # noqa: E731
            if as_float32(self._learning_rate) != as_float32(loaded):
                self._learning_rate = loaded

        return _StateVariable(f"{self.name}/learning_rate",
                              lambda: backend.asarray(self._learning_rate, "float32"), set_)

    def _extra_state(self):
        """State Keras adds after the slots (Nadam's u_product)."""
        return []

    def _state_variables(self):
        """Keras's optimizer.variables, in its order, as _StateVariable entries: iterations, the learning rate (a
        float32 variable in Keras unless it is a schedule or a callable), the moving averages (use_ema), the
        gradient accumulators, then the slots group by group (``_slot_groups``), then ``_extra_state``."""
        out = [_variable_state(self._iterations, f"{self.name}/iteration")]
        lr = self._learning_rate_state()
        if lr is not None:
            out.append(lr)
        known = list(self._known.items())
        for store, suffix in ((self._averages, "average"), (self._accumulated, "gradient_accumulator")):
            out.extend(_buffer_state(f"{self.name}/{self._var_label(v)}_{suffix}", store[key])
                       for key, v in known if key in store)
        for group in self._slot_groups():
            for key, v in known:
                slots = self._slots[key]
                out.extend(self._slot_state(v, i, slots) for i in group)
        out.extend(self._extra_state())
        return out

    @property
    def variables(self):
        """Keras's optimizer.variables in its order (see ``_state_variables``), as Tensors."""
        return [Tensor._wrap(s.value()) for s in self._state_variables()]

    # -- saving (Keras's Optimizer.save_own_variables / load_own_variables) ----------------------------------------
    def save_own_variables(self, store):
        """Writes ``variables`` into ``store`` as "0", "1", ... (Keras's order)."""
        for i, s in enumerate(self._state_variables()):
            store[str(i)] = s.value()

    def load_own_variables(self, store):
        """Assigns the saved variables by position; a different count warns and loads nothing, as Keras."""
        entries = self._state_variables()
        if len(store.keys()) != len(entries):
            msg = (f"Skipping variable loading for optimizer '{self.name}', because it has {len(entries)} variables "
                   f"whereas the saved optimizer has {len(store.keys())} variables. ")
            if len(entries) == 0:
                msg += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(msg, stacklevel=2)
            return
        values = [store[str(i)] for i in range(len(entries))]  # read all first: a bad file changes nothing
        for s, value in zip(entries, values):
            s.assign(value)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Variables, or regular expressions searched in variable names (Keras: re.search("|".join(var_names),
        variable.name)), that weight decay skips. Each call replaces the previous exclusions, as in Keras."""
        self._exclude_ids = {_var_key(v) for v in (var_list or [])}
        self._exclude_names = re.compile("|".join(set(var_names))) if var_names else None

    def _decays(self, v):
        if not self.weight_decay or _var_key(v) in self._exclude_ids:
            return False
        return self._exclude_names is None or self._exclude_names.search(getattr(v, "name", "") or "") is None

    # -- applying -----------------------------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Applies ``[(gradient, variable), ...]`` (e.g. ``zip(tape.gradient(loss, vars), vars)``)."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._iterations  # Keras returns the raw call counter (tf.keras compatibility)

    def _checked_pairs(self, grads, trainable_variables):
        """The (gradient array, variable) pairs with a gradient, checked; warns about the variables without one."""
        grads = list(grads)
        if trainable_variables is None:
            raise ValueError(f"{type(self).__name__}.apply: pass the trainable_variables the gradients belong to")
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: {len(grads)} gradients for {len(variables)} variables")
        pairs = []
        missing = []
        for g, v in zip(grads, variables):
            if not isinstance(v, Variable):
                raise TypeError(f"{type(self).__name__}: can only update fastnn.Variable objects, but received "
                                f"{type(v).__name__}")
            if g is None:
                missing.append(v.name)
                continue
            pairs.append((g, v))
        if not pairs:
            raise ValueError(f"No gradients provided for any variable: {[v.name for v in variables]}")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                          "`model.compile()`, did you forget to provide a `loss` argument?", stacklevel=3)
        out = []
        for g, v in pairs:
            if v._data.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: variable {v.name!r} has dtype {v.dtype}; only float "
                                "variables can be trained")
            ga = _grad_array(g)
            if ga.shape != v._data.shape:
                raise ValueError(f"{type(self).__name__}: gradient shape {ga.shape} does not match variable "
                                 f"{v.name!r} of shape {v._data.shape}")
            out.append((ga, v))
        return out

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if not grads:  # Keras: an empty gradient list is a no-op
            return
        pairs = self._checked_pairs(grads, trainable_variables)
        variables = [v for _, v in pairs]
        for v in variables:
            self._track(v)
        self.built = True
        arrays = []
        for ga, v in pairs:
            dtype = v._data.dtype
            if ga.dtype != dtype:
                ga = backend.astype(ga, dtype)
            ga = backend.contiguous(ga)  # the fused kernel reads C order
            if self.loss_scale_factor is not None:  # Keras: g / loss_scale_factor, in the variable's dtype
                # out=: a buffer for 0-D gradients too (a ufunc returns a NumPy scalar there; the kernel takes buffers)
                ga = backend.divide(ga, dtype.type(self.loss_scale_factor), out=backend.empty_like(ga))
            arrays.append(ga)
        arrays = _copy_grads_inside_variables(arrays, variables)
        row_squares = self._row_squares(pairs)
        steps = self.gradient_accumulation_steps
        if steps:
            accumulated = [self._accumulated[_var_key(v)] for v in variables]
            if (_count(self._iterations) + 1) % steps == 0:  # an update step: the mean of the last N gradients
                arrays = [backend.add(g, acc, out=backend.empty_like(g)) for g, acc in zip(arrays, accumulated)]
                for g in arrays:  # in place into the fresh sum (out=: a buffer for 0-D gradients too)
                    backend.divide(g, g.dtype.type(steps), out=g)
                for acc in accumulated:
                    backend.copyto(acc, 0)
                self._update(variables, arrays)
            else:
                for g, acc in zip(arrays, accumulated):
                    backend.add(acc, g, out=acc)
        else:
            self._update(variables, arrays, row_squares)
        if self.use_ema:
            self._update_moving_averages()
        for v in variables:
            c = getattr(v, "constraint", None)
            if c is not None:
                v.assign(c(v._data))
        self._iterations.assign_add(1)

    def _update_moving_averages(self):
        """Keras's _update_model_variables_moving_average over every variable seen, then the periodic overwrite."""
        iterations = _count(self.iterations)
        for key, v in self._known.items():
            average = self._averages[key]
            momentum = average.dtype.type(self.ema_momentum if iterations != 0 else 0.0)
            backend.copyto(average, backend.add(backend.multiply(momentum, average),
                                                backend.multiply(average.dtype.type(1) - momentum, v._data)))
        if self.ema_overwrite_frequency and (iterations + 1) % self.ema_overwrite_frequency == 0:
            for key, v in self._known.items():
                v.assign(self._averages[key])

    def finalize_variable_values(self, var_list):
        """With ``use_ema``, sets each variable to its moving average (Keras's Model.fit calls this at the end)."""
        if not self.use_ema:
            return
        var_list = list(var_list)
        unknown = [getattr(v, "name", repr(v)) for v in var_list if _var_key(v) not in self._averages]
        if unknown:
            raise ValueError(f"{type(self).__name__}.finalize_variable_values: variables {unknown} were never updated "
                             "by this optimizer, so they have no moving average")
        for v in var_list:
            v.assign(self._averages[_var_key(v)])

    def _grad_scales(self, grads):
        if self.clipnorm is not None:
            sq = backend.sum_squares(grads)
            return [self.clipnorm / max(math.sqrt(s), self.clipnorm) for s in sq]
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(backend.sum_squares(grads)))
            if not math.isfinite(norm):
                return [float("nan")] * len(grads)
            scale = self.global_clipnorm * min(1.0 / norm if norm > 0 else math.inf, 1.0 / self.global_clipnorm)
            return [scale] * len(grads)
        return None

    # Embedding tables: Keras squares TensorFlow's IndexedSlices gradient slice by slice (one slice per lookup) before
    # the slices are summed into a dense slot, so an optimizer whose formula squares the gradient (all but SGD and
    # Lion) adds sum_i g_i^2 per table row where the dense gradient would give (sum_i g_i)^2. Those optimizers
    # define _update_rows(variable, gradient, sums, params, decays): their Keras formula (backend ops) with the
    # per-row sums of the lookups' squares (fastnn.autograd.ops.embedding.lookup_row_sums) in place of g * g.
    # Clipping, loss scaling and gradient accumulation are not modelled on slices: with them the dense formula runs.
    # (Adamax takes the per-row sums of |g_i|: Keras's ops.abs acts on the slices too; _row_statistic = "abs".)
    _update_rows = None
    _row_statistic = "square"

    def _row_squares(self, pairs) -> dict:
        """{_var_key(variable): per-row sums of the squares (or |g|) of the lookups} for the gradients that came unchanged
        from embedding lookups."""
        if (self._update_rows is None or self.clipnorm is not None or self.clipvalue is not None
                or self.global_clipnorm is not None or self.gradient_accumulation_steps
                or self.loss_scale_factor is not None):
            return {}
        from fastnn.autograd.ops.embedding import lookup_row_sums

        out = {}
        for ga, v in pairs:
            if ga.dtype == v._data.dtype:
                sums = lookup_row_sums(ga, self._row_statistic)
                if sums is not None:
                    out[_var_key(v)] = sums
        return out

    def _update(self, variables, grads, row_squares=None):
        """One update of ``variables`` with ``grads`` (already unscaled and accumulated): clipping, weight decay and
        the optimizer's formula."""
        lr = self.learning_rate
        step = _count(self.iterations) + 1
        params = self._params(lr, step)
        params["lr"] = lr
        if self.clipvalue is not None:
            params["clipvalue"] = self.clipvalue
        self._before_update(step)
        scales = self._grad_scales(grads)
        groups = {}
        for i, v in enumerate(variables):
            if row_squares and _var_key(v) in row_squares:
                self._update_rows(v, grads[i], row_squares[_var_key(v)], params, self._decays(v))
                continue
            key = (v._data.dtype.str, self._decays(v))
            groups.setdefault(key, []).append(i)
        for (dt, decays), idx in groups.items():
            vs = [variables[i] for i in idx]
            slots = [self._slots_for(v) for v in vs]
            slot_lists = [None if self._slot_names[k] is None else [s[k] for s in slots]
                          for k in range(len(self._slot_names))]
            p = dict(params)
            p["weight_decay"] = self.weight_decay if decays else 0.0
            # _own_buffer(): the Variable's buffer itself (copied first if anything else holds it), written in place
            backend.optimizer_update(self._kind, [v._own_buffer() for v in vs], [grads[i] for i in idx], slot_lists,
                                     None if scales is None else [scales[i] for i in idx], p)

    def _before_update(self, step):
        pass

    def _params(self, lr, step) -> dict:
        return {}

    # -- config -------------------------------------------------------------------------------------------------
    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            from fastnn.optimizers import schedules

            lr = schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum, "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            from fastnn.optimizers import schedules

            config["learning_rate"] = schedules.deserialize(lr)
        return cls(**config)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: m = momentum * m - lr * g; var += m
    (nesterov: var += momentum * m - lr * g)."""

    _kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        if not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum != 0 else ()

    def _params(self, lr, step):
        return {"momentum": self.momentum, "nesterov": float(self.nesterov)}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Keras 3): m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon); ``amsgrad`` uses max(v_hat, v)."""

    _kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, bool(amsgrad)
        self._slot_names = ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def _slot_groups(self):
        # Keras's build: add_optimizer_variables(["momentum", "velocity"]), then (amsgrad) ("velocity_hat").
        return [(0, 1), (2,)] if self.amsgrad else [(0, 1)]

    def _params(self, lr, step):
        b1p, b2p = self.beta_1 ** step, self.beta_2 ** step
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon, "amsgrad": float(self.amsgrad),
                "alpha": lr * math.sqrt(1.0 - b2p) / (1.0 - b1p)}

    def _update_rows(self, v, g, squares, params, decays):
        # Keras's Adam with squares in place of g * g; 1 - beta is computed in double and then cast, as Keras's
        # ops.multiply(tensor, 1 - self.beta_1) does.
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        slots = self._slots_for(v)
        m, vel = slots[0], slots[1]
        # alpha in the variable's dtype, as Keras computes it (1 - beta^t rounded there: ~1e-5 relative in float32)
        local_step = T(_count(self.iterations) + 1)
        b1p, b2p = T(self.beta_1) ** local_step, T(self.beta_2) ** local_step
        alpha = T(params["lr"]) * T(math.sqrt(T(1) - b2p)) / (T(1) - b1p)
        if w.dtype in _ROW_KERNEL_DTYPES:
            # One pass in C++ (csrc/cpu/optimizer.cpp adam_rows_update): the operations below, in their order.
            backend.adam_rows_update(w, m, vel, slots[2] if self.amsgrad else None, backend.contiguous(g), squares,
                                     float(T(1 - self.beta_1)), float(T(1 - self.beta_2)), float(alpha),
                                     float(T(self.epsilon)))
            return
        # The same operations in Keras's order, written into two work buffers (``squares`` is this step's own): a
        # (V, D) table is megabytes, and fresh temporaries per operation cost more than the arithmetic.
        work = backend.subtract(g, m)
        backend.multiply(work, T(1 - self.beta_1), out=work)
        backend.add(m, work, out=m)
        backend.subtract(squares, vel, out=squares)
        backend.multiply(squares, T(1 - self.beta_2), out=squares)
        backend.add(vel, squares, out=vel)
        if self.amsgrad:
            backend.maximum(slots[2], vel, out=slots[2])
            vel = slots[2]
        backend.sqrt(vel, out=work)
        backend.add(work, T(self.epsilon), out=work)
        backend.multiply(m, alpha, out=squares)
        backend.divide(squares, work, out=squares)
        backend.subtract(w, squares, out=w)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)


class Adagrad(Optimizer):
    """acc += g^2; var -= lr * g / sqrt(acc + epsilon), acc starting at ``initial_accumulator_value`` (0.1)."""

    _kind = "adagrad"
    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = epsilon

    def _init_slot(self, name, like):
        return backend.full(like.shape, self.initial_accumulator_value, like.dtype)

    def _params(self, lr, step):
        return {"epsilon": self.epsilon}

    def _update_rows(self, v, g, squares, params, decays):
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        acc = self._slots_for(v)[0]
        backend.add(acc, squares, out=acc)
        step = backend.divide(backend.multiply(T(params["lr"]), g), backend.sqrt(backend.add(acc, T(self.epsilon))))
        backend.subtract(w, step, out=w)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """v = rho v + (1 - rho) g^2; var -= lr g / sqrt(v + eps) (centered: v - mean_g^2 + eps; optional momentum)."""

    _kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, float(momentum), epsilon, bool(centered)
        self._slot_names = ("velocity", "momentum" if self.momentum > 0 else None,
                            "average_gradient" if self.centered else None)

    def _slot_groups(self):
        # Keras's build: three separate add_optimizer_variables calls (velocity; momentum; average_gradient).
        return [(i,) for i, name in enumerate(self._slot_names) if name is not None]

    def _params(self, lr, step):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": float(self.centered)}

    def _update_rows(self, v, g, squares, params, decays):
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        rho, one_minus_rho = T(self.rho), T(1 - self.rho)  # as Keras: 1 - rho in double, then cast
        vel, mom, avg = self._slots_for(v)
        backend.add(backend.multiply(rho, vel), backend.multiply(one_minus_rho, squares), out=vel)
        if self.centered:
            backend.add(backend.multiply(rho, avg), backend.multiply(one_minus_rho, g), out=avg)
            denom = backend.add(backend.subtract(vel, backend.multiply(avg, avg)), T(self.epsilon))
        else:
            denom = backend.add(vel, T(self.epsilon))
        inc = backend.divide(backend.multiply(T(params["lr"]), g), backend.sqrt(denom))
        if mom is not None:
            backend.add(backend.multiply(T(self.momentum), mom), inc, out=mom)
            inc = mom
        backend.subtract(w, inc, out=w)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adadelta(Optimizer):
    """Adadelta (Keras 3 defaults: learning_rate 0.001, rho 0.95, epsilon 1e-7)."""

    _kind = "adadelta"
    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _params(self, lr, step):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _update_rows(self, v, g, squares, params, decays):
        # Keras squares the slices twice: sum_i g_i^2 into the gradient accumulator, and sum_i delta_i^2 =
        # (rms(delta_acc) / rms(grad_acc))^2 * sum_i g_i^2 into the delta accumulator.
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        rho, one_minus_rho, eps = T(self.rho), T(1 - self.rho), T(self.epsilon)
        acc_g, acc_d = self._slots_for(v)
        backend.add(backend.multiply(rho, acc_g), backend.multiply(one_minus_rho, squares), out=acc_g)
        factor = backend.divide(backend.sqrt(backend.add(acc_d, eps)), backend.sqrt(backend.add(acc_g, eps)))
        delta = backend.negative(backend.multiply(factor, g))
        backend.add(backend.multiply(rho, acc_d),
                    backend.multiply(one_minus_rho, backend.multiply(backend.multiply(factor, factor), squares)),
                    out=acc_d)
        backend.add(w, backend.multiply(T(params["lr"]), delta), out=w)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """m += (g - m)(1 - b1); u = max(b2 u, |g|); var -= lr / (1 - b1^t) * m / (u + epsilon)."""

    _kind = "adamax"
    _slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _params(self, lr, step):
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon,
                "alpha": lr / (1.0 - self.beta_1 ** step)}

    _row_statistic = "abs"

    def _update_rows(self, v, g, abs_sums, params, decays):
        # Keras's u = max(beta_2 u, |g|) with |g| taken slice by slice, then summed per row.
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        m, u = self._slots_for(v)
        backend.add(m, backend.multiply(backend.subtract(g, m), T(1 - self.beta_1)), out=m)
        backend.maximum(backend.multiply(T(self.beta_2), u), abs_sums, out=u)
        b1p = T(self.beta_1) ** T(_count(self.iterations) + 1)
        step = backend.divide(backend.multiply(T(params["lr"]), m),
                              backend.multiply(T(1) - b1p, backend.add(u, T(self.epsilon))))
        backend.subtract(w, step, out=w)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Keras 3's momentum schedule u_t = b1 (1 - 0.5 * 0.96^t))."""

    _kind = "nadam"
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._u_product = 1.0

    def _u_product_dtype(self):
        """The dtype of Keras's u_product variable: that of the first variable it is built on (float32 before)."""
        first = next(iter(self._known.values()), None)
        return first._data.dtype if first is not None else np.dtype("float32")

    def _before_update(self, step):
        # Kept in the dtype of the first variable, as Keras's u_product variable: the saved value (a variable of
        # that dtype) then restores the product exactly, and a resumed run continues bit for bit.
        self._u_product = float(backend.item(backend.asarray(self._u_product * (self.beta_1 * (1.0 - 0.5 * 0.96 ** step)),
                                                               self._u_product_dtype())))

    def _extra_state(self):
        # Keras's u_product variable, created in the dtype of the first variable it is built on (floatx otherwise)
        dtype = self._u_product_dtype()

        def set_(array):
            self._u_product = _scalar_of(array, f"{self.name}/variable")

        return [_StateVariable(f"{self.name}/variable", lambda: backend.asarray(self._u_product, dtype), set_)]

    def _params(self, lr, step):
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** step)
        u_t1 = self.beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))
        u_prod_t = self._u_product * u_t  # _before_update runs after _params: this is the product through step t
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon, "u_t": u_t, "u_t1": u_t1,
                "u_prod_t": u_prod_t, "u_prod_t1": u_prod_t * u_t1, "beta2_power": self.beta_2 ** step}

    def _update_rows(self, v, g, squares, params, decays):
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        m, vel = self._slots_for(v)
        backend.add(m, backend.multiply(backend.subtract(g, m), T(1 - self.beta_1)), out=m)
        backend.add(vel, backend.multiply(backend.subtract(squares, vel), T(1 - self.beta_2)), out=vel)
        m_hat = backend.add(backend.divide(backend.multiply(T(params["u_t1"]), m), T(1 - params["u_prod_t1"])),
                            backend.divide(backend.multiply(T(1 - params["u_t"]), g), T(1 - params["u_prod_t"])))
        b2p = T(self.beta_2) ** T(_count(self.iterations) + 1)  # in the variable's dtype, as Keras
        v_hat = backend.divide(vel, T(1) - b2p)
        step = backend.divide(backend.multiply(m_hat, T(params["lr"])),
                              backend.add(backend.sqrt(v_hat), T(self.epsilon)))
        backend.subtract(w, step, out=w)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (keras/src/optimizers/lion.py): var -= lr * sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g."""

    _kind = "lion"
    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, numbers.Real) or beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to "
                             f"SignSGD. Received: beta_1={beta_1!r}.")
        self.beta_1, self.beta_2 = beta_1, beta_2

    def _params(self, lr, step):
        return {"beta1": self.beta_1, "beta2": self.beta_2}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Ftrl(Optimizer):
    """Follow The Regularized Leader (keras/src/optimizers/ftrl.py), with L1, L2 and L2-shrinkage regularization:
    n' = n + g^2; z += g + 2 l2_shrinkage var - (n'^-p - n^-p) / lr * var;
    var = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 (l2 + beta / (2 lr))), p = ``learning_rate_power``."""

    _kind = "ftrl"
    _slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        checks = (("initial_accumulator_value", initial_accumulator_value, "positive or zero", lambda x: x >= 0),
                  ("learning_rate_power", learning_rate_power, "negative or zero", lambda x: x <= 0),
                  ("l1_regularization_strength", l1_regularization_strength, "positive or zero", lambda x: x >= 0),
                  ("l2_regularization_strength", l2_regularization_strength, "positive or zero", lambda x: x >= 0),
                  ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, "positive or zero",
                   lambda x: x >= 0),
                  ("beta", beta, "a float", lambda x: True))
        for arg, value, what, ok in checks:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
                raise ValueError(f"`{arg}` needs to be {what}. Received: {arg}={value!r}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def _init_slot(self, name, like):
        value = self.initial_accumulator_value if name == "accumulator" else 0.0
        return backend.full(like.shape, value, like.dtype)

    def _params(self, lr, step):
        return {"lr_power": self.learning_rate_power, "l1": self.l1_regularization_strength,
                "l2": self.l2_regularization_strength, "l2_shrinkage": self.l2_shrinkage_regularization_strength,
                "ftrl_beta": self.beta}

    def _update_rows(self, v, g, squares, params, decays):
        # keras/src/optimizers/ftrl.py term by term, the accumulator growing by the per-lookup squares.
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        lr = T(params["lr"])
        neg_power = T(-self.learning_rate_power)
        l1 = T(self.l1_regularization_strength)
        l2_reg = T(self.l2_regularization_strength) + T(self.beta) / (T(2) * lr)
        accum, linear = self._slots_for(v)
        grad_to_use = backend.add(g, backend.multiply(T(2.0 * self.l2_shrinkage_regularization_strength), w))
        new_accum = backend.add(accum, squares)
        new_pow = backend.power(new_accum, neg_power)
        shrink = backend.multiply(backend.divide(backend.subtract(new_pow, backend.power(accum, neg_power)), lr), w)
        backend.add(linear, backend.subtract(grad_to_use, shrink), out=linear)
        quadratic = backend.add(backend.divide(new_pow, lr), T(2) * l2_reg)
        clipped = backend.clip(linear, -l1, l1)
        backend.copyto(w, backend.divide(backend.subtract(clipped, linear), quadratic))
        backend.copyto(accum, new_accum)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength, "beta": self.beta}


class Lamb(Optimizer):
    """Lamb (keras/src/optimizers/lamb.py): Adam's bias-corrected step u = m_hat / (sqrt(v_hat) + epsilon), scaled
    per variable by the trust ratio ||var|| / ||u|| (1 when either norm is 0): var -= ratio * lr * u.

    Fused like the element-wise kinds: the C++ kernel (``lamb_update``) makes two passes per variable, the first
    updating m and v and summing the two norms (in float64, over fixed blocks), the second moving the variable."""

    _kind = "lamb"
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _params(self, lr, step):
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon,
                "beta1_power": self.beta_1 ** step, "beta2_power": self.beta_2 ** step}

    def _update_rows(self, v, g, squares, params, decays):
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        m, vel = self._slots_for(v)
        backend.add(m, backend.multiply(backend.subtract(g, m), T(1 - self.beta_1)), out=m)
        backend.add(vel, backend.multiply(backend.subtract(squares, vel), T(1 - self.beta_2)), out=vel)
        local_step = T(_count(self.iterations) + 1)
        b1p, b2p = T(self.beta_1) ** local_step, T(self.beta_2) ** local_step
        update = backend.divide(backend.divide(m, T(1) - b1p),
                                backend.add(backend.sqrt(backend.divide(vel, T(1) - b2p)), T(self.epsilon)))
        w_norm = math.sqrt(float(backend.item(backend.sum(backend.multiply(w, w)))))
        u_norm = math.sqrt(float(backend.item(backend.sum(backend.multiply(update, update)))))
        ratio = T(w_norm / u_norm) if w_norm > 0 and u_norm > 0 else T(1)
        backend.subtract(w, backend.multiply(ratio * T(params["lr"]), update), out=w)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adafactor(Optimizer):
    """Adafactor (keras/src/optimizers/adafactor.py). For a variable of rank >= 2 the second moment is factored over
    the last two axes: a row moment r (shape[:-1]) and a column moment c (shape[:-2] + shape[-1:]), both decayed
    with beta_2_t = 1 - t^beta_2_decay, and v = r / mean(r) (outer) c; rank < 2 keeps a full v. The step is
    g / sqrt(v), divided by max(1, rms / clip_threshold), times max(epsilon_2, rms(var)) * min(lr, 1 / sqrt(t)).

    ``relative_step`` is stored and serialized; as in Keras 3, the step uses min(lr, 1 / sqrt(t)) either way.
    Fused: the C++ kernel (``adafactor_update``) takes each variable's shape; its means and norms are accumulated
    in float64."""

    _kind = "adafactor"
    _slot_names = ("r", "c", "velocity")

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                 relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step

    def _init_slot(self, name, like):
        if name == "velocity":
            return backend.zeros(like.shape, like.dtype)
        if like.ndim < 2:  # Keras keeps scalar placeholders for r and c of an unfactored variable
            return backend.zeros((), like.dtype)
        shape = like.shape[:-1] if name == "r" else like.shape[:-2] + like.shape[-1:]
        return backend.zeros(shape, like.dtype)

    def _slot_state(self, v, index, slots):
        if index < 2 and v._data.ndim < 2:
            # Keras keeps r and c of an unfactored variable as int32 scalar Variable(0) placeholders (tracked, so
            # they are saved); they are never read, so a loaded value is checked for its shape and dropped.
            name = f"{self.name}/{getattr(v, 'name', 'variable')}"

            def set_(array):
                _scalar_of(array, name)

            return _StateVariable(name, lambda: backend.zeros((), "int32"), set_)
        return super()._slot_state(v, index, slots)

    def _params(self, lr, step):
        return {"local_step": float(step), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold}

    def _update_rows(self, v, g, squares, params, decays):
        # keras/src/optimizers/adafactor.py for a 2-D table with TensorFlow's IndexedSlices gradient: the squared
        # gradient is the per-lookup sum of squares, and rms(g / sqrt(v)) squares each lookup's slice too (its mean
        # over the dense shape: sum(squares / v) / size).
        w = _decayed(v, params, self.weight_decay if decays else 0.0)
        T = w.dtype.type
        lr, local_step, one = T(params["lr"]), T(params["local_step"]), T(1)
        r, c, vel = self._slots_for(v)
        rho_t = min(lr, one / T(math.sqrt(local_step)))
        rms_w = T(math.sqrt(float(backend.item(backend.mean(backend.multiply(w, w))))))
        alpha_t = max(T(self.epsilon_2), rms_w) * rho_t
        regulated = backend.add(squares, T(self.epsilon_1))
        beta_2_t = one - local_step ** T(self.beta_2_decay)
        backend.add(backend.multiply(beta_2_t, r), backend.multiply(one - beta_2_t, backend.mean(regulated, axis=-1)),
                    out=r)
        backend.add(backend.multiply(beta_2_t, c), backend.multiply(one - beta_2_t, backend.mean(regulated, axis=-2)),
                    out=c)
        row_scale = backend.divide(r, backend.mean(r, axis=-1, keepdims=True))
        backend.multiply(backend.reshape(row_scale, (-1, 1)), backend.reshape(c, (1, -1)), out=vel)
        u = backend.divide(g, backend.sqrt(vel))
        rms_u = T(math.sqrt(float(backend.item(backend.sum(backend.divide(squares, vel)))) / max(w.size, 1)))
        u_hat = backend.divide(u, max(one, rms_u / T(self.clip_threshold)))
        backend.subtract(w, backend.multiply(alpha_t, u_hat), out=w)

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling around ``inner_optimizer`` (keras/src/optimizers/loss_scale_optimizer.py).

    ``scale_loss(loss)`` multiplies the loss by the current scale (``initial_scale``, 2**15); ``apply`` skips the
    step when any gradient is not finite (halving the scale, resetting the counter), else divides the gradients by
    the scale, applies the inner optimizer and doubles the scale after ``dynamic_growth_steps`` finite steps in a
    row. ``iterations``, ``learning_rate`` and ``finalize_variable_values`` are the inner optimizer's."""

    _BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                      "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                      "loss_scale_factor": None, "gradient_accumulation_steps": None}

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000, name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                             "`loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in self._BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on the "
                                 "`inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError("LossScaleOptimizer: inner_optimizer must be a fastnn optimizer, but received "
                            f"{type(inner_optimizer).__name__}")
        initial_scale = _check_positive("LossScaleOptimizer", "initial_scale", initial_scale, allow_zero=False)
        if (isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, numbers.Integral)
                or dynamic_growth_steps < 1):
            raise ValueError("LossScaleOptimizer: dynamic_growth_steps must be an integer >= 1, but received "
                             f"dynamic_growth_steps={dynamic_growth_steps!r}")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.inner_optimizer.loss_scale_factor = None  # else the gradients would be unscaled twice
        self.step_counter = Variable(backend.asarray(0, "int64"), trainable=False, name="step_counter")
        self.dynamic_scale = Variable(backend.asarray(initial_scale, "float32"), trainable=False, name="dynamic_scale")

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    lr = learning_rate

    def _state_variables(self):
        # Keras: its own iterations and (unused) learning rate 0.0, step_counter, dynamic_scale, then the inner ones.
        unused_lr = _StateVariable(f"{self.name}/learning_rate", lambda: backend.asarray(0.0, "float32"),
                                   lambda array: _scalar_of(array, f"{self.name}/learning_rate"))
        own = [_variable_state(self._iterations, f"{self.name}/iteration"), unused_lr,
               _variable_state(self.step_counter, f"{self.name}/step_counter"),
               _variable_state(self.dynamic_scale, f"{self.name}/dynamic_scale")]
        return own + self.inner_optimizer._state_variables()

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        self.built = True

    def scale_loss(self, loss):
        # Keras multiplies by the variable itself once built (by initial_scale before, the value the variable holds
        # until the first update). Reading the variable always gives the same numbers and keeps the scale a value
        # of the step, not a host number: a compiled step's plan reads its current value at every replay.
        return loss * self.dynamic_scale

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is None:
            raise ValueError("LossScaleOptimizer.apply: pass the trainable_variables the gradients belong to")
        self.built = True
        arrays = [None if g is None else _grad_array(g) for g in grads]
        finite = all(bool(backend.item(backend.all(backend.isfinite(a)))) for a in arrays if a is not None)
        scale = self.dynamic_scale._data
        if not finite:  # skip the step; halve the scale
            self.step_counter.assign(backend.asarray(0, "int64"))
            self.dynamic_scale.assign(backend.multiply(scale, np.float32(0.5)))
            return
        unscaled = [None if a is None else
                    backend.divide(a, backend.astype(scale, np.result_type(a.dtype, np.float32), copy=False))
                    for a in arrays]
        self.inner_optimizer.apply(unscaled, trainable_variables)
        if _count(self.step_counter) == self.dynamic_growth_steps - 1:
            self.step_counter.assign(backend.asarray(0, "int64"))
            self.dynamic_scale.assign(backend.multiply(scale, np.float32(2.0)))
        else:
            self.step_counter.assign_add(1)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        from fastnn.optimizers import serialize

        return {"name": self.name, "inner_optimizer": serialize(self.inner_optimizer),
                "initial_scale": self.initial_scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config):
        from fastnn.optimizers import get

        config = dict(config)
        return cls(get(config.pop("inner_optimizer")), **config)
