"""Differentiable ops, one module per family; each op's backward sits right beside its forward.

``fastnn.ops`` is the public (keras.ops-named) API over these modules.
"""
