"""Layers with Keras 3's names, arguments and weight layouts (``keras.layers``)."""
from fastnn.layers.layer import InputSpec, KerasTensor, Layer  # noqa: I001
from fastnn.layers.input_layer import Input, InputLayer
from fastnn.layers.core import Activation, Dense, Dropout, Flatten, Identity, Lambda, Masking
from fastnn.layers.reshaping import Permute, RepeatVector, Reshape
from fastnn.layers.merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                                   concatenate, maximum, minimum, multiply, subtract)

__all__ = [
    "Layer", "InputSpec", "KerasTensor", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten",
    "Identity", "Lambda", "Masking", "Reshape", "Permute", "RepeatVector", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
]
