"""fastnn's automatic differentiation: Tensor, Variable, GradientTape, no_grad and the differentiable ops.

Layout: ``tensor.py`` (Tensor, Variable), ``tape.py`` (graph nodes, GradientTape, no_grad, the backward engine),
``dtypes.py`` (Keras dtype rules), ``ops/`` (one module per op family, backward beside forward).
"""
from fastnn.autograd.tensor import Tensor, Variable  # noqa: I001 - tensor first: the op modules import it
from fastnn.autograd.tape import GradientTape, is_grad_enabled, no_grad

__all__ = ["Tensor", "Variable", "GradientTape", "no_grad", "is_grad_enabled"]
