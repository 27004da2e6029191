"""Models (``keras.models``): Model, Sequential and the functional graph."""
from fastnn.models.model import Model, model_from_json  # noqa: I001
from fastnn.models.functional import Functional
from fastnn.models.sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture (fresh weights) from ``get_config`` / ``from_config``."""
    return type(model).from_config(model.get_config())


__all__ = ["Model", "Sequential", "Functional", "clone_model", "model_from_json"]
