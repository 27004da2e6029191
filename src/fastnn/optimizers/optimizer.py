"""Optimizers with Keras 3's update formulas, applied to every variable in one fused C++ call per step.

``apply_gradients(zip(grads, vars))`` (or ``apply(grads, vars)``) clips the gradients (``clipvalue``, ``clipnorm``
per variable, ``global_clipnorm``), applies decoupled ``weight_decay`` and the optimizer's update
(``csrc/cpu/optimizer.cpp``), then the variables' constraints, and increments ``iterations``. Step-dependent
scalars (bias corrections, the learning rate from a schedule) are computed here once per step.
"""
from __future__ import annotations

import math
import numbers
import re
import warnings

import numpy as np

from fastnn import backend
from fastnn.autograd import Tensor, Variable
from fastnn.optimizers.schedules import LearningRateSchedule


def _check_positive(cls, name, value, allow_zero=True):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{cls}: {name} must be a {'non-negative' if allow_zero else 'positive'} float, but received "
                         f"{name}={value!r}")
    return float(value)


class Optimizer:
    """Base class. Subclasses set ``_kind`` (the C++ kernel), ``_slot_names`` and ``_params(step)``.

    Args:
        learning_rate: float, a LearningRateSchedule or a callable returning a float.
        weight_decay: decoupled weight decay factor (var -= var * weight_decay * lr before each update).
        clipnorm: clip each gradient to this L2 norm. clipvalue: clip each element to [-clipvalue, clipvalue].
        global_clipnorm: clip all gradients together to this global norm. Only one of the three may be set.
    """

    _kind = None
    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if use_ema:
            raise ValueError(f"{cls}: use_ema is not supported by fastnn yet")
        if gradient_accumulation_steps:
            raise ValueError(f"{cls}: gradient_accumulation_steps is not supported by fastnn yet")
        self.name = name or re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
        self.weight_decay = _check_positive(cls, "weight_decay", weight_decay)
        self.clipnorm = _check_positive(cls, "clipnorm", clipnorm)
        self.clipvalue = _check_positive(cls, "clipvalue", clipvalue)
        self.global_clipnorm = _check_positive(cls, "global_clipnorm", global_clipnorm)
        if sum(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.loss_scale_factor = loss_scale_factor
        if isinstance(learning_rate, LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            self._learning_rate = _check_positive(cls, "learning_rate", learning_rate)
        self.iterations = Variable(np.array(0, dtype="int64"), trainable=False, name="iteration")
        self._slots = {}  # id(variable) -> list of slot arrays
        self._exclude_ids = set()
        self._exclude_names = ()
        self.built = False

    # -- learning rate ------------------------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(int(self.iterations.numpy())))
        if callable(lr):
            return float(lr())
        return float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(value, LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                            "constructor argument, hence its learning rate is not settable.")
        self._learning_rate = value if isinstance(value, LearningRateSchedule) else float(value)

    lr = learning_rate

    # -- variables ----------------------------------------------------------------------------------------------
    def build(self, var_list):
        for v in var_list:
            self._slots_for(v)
        self.built = True

    def _slots_for(self, v):
        s = self._slots.get(id(v))
        if s is None:
            s = [None if name is None else self._init_slot(name, v._data) for name in self._slot_names]
            self._slots[id(v)] = s
        return s

    def _init_slot(self, name, like):
        return np.zeros(like.shape, like.dtype)

    @property
    def variables(self):
        out = [self.iterations]
        for slots in self._slots.values():
            out.extend(Tensor._wrap(s) for s in slots if s is not None)
        return out

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Variables (or name substrings) that weight decay skips."""
        self._exclude_ids |= {id(v) for v in (var_list or [])}
        self._exclude_names = tuple(var_names or ())

    def _decays(self, v):
        if not self.weight_decay or id(v) in self._exclude_ids:
            return False
        name = getattr(v, "path", getattr(v, "name", ""))
        return not any(n in name for n in self._exclude_names)

    # -- applying -----------------------------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Applies ``[(gradient, variable), ...]`` (e.g. ``zip(tape.gradient(loss, vars), vars)``)."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self.iterations

    def apply(self, grads, trainable_variables=None):
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
                          "`model.compile()`, did you forget to provide a `loss` argument?", stacklevel=2)
        arrays = []
        for g, v in pairs:
            if v._data.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: variable {v.name!r} has dtype {v.dtype}; only float "
                                "variables can be trained")
            ga = g._data if isinstance(g, Tensor) else np.asarray(g)
            if ga.shape != v._data.shape:
                raise ValueError(f"{type(self).__name__}: gradient shape {ga.shape} does not match variable "
                                 f"{v.name!r} of shape {v._data.shape}")
            ga = np.ascontiguousarray(ga, dtype=v._data.dtype)
            if np.shares_memory(ga, v._data):
                ga = ga.copy()
            arrays.append(ga)
        self._update([v for _, v in pairs], arrays)

    def _grad_scales(self, grads):
        if self.clipnorm is not None:
            sq = backend._C.sum_squares(grads)
            return [self.clipnorm / max(math.sqrt(s), self.clipnorm) for s in sq]
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(backend._C.sum_squares(grads)))
            if not math.isfinite(norm):
                return [float("nan")] * len(grads)
            scale = self.global_clipnorm * min(1.0 / norm if norm > 0 else math.inf, 1.0 / self.global_clipnorm)
            return [scale] * len(grads)
        return None

    def _update(self, variables, grads):
        lr = self.learning_rate
        step = int(self.iterations.numpy()) + 1
        params = self._params(lr, step)
        params["lr"] = lr
        if self.clipvalue is not None:
            params["clipvalue"] = self.clipvalue
        self._before_update(step)
        scales = self._grad_scales(grads)
        groups = {}
        for i, v in enumerate(variables):
            key = (v._data.dtype.str, self._decays(v))
            groups.setdefault(key, []).append(i)
        for (dt, decays), idx in groups.items():
            vs = [variables[i] for i in idx]
            slots = [self._slots_for(v) for v in vs]
            slot_lists = [None if self._slot_names[k] is None else [s[k] for s in slots]
                          for k in range(len(self._slot_names))]
            p = dict(params)
            p["weight_decay"] = self.weight_decay if decays else 0.0
            backend._C.optimizer_update(self._kind, [v._own_buffer() for v in vs], [grads[i] for i in idx], slot_lists,
                                        None if scales is None else [scales[i] for i in idx], p)
        for v in variables:
            c = getattr(v, "constraint", None)
            if c is not None:
                v.assign(c(v.numpy()))
        self.iterations.assign_add(1)

    def _before_update(self, step):
        pass

    def _params(self, lr, step) -> dict:
        return {}

    # -- config -------------------------------------------------------------------------------------------------
    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            from fastnn.optimizers import schedules

            config["learning_rate"] = getattr(schedules, lr["class_name"]).from_config(lr["config"])
        return cls(**config)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: m = momentum * m - lr * g; var += m
    (nesterov: var += momentum * m - lr * g)."""

    _kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="SGD", **kwargs):
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
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, bool(amsgrad)
        self._slot_names = ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def _params(self, lr, step):
        b1p, b2p = self.beta_1 ** step, self.beta_2 ** step
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon, "amsgrad": float(self.amsgrad),
                "alpha": lr * math.sqrt(1.0 - b2p) / (1.0 - b1p)}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamw", **kwargs):
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
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adagrad", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = epsilon

    def _init_slot(self, name, like):
        return np.full(like.shape, self.initial_accumulator_value, like.dtype)

    def _params(self, lr, step):
        return {"epsilon": self.epsilon}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """v = rho v + (1 - rho) g^2; var -= lr g / sqrt(v + eps) (centered: v - mean_g^2 + eps; optional momentum)."""

    _kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, float(momentum), epsilon, bool(centered)
        self._slot_names = ("velocity", "momentum" if self.momentum > 0 else None,
                            "average_gradient" if self.centered else None)

    def _params(self, lr, step):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": float(self.centered)}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adadelta(Optimizer):
    """Adadelta (Keras 3 defaults: learning_rate 0.001, rho 0.95, epsilon 1e-7)."""

    _kind = "adadelta"
    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adadelta", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _params(self, lr, step):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """m += (g - m)(1 - b1); u = max(b2 u, |g|); var -= lr / (1 - b1^t) * m / (u + epsilon)."""

    _kind = "adamax"
    _slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="adamax", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _params(self, lr, step):
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon,
                "alpha": lr / (1.0 - self.beta_1 ** step)}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Keras 3's momentum schedule u_t = b1 (1 - 0.5 * 0.96^t))."""

    _kind = "nadam"
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="nadam", **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._u_product = 1.0

    def _before_update(self, step):
        self._u_product *= self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _params(self, lr, step):
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** step)
        u_t1 = self.beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))
        u_prod_t = self._u_product * u_t  # _before_update runs after _params: this is the product through step t
        return {"beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon, "u_t": u_t, "u_t1": u_t1,
                "u_prod_t": u_prod_t, "u_prod_t1": u_prod_t * u_t1, "beta2_power": self.beta_2 ** step}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
