"""Weight initializers with Keras 3's names, arguments, defaults and formulas (``keras.initializers``).

An initializer is called as ``init(shape, dtype=None)`` and returns a buffer of the active backend (a NumPy array
on the CPU backend), computed through ``fastnn.backend``. Random ones draw from the generator of ``fastnn.utils``
(seeded by ``set_random_seed``) unless given their own ``seed``; the streams are NumPy's PCG64 draws, unchanged.

Example:
    >>> w = fastnn.initializers.GlorotUniform(seed=1)((784, 64))
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import _registry
from fastnn import backend as B
from fastnn import utils as _utils


def _dtype(dtype):
    return np.dtype(dtype or "float32")


def _fans(shape, input_axes=None, output_axes=None):
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:  # Keras 3.15's compute_fans over the given axes
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)``."""

    def __call__(self, shape, dtype=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())


class _Random(Initializer):
    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{type(self).__name__}: seed must be an int or None, but received {seed!r}")
        self.seed = seed
        self._gen = B.random_generator(seed) if seed is not None else None

    def _rng(self):
        return self._gen if self._gen is not None else _utils.rng()

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return B.zeros(tuple(shape), _dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return B.ones(tuple(shape), _dtype(dtype))


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return B.full(tuple(shape), self.value, _dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return B.random_normal(self._rng(), tuple(shape), _dtype(dtype), mean=self.mean, stddev=self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return B.random_uniform(self._rng(), tuple(shape), _dtype(dtype), low=self.minval, high=self.maxval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(_Random):
    """Normal values more than two standard deviations from the mean are redrawn."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return B.random_truncated_normal(self._rng(), tuple(shape), _dtype(dtype), mean=self.mean,
                                         stddev=self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(_Random):
    """Samples with variance ``scale / n`` (n: fan_in, fan_out or their average).

    Args:
        scale: positive float.
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal", "untruncated_normal" or "uniform".
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None):
        super().__init__(seed)
        for arg, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
            if axes is not None and (not isinstance(axes, (list, tuple)) or
                                     not all(isinstance(a, (int, np.integer)) for a in axes)):
                raise ValueError(f"{type(self).__name__}: {arg} must be a list of ints or None, but received {axes!r}")
        self.input_axes = list(input_axes) if input_axes is not None else None
        self.output_axes = list(output_axes) if output_axes is not None else None
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling: scale must be positive, but received scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be one of 'fan_in', 'fan_out', 'fan_avg', but received {mode!r}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError("VarianceScaling: distribution must be one of 'uniform', 'truncated_normal', "
                             f"'untruncated_normal', but received {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng, shape, dtype = self._rng(), tuple(shape), _dtype(dtype)
        if self.distribution == "truncated_normal":
            # 0.8796...: the standard deviation of a standard normal truncated to [-2, 2]
            return B.random_truncated_normal(rng, shape, dtype, stddev=math.sqrt(scale) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return B.random_normal(rng, shape, dtype, stddev=math.sqrt(scale))
        limit = math.sqrt(3.0 * scale)
        return B.random_uniform(rng, shape, dtype, low=-limit, high=limit)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _vs_subclass(name, scale, mode, distribution, doc):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale=scale, mode=mode, distribution=distribution, seed=seed,
                                 input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


GlorotUniform = _vs_subclass("GlorotUniform", 1.0, "fan_avg", "uniform", "U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _vs_subclass("GlorotNormal", 1.0, "fan_avg", "truncated_normal", "Truncated normal, var 2 / (fan_in + fan_out).")
HeNormal = _vs_subclass("HeNormal", 2.0, "fan_in", "truncated_normal", "Truncated normal, var 2 / fan_in.")
HeUniform = _vs_subclass("HeUniform", 2.0, "fan_in", "uniform", "U(-l, l) with l = sqrt(6 / fan_in).")
LecunNormal = _vs_subclass("LecunNormal", 1.0, "fan_in", "truncated_normal", "Truncated normal, var 1 / fan_in.")
LecunUniform = _vs_subclass("LecunUniform", 1.0, "fan_in", "uniform", "U(-l, l) with l = sqrt(3 / fan_in).")


class Orthogonal(_Random):
    """An orthogonal matrix (QR of a normal matrix, signs fixed), times ``gain``; shapes of rank >= 2."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have rank >= 2, but received shape={shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = B.random_normal(self._rng(), (max(rows, cols), min(rows, cols)), np.float64)
        q, r = B.qr(a)
        q = B.multiply(q, B.sign(B.diag(r)))
        if rows < cols:
            q = B.transpose(q)  # a Fortran-ordered view: the C-order copy below is what variables and kernels expect
        return B.contiguous(B.astype(B.multiply(self.gain, B.reshape(q, shape)), _dtype(dtype)))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """gain * the identity matrix (2-D shapes)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity: the shape must be 2-D, but received shape={shape}")
        return B.astype(B.multiply(self.gain, B.eye(*shape)), _dtype(dtype))

    def get_config(self):
        # Keras 3.15's Identity writes {} (it never records its gain); write the gain only when it is not the
        # default, so the config equals Keras's for Identity() and no value is lost otherwise.
        return {} if self.gain == 1.0 else {"gain": self.gain}


# Keras's function-style aliases
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal, identity = VarianceScaling, Orthogonal, Identity
glorot_uniform, glorot_normal, he_normal, he_uniform = GlorotUniform, GlorotNormal, HeNormal, HeUniform
lecun_normal, lecun_uniform = LecunNormal, LecunUniform

_TABLE = {}
for _cls in (Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
             GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal, Identity):
    _TABLE[_cls.__name__] = _cls
_TABLE.update({
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal, "identity": Identity,
})
# Keras's aliases (keras/src/initializers/__init__.py): Embedding's default embeddings_initializer is "uniform".
_TABLE.update({"uniform": RandomUniform, "normal": RandomNormal, "one": Ones, "zero": Zeros,
               "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal})


def get(identifier):
    """An initializer from a string ("glorot_uniform"), a config dict, an Initializer or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("initializer", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("initializer", _TABLE, identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(initializer):
    return _registry.serialize(initializer)


def deserialize(config):
    return get(config)
