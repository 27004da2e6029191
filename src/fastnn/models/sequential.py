"""``Sequential``: a linear stack of layers, a functional model underneath once its input shape is known.

Example:
    >>> model = fastnn.Sequential([fastnn.Input((8,)), fastnn.layers.Dense(4, activation="relu"),
    ...                            fastnn.layers.Dense(1)])
    >>> model.summary()
"""
from __future__ import annotations

from fastnn.layers.input_layer import InputLayer
from fastnn.layers.layer import KerasTensor, Layer, unique_name
from fastnn.models.model import Model


def deserialize_layer(config, custom_objects=None):
    """A layer (or model) from its config entry: Keras 3's ``{"module", "class_name", "config", ...}`` through
    ``fastnn.saving.deserialize_keras_object`` (custom classes through ``custom_objects``, an open
    ``custom_object_scope`` or the registered objects; built from its build_config); an entry without "module"
    (older fastnn and Keras 2 configs) by its class name, as Keras's legacy path."""
    from fastnn.saving import object_registration, serialization_lib

    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize_layer: expected a layer config dict with 'class_name' and 'config', but "
                         f"received {config!r}")
    if "module" in config:
        return serialization_lib.deserialize_keras_object(config, custom_objects=custom_objects)
    import fastnn.layers as layers_mod

    name = config["class_name"]
    custom = {**(custom_objects or {}), **object_registration._scope_dict(),
              **object_registration.GLOBAL_CUSTOM_OBJECTS}
    cls = custom.get(name) or getattr(layers_mod, name, None) or serialization_lib._model_classes().get(name)
    if not isinstance(cls, type):
        raise ValueError(f"Unknown layer: '{name}'. Please ensure you are using a `fastnn.layers.Layer` subclass "
                         "known to fastnn, or pass your class in `custom_objects` (or register it with "
                         "`@fastnn.saving.register_keras_serializable()`).")
    with object_registration.CustomObjectScope(custom):
        import inspect

        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            layer = cls.from_config(config.get("config") or {}, custom_objects=custom)
        else:
            layer = cls.from_config(config.get("config") or {})
        if config.get("build_config") and not layer.built:
            serialization_lib.build_from_config(layer, config["build_config"])
    return layer


class Sequential(Model):
    """A plain stack of layers, each with one input and one output.

    Args:
        layers: optional list of layers (the first may be ``fastnn.Input(shape)``, or carry ``input_shape=``).
        name: model name (default ``sequential``, ``sequential_1``, ...).
    """

    def __init__(self, layers=None, trainable=True, name=None):
        Model.__init__(self, name=name or unique_name("sequential"), trainable=trainable)
        self._seq_layers = []
        self._input_layer = None
        self._graph = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    def add(self, layer, rebuild=True):
        """Appends a layer (or ``fastnn.Input(...)``) to the stack."""
        if isinstance(layer, KerasTensor) and layer._history is not None and isinstance(layer._history[0], InputLayer):
            layer = layer._history[0]
        if not isinstance(layer, Layer):
            raise ValueError("Only instances of `fastnn.layers.Layer` can be added to a Sequential model. Received: "
                             f"{layer!r} (of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._seq_layers:
                raise ValueError(f'Sequential model "{self.name}": an Input can only be the first entry of the '
                                 "model, and only one is allowed.")
            self._input_layer = layer
        else:
            if any(l.name == layer.name for l in self._seq_layers):
                raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                                 f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                                 "argument to pass a unique name.")
            self._seq_layers.append(layer)
        if rebuild:
            self._maybe_rebuild()

    def pop(self, rebuild=True):
        """Removes and returns the last layer."""
        if not self._seq_layers:
            raise TypeError("There are no layers in the model.")
        layer = self._seq_layers.pop()
        if rebuild:
            self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self):
        self._graph = None
        self.built = False
        if self._input_layer is not None:
            self._build_graph(self._input_layer)
        elif self._seq_layers and self._seq_layers[0]._batch_input_shape is not None:
            first = self._seq_layers[0]
            self._input_layer = InputLayer(batch_shape=first._batch_input_shape, dtype=first.dtype)
            self._build_graph(self._input_layer)

    def _build_graph(self, input_layer):
        from fastnn.models.functional import Functional

        x = input_layer.output_tensor
        for layer in self._seq_layers:
            x = layer(x)
            if isinstance(x, (list, tuple, dict)):
                raise ValueError(f'Sequential model "{self.name}": layer "{layer.name}" returned several outputs; '
                                 "Sequential models need one output per layer (use the functional API)")
        if self._seq_layers:
            unique_name("functional")  # Keras's Sequential builds an anonymous Functional: keep the names in step
            self._graph = Functional(input_layer.output_tensor, x, name=self.name)
            self.input_spec = self._graph.input_spec
            self.output_names = [self._seq_layers[-1].name]
            self.built = True

    def build(self, input_shape=None):
        """Builds the model for ``input_shape`` (batch axis included, may be None)."""
        if self.built and self._graph is not None:
            return
        if input_shape is None:
            raise ValueError(f'Sequential model "{self.name}" cannot be built without an input shape: start it with '
                             "fastnn.Input(shape), pass input_shape= to the first layer, or call it on data.")
        if not self._seq_layers:
            raise ValueError(f'Sequential model "{self.name}" has no layers to build.')
        self._input_layer = InputLayer(batch_shape=(None,) + tuple(input_shape[1:]), dtype=self.dtype)
        self._build_graph(self._input_layer)

    def _maybe_build(self, shapes):
        if not self.built:
            self.build(shapes)

    def _autocast(self):
        # As Keras (Sequential.input_dtype is its InputLayer's dtype): the inputs are not cast to the model's own
        # dtype policy; the graph's Functional.call converts them to the InputLayer's dtype.
        return False

    def call(self, inputs, training=None, mask=None):
        if self._graph is None:
            self.build((None,) + tuple(inputs.shape[1:]))
        return self._graph.call(inputs, training=training, mask=mask)

    def compute_output_shape(self, input_shape):
        if self._graph is None:
            self.build(input_shape)
        return self._graph.compute_output_shape(input_shape)

    def _sublayers(self):
        return list(self._seq_layers)

    @property
    def layers(self):
        return list(self._seq_layers)

    @property
    def inputs(self):
        return self._graph.inputs if self._graph is not None else None

    @property
    def outputs(self):
        return self._graph.outputs if self._graph is not None else None

    def get_config(self):
        """Keras's Sequential config: name, trainable, dtype policy, every layer (the InputLayer first) serialized
        as Keras does, and ``build_input_shape`` once the model has an input."""
        from fastnn.layers.serialization import dtype_policy_config, serialize_layer

        layers = [serialize_layer(self._input_layer)] if self._input_layer is not None else []
        layers += [serialize_layer(layer) for layer in self._seq_layers]
        config = {"name": self.name, "trainable": self.trainable, "dtype": dtype_policy_config(self.dtype),
                  "layers": layers}
        if self._graph is not None:
            config["build_input_shape"] = self._input_layer.batch_shape
        return config

    def get_build_config(self):
        if self._graph is None:
            return None
        return {"input_shape": self._input_layer.batch_shape}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for lc in config["layers"]:
            if lc["class_name"] == "InputLayer":
                model.add(InputLayer(**lc["config"]), rebuild=False)  # keeps its name, as Keras does
            else:
                model.add(deserialize_layer(lc, custom_objects), rebuild=False)
        model._maybe_rebuild()
        if model._graph is None and config.get("build_input_shape") is not None and model._seq_layers:
            model.build(tuple(config["build_input_shape"]))
        return model
