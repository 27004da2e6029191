"""Normalization layers with Keras 3's names, arguments, weights and configs: BatchNormalization.

Training runs on the batch-norm kernels (``B.batch_norm_train_forward`` / ``B.batch_norm_backward``) and updates
the moving statistics as Keras 3 does (``moving = moving * momentum + batch * (1 - momentum)``, the batch variance
being the biased one); inference, and a layer with ``trainable=False`` whatever ``training`` says, normalizes with
the moving statistics on ``B.batch_norm_inference_forward``.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import norm as _norm
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer
from fastnn.layers.serialization import serialize_keras_object

_KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the masked statistics divide by (count + epsilon)


class BatchNormalization(Layer):
    """Normalizes its input over the batch (and every axis but ``axis``), then scales by gamma and shifts by beta.

    In training (``training=True`` and the layer trainable) it normalizes with the batch mean and variance and
    updates ``moving_mean`` / ``moving_variance`` as ``moving * momentum + batch * (1 - momentum)``; otherwise
    (inference, or ``trainable=False`` as in Keras 3) with the moving statistics.

    Args:
        axis: the feature axis (default -1; any existing axis).
        momentum: of the moving statistics. Default 0.99.
        epsilon: added to the variance. Default 1e-3.
        center: learn an offset beta. Default True.
        scale: learn a scale gamma. Default True.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer: defaults
            "zeros", "ones", "zeros", "ones".
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint.
        synchronized: accepted (one device: the local statistics are the global ones).
        renorm: batch renormalization is not supported (ValueError when True).

    Weights (Keras's order): gamma, beta (trainable), moving_mean, moving_variance (non-trainable), each of shape
    (input_shape[axis],). A mask (one axis less than the input) restricts the batch statistics to the unmasked
    positions, as in Keras.

    Example:
        >>> bn = BatchNormalization()
        >>> bn(np.ones((4, 3), "float32"), training=True).shape
        (4, 3)
        >>> [w.name for w in bn.weights]
        ['gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        if renorm:
            raise ValueError("BatchNormalization: renorm=True (batch renormalization) is not supported by fastnn; "
                             "pass renorm=False")
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = float(renorm_momentum)
        self.synchronized = bool(synchronized)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)
        self.beta_constraint = _constraints.get(beta_constraint)
        self.gamma_constraint = _constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    def _feature_axis(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): axis={self.axis} does not exist in an input '
                             f"of shape {tuple(input_shape)} (rank {rank})")
        return self.axis % rank

    def build(self, input_shape):
        axis = self._feature_axis(input_shape)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): the axis {self.axis} of the input must be '
                             f"defined, but received input shape {tuple(input_shape)}")
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                                         trainable=True)
        if self.center:
            self.beta = self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                                        trainable=True)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance",
                                               initializer=self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})
        self.built = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError("The mask provided should be one dimension less than the inputs. Received: "
                             f"mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}")
        if inputs.dtype.kind != "f":
            inputs = _shape.cast(inputs, "float32")
        axis = self._feature_axis(inputs.shape)
        # Keras computes in result_type(inputs.dtype, "float32"): float16 inputs are upcast (BN overflows in them).
        compute = np.dtype(np.float64) if np.dtype(inputs.dtype) == np.float64 else np.dtype(np.float32)
        x = inputs if np.dtype(inputs.dtype) == compute else _shape.cast(inputs, str(compute))
        gamma = self._param(self.gamma, compute)
        beta = self._param(self.beta, compute)
        moving_mean = self._stat(self.moving_mean, compute)
        moving_variance = self._stat(self.moving_variance, compute)
        if training and self.trainable:
            if mask is None:
                y, mean, variance = _norm.batch_norm_train(x, gamma, beta, axis, self.epsilon)
            else:
                mean_t, variance_t = self._masked_moments(x, mask, axis)
                y = _norm.batch_normalization(x, mean_t, variance_t, axis, offset=beta, scale=gamma,
                                              epsilon=self.epsilon)
                mean, variance = mean_t._data, variance_t._data
            # Keras 3: moving = moving * momentum + batch * (1 - momentum), in the compute dtype, then assigned.
            self.moving_mean.assign(B.add(B.multiply(moving_mean, self.momentum),
                                          B.multiply(mean, 1.0 - self.momentum)))
            self.moving_variance.assign(B.add(B.multiply(moving_variance, self.momentum),
                                              B.multiply(variance, 1.0 - self.momentum)))
        else:
            y = _norm.batch_norm_inference(x, moving_mean, moving_variance, gamma, beta, axis, self.epsilon)
        out_dtype = np.dtype(self.dtype)
        return y if np.dtype(y.dtype) == out_dtype else _shape.cast(y, str(out_dtype))

    @staticmethod
    def _param(variable, dtype):
        if variable is None:
            return None
        return variable if np.dtype(variable.dtype) == dtype else _shape.cast(variable, str(dtype))

    @staticmethod
    def _stat(variable, dtype):
        data = variable._data
        return data if data.dtype == dtype else B.astype(data, dtype)

    def _masked_moments(self, x, mask, axis):
        """Keras's masked statistics: the mean and variance of the unmasked positions (the mask broadcast over the
        last axis), each sum divided by (count + keras.backend.epsilon())."""
        reduction = tuple(i for i in range(x.ndim) if i != axis)
        keep = _shape.cast(_shape.broadcast_to(_shape.expand_dims(mask, -1), tuple(x.shape)), "bool")
        total = _reduce.sum(_ew.where(keep, x, 0), axis=reduction, keepdims=True)
        count = _reduce.sum(_shape.cast(keep, str(x.dtype)), axis=reduction, keepdims=True)
        mean = _ew.divide(total, _ew.add(count, _KERAS_EPSILON))
        difference = _ew.where(keep, _ew.subtract(x, mean), 0)
        variance = _ew.divide(_reduce.sum(_ew.square(difference), axis=reduction, keepdims=True),
                              _ew.add(count, _KERAS_EPSILON))
        channels = (x.shape[axis],)
        return _shape.reshape(mean, channels), _shape.reshape(variance, channels)

    def compute_output_shape(self, input_shape):
        self._feature_axis(input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize_keras_object(self.beta_initializer),
            "gamma_initializer": serialize_keras_object(self.gamma_initializer),
            "moving_mean_initializer": serialize_keras_object(self.moving_mean_initializer),
            "moving_variance_initializer": serialize_keras_object(self.moving_variance_initializer),
            "beta_regularizer": serialize_keras_object(self.beta_regularizer),
            "gamma_regularizer": serialize_keras_object(self.gamma_regularizer),
            "beta_constraint": serialize_keras_object(self.beta_constraint),
            "gamma_constraint": serialize_keras_object(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        })
        return config
