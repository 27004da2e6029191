"""Shared plumbing of the example scripts: the free names of the article's listings (the data, the image size)
and the ``--quick`` switch. Not part of any listing.

MNIST is looked up offline, first found: ``$FASTNN_MNIST_DIR``, ``$FASTNN_SHARED_DIR/data/mnist``, a
``shared/data/mnist`` folder beside or above this checkout, the current directory's (as ``python -m fastnn.demo``
does) and fastnn's dataset cache. Where only the 10,000-image test split is present (as in ``../shared``), the first
8,000 images train and the last 2,000 are held out.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent


def options(description, default_epochs):
    """``--quick`` (or ``FASTNN_EXAMPLE_QUICK=1``): a few batches of one epoch, to check the script still runs.
    Otherwise the listing's full recipe. ``--epochs`` overrides the recipe's epoch count."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("FASTNN_EXAMPLE_QUICK", "") not in ("", "0"),
                        help="run only a few batches (also FASTNN_EXAMPLE_QUICK=1)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {default_epochs}; 1 with --quick)")
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 1 if args.quick else default_epochs
    if args.epochs < 1:
        parser.error("--epochs must be positive")
    return args


def _mnist_folders():
    folders = []
    for var, rel in (("FASTNN_MNIST_DIR", ""), ("FASTNN_SHARED_DIR", "data/mnist")):
        if os.environ.get(var):
            folders.append(Path(os.environ[var]) / rel)
    for base in (HERE.parent, Path.cwd()):
        for up in (base, *list(base.parents)[:3]):
            folders.append(up / "shared" / "data" / "mnist")
    return folders


def load_mnist_split():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (n, 28, 28) and integer labels; exits with a message
    saying where to put the data when there is none (never downloads)."""
    from fastnn.datasets import mnist

    for folder in _mnist_folders():
        if not folder.is_dir():
            continue
        full = mnist._find_local(str(folder))
        if full is not None:
            return full
        test = mnist._find_local(str(folder), split="test")
        if test is not None:
            x, y = test
            return (x[:8000], y[:8000]), (x[-2000:], y[-2000:])
    found = mnist._find_local()  # fastnn's cache folder
    if found is not None:
        return found
    sys.exit("no MNIST found offline: put the IDX .gz files (or mnist.npz) in $FASTNN_MNIST_DIR, "
             f"or {mnist.cache_dir()}, or a shared/data/mnist folder beside this checkout")


def mnist_images(quick, quick_train=256, quick_test=128):
    """MNIST as the image listings take it: float32 in [0, 1], shape (n, 28, 28, 1), one-hot labels (the listings
    compile with categorical crossentropy). ``quick`` keeps only a few batches' worth."""
    import fastnn

    (x_train, y_train), (x_test, y_test) = load_mnist_split()
    if quick:
        x_train, y_train, x_test, y_test = x_train[:quick_train], y_train[:quick_train], x_test[:quick_test], \
            y_test[:quick_test]
    x_train = (x_train.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    return (x_train, fastnn.utils.to_categorical(y_train, 10)), (x_test, fastnn.utils.to_categorical(y_test, 10))


def downsample(images, factor):
    """(n, h, w, c) images averaged over factor x factor blocks: (n, h // factor, w // factor, c)."""
    n, h, w, c = images.shape
    h, w = h // factor, w // factor
    blocks = images[:, :h * factor, :w * factor].reshape(n, h, factor, w, factor, c)
    return blocks.mean(axis=(2, 4), dtype="float32")


def report(history, model, x_test, y_test):
    """Prints the last training loss (the example test checks it is finite) and the held-out metrics."""
    loss = history.history["loss"][-1]
    print(f"final training loss: {loss:.6f}")
    if not math.isfinite(loss):
        sys.exit("the training loss is not finite")
    results = model.evaluate(x_test, y_test, verbose=0)
    results = results if isinstance(results, list) else [results]
    names = ["loss"] + [m for m in ("accuracy",) if len(results) > 1]
    print("held-out " + ", ".join(f"{n}: {v:.4f}" for n, v in zip(names, results)) + f" on {len(x_test):,} samples")


def keyword_sequences(n, vocab_size, maxlen, seed=0, keywords=(1, 2, 3)):
    """Synthetic data for the sequence listing: ``n`` int32 token sequences of random lengths (3..maxlen, tokens
    1..vocab_size-1) zero-padded at the start to ``maxlen`` (as Keras's ``pad_sequences`` pads by default; token 0
    is the padding that ``Embedding(mask_zero=True)`` masks), and float32 labels (n, 1): whether one of the
    ``keywords`` occurs. A keyword is planted in half the sequences and kept out of the others, so the classes
    balance and the rule is learnable, wherever in the sequence the keyword sits."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.zeros((n, maxlen), np.int32)
    y = np.zeros((n, 1), np.float32)
    others = np.setdiff1d(np.arange(1, vocab_size), keywords)
    for i in range(n):
        length = int(rng.integers(3, maxlen + 1))
        seq = rng.choice(others, length)
        if rng.random() < 0.5:
            seq[rng.integers(0, length)] = rng.choice(keywords)
            y[i] = 1.0
        x[i, maxlen - length:] = seq
    return x, y
