"""Models (``keras.models``): Model, Sequential and the functional graph."""
from fastnn.models.model import Model, model_from_json  # noqa: I001
from fastnn.models.functional import Functional
from fastnn.models.sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """``keras.models.load_model``: the same function as ``fastnn.saving.load_model``."""
    from fastnn.saving.saving_api import load_model as _load_model

    return _load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``keras.models.save_model``: the same function as ``fastnn.saving.save_model``."""
    from fastnn.saving.saving_api import save_model as _save_model

    return _save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture (fresh weights) from ``get_config`` / ``from_config``."""
    return type(model).from_config(model.get_config())


__all__ = ["Model", "Sequential", "Functional", "clone_model", "model_from_json", "load_model", "save_model"]
