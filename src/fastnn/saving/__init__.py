"""fastnn.saving: Keras 3's file formats (keras.saving).

h-core's names: save_model, load_model (``.keras`` natively, legacy ``.h5`` through fastnn.saving.legacy_h5), and the
modules saving_lib (the ``.keras`` / ``.weights.h5`` formats), saving_api (dispatch by extension) and file_io
(atomic writes).
"""
from fastnn.saving.saving_api import load_model, save_model

__all__ = ["save_model", "load_model"]
