"""A small multilayer perceptron trained with Variables, GradientTape and plain SGD: the workload of the hardening
tests (memory growth, determinism, thread safety) until the Keras model API exists.

Example:
    >>> mlp = MLP(sizes=(16, 32, 4), seed=0)
    >>> losses = mlp.train(steps=10, batch=8)
"""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn import ops


class MLP:
    """Dense layers (GEMM + bias_add kernels), relu / tanh activations, sparse softmax crossentropy (fused kernel).

    Args:
        sizes: layer widths, input first, number of classes last.
        seed: seeds the weights and the synthetic data.
        dtype: "float32" or "float64".
    """

    def __init__(self, sizes=(32, 64, 64, 10), seed=0, dtype="float32"):
        rng = np.random.default_rng(seed)
        self.sizes = tuple(sizes)
        self.dtype = np.dtype(dtype)
        self.weights = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            limit = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-limit, limit, size=(n_in, n_out)).astype(self.dtype)
            self.weights.append(fastnn.Variable(w, name=f"kernel_{i}"))
            self.weights.append(fastnn.Variable(np.zeros(n_out, self.dtype), name=f"bias_{i}"))
        self.data_rng = np.random.default_rng(seed + 1)
        centers = self.data_rng.standard_normal((sizes[-1], sizes[0])).astype(self.dtype) * 2
        self.centers = centers

    def batch(self, n):
        """A synthetic classification batch: (x of shape (n, sizes[0]), int64 labels)."""
        labels = self.data_rng.integers(0, self.sizes[-1], size=n)
        x = self.centers[labels] + self.data_rng.standard_normal((n, self.sizes[0])).astype(self.dtype)
        return x, labels.astype(np.int64)

    def forward(self, x):
        h = x
        layers = len(self.weights) // 2
        for i in range(layers):
            h = ops.bias_add(ops.matmul(h, self.weights[2 * i]), self.weights[2 * i + 1])
            if i < layers - 1:
                h = ops.relu(h) if i % 2 == 0 else ops.tanh(h)
        return h

    def loss(self, x, labels):
        return ops.mean(ops.sparse_categorical_crossentropy(labels, self.forward(x), from_logits=True))

    def step(self, x, labels, lr=0.05):
        with fastnn.GradientTape() as tape:
            loss = self.loss(x, labels)
        grads = tape.gradient(loss, self.weights)
        for w, g in zip(self.weights, grads):
            w.assign_sub(g.numpy() * np.asarray(lr, self.dtype))
        return float(loss.numpy())

    def train(self, steps, batch=32, lr=0.05):
        """Runs ``steps`` SGD steps on fresh synthetic batches; returns the losses."""
        return [self.step(*self.batch(batch), lr=lr) for _ in range(steps)]

    def get_weights(self):
        return [w.numpy().copy() for w in self.weights]
