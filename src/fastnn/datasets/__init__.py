"""Datasets (``keras.datasets``): ``mnist``."""
from fastnn.datasets import mnist

__all__ = ["mnist"]
