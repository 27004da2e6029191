"""``python -m fastnn.demo``: trains the article's classic CNN (listing 9) on real handwritten digits, offline.

Data, first found: full MNIST (``fastnn.datasets.mnist``: ``$FASTNN_MNIST_DIR``, the cache folder, or a
``shared/data/mnist`` folder next to or above the current directory), where only the 10,000-image test split is
present the first 8,000 train and the last 2,000 are held out; otherwise scikit-learn's bundled 8x8 digits
(``pip install "fastnn[demo]"``). Prints the model summary, Keras's progress output, held-out accuracy and the
training speed in samples/s.

Models (``--model``): ``cnn`` (the default) is listing 9 of the article: Conv 32/64/128 3x3 relu, each followed by
2x2 max pooling, Flatten, Dense 128 relu, Dropout 0.5, Dense softmax; Adam and categorical crossentropy, 4 epochs of
batch 64 (on the 8,000 MNIST training images about 15 s on 2 cores). On the 8x8 digits its convolutions are
"same"-padded, so that the three pools fit (8 -> 4 -> 2 -> 1). ``mlp`` is the seed's dense classifier (listing 1
as a classifier: Dense 64 relu, Dense 64 relu, Dropout 0.5, Dense softmax; Adam(0.003), sparse categorical
crossentropy, 5 epochs of batch 128). On the digits the CNN trains 15 epochs (about 2 s; 21 steps an epoch).

Options: ``--model {cnn,mlp}``, ``--epochs N`` (default 4 for the CNN, 15 for it on the digits, 5 for the MLP, or
``$FASTNN_DEMO_EPOCHS``), ``--batch-size N`` (64 for the CNN, 128 for the MLP), ``--data {auto,mnist,digits}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _shared_mnist_dirs():
    here = os.getcwd()
    out = []
    for rel in ("shared/data/mnist", "../shared/data/mnist", "../../shared/data/mnist"):
        p = os.path.normpath(os.path.join(here, rel))
        if os.path.isdir(p):
            out.append(p)
    return out


def load_mnist():
    """((x_train, y_train), (x_test, y_test), description) or None; never downloads."""
    from fastnn.datasets import mnist

    found = mnist._find_local()
    if found is not None:
        (xtr, ytr), (xte, yte) = found
        return (xtr, ytr), (xte, yte), f"MNIST, {len(xtr):,} training and {len(xte):,} test images"
    for folder in _shared_mnist_dirs():
        full = mnist._find_local(folder)
        if full is not None:
            (xtr, ytr), (xte, yte) = full
            return (xtr, ytr), (xte, yte), f"MNIST from {folder}"
        test = mnist._find_local(folder, split="test")
        if test is not None:
            x, y = test
            return (x[:8000], y[:8000]), (x[-2000:], y[-2000:]), \
                f"MNIST test split from {folder}: first 8,000 images to train, last 2,000 held out"
    return None


def load_digits():
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        return None
    d = sk_digits()
    x = (d.images * (255.0 / 16.0)).astype("uint8")
    y = d.target.astype("uint8")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(len(x) * 0.8)
    return (x[:split], y[:split]), (x[split:], y[split:]), \
        f"scikit-learn digits (8x8), {split} training and {len(x) - split} held-out images"


def build_cnn(image_size, num_classes, padding="valid"):
    """Listing 9 of the article, the classic CNN; ``padding="same"`` for images too small for its valid pools."""
    import fastnn as keras
    from fastnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

    model = keras.models.Sequential([keras.Input(shape=(image_size, image_size, 1))])
    for filters in (32, 64, 128):
        model.add(Conv2D(filters=filters, kernel_size=(3, 3), activation="relu", padding=padding))
        model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(units=128, activation="relu"))
    model.add(Dropout(rate=0.5))
    model.add(Dense(units=num_classes, activation="softmax"))
    return model


def build_model(input_dim, num_classes):
    import fastnn as keras

    # The seed's listing 1, as a classifier: Dense 64 relu, Dense 64 relu, Dropout 0.5, Dense softmax.
    return keras.models.Sequential([
        keras.Input(shape=(input_dim,)),
        keras.layers.Dense(units=64, activation="relu"),
        keras.layers.Dense(units=64, activation="relu"),
        keras.layers.Dropout(rate=0.5),
        keras.layers.Dense(units=num_classes, activation="softmax"),
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastnn.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn",
                        help="cnn: the article's listing 9 (default); mlp: the seed's dense classifier")
    parser.add_argument("--epochs", type=int, default=None, help="default 4 (cnn; 15 on the 8x8 digits) or 5 (mlp), or $FASTNN_DEMO_EPOCHS")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (cnn) or 128 (mlp)")
    parser.add_argument("--data", choices=("auto", "mnist", "digits"), default="auto")
    args = parser.parse_args(argv)
    cnn = args.model == "cnn"
    if args.epochs is None and os.environ.get("FASTNN_DEMO_EPOCHS"):
        args.epochs = int(os.environ["FASTNN_DEMO_EPOCHS"])
    if args.batch_size is None:
        args.batch_size = 64 if cnn else 128
    if (args.epochs is not None and args.epochs < 1) or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be positive")

    import fastnn

    data = None
    if args.data in ("auto", "mnist"):
        data = load_mnist()
    if data is None and args.data in ("auto", "digits"):
        data = load_digits()
    if data is None:
        print("fastnn demo: no dataset available offline.\n"
              "  - MNIST: put mnist.npz or the IDX .gz files in $FASTNN_MNIST_DIR or "
              f"{fastnn.datasets.mnist.cache_dir()} (python -c 'import fastnn; fastnn.datasets.mnist.load_data()' "
              "downloads it when online), or\n"
              '  - scikit-learn\'s bundled digits: pip install "fastnn[demo]"', file=sys.stderr)
        return 2
    (xtr, ytr), (xte, yte), what = data
    if args.epochs is None:
        # The CNN: listing 9's 4 epochs on MNIST; the 1,437 8x8 digits make 21 steps an epoch, too few in 4.
        args.epochs = (4 if xtr.shape[1] >= 28 else 15) if cnn else 5
    fastnn.utils.set_random_seed(1337)
    print(f"fastnn {fastnn.__version__} ({fastnn.build_info()['simd']}, {fastnn.get_num_threads()} threads) - data: {what}")
    if cnn:
        image_size = xtr.shape[1]
        xtr = xtr.reshape(len(xtr), image_size, image_size, 1).astype("float32") / 255.0
        xte = xte.reshape(len(xte), image_size, image_size, 1).astype("float32") / 255.0
        ytr, yte = fastnn.utils.to_categorical(ytr, 10), fastnn.utils.to_categorical(yte, 10)
        # 28x28 MNIST fits listing 9's valid convolutions and pools (28 -> 13 -> 5 -> 1); 8x8 digits do not.
        padding = "valid" if image_size >= 28 else "same"
        print(f"model: the article's listing 9 CNN ({padding} padding)")
        model = build_cnn(image_size, 10, padding=padding)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    else:
        xtr = xtr.reshape(len(xtr), -1).astype("float32") / 255.0
        xte = xte.reshape(len(xte), -1).astype("float32") / 255.0
        ytr, yte = ytr.astype("int64"), yte.astype("int64")
        print("model: the seed's dense classifier")
        model = build_model(xtr.shape[1], 10)
        model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.003), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1)
    seconds = time.perf_counter() - start
    n_fit = len(xtr) - int(len(xtr) * 0.1 + 0.999999)
    loss, acc = model.evaluate(xte, yte, batch_size=512, verbose=0)
    print(f"held-out accuracy: {acc:.4f} (loss {loss:.4f}) on {len(xte):,} images never trained on")
    print(f"training speed: {n_fit * args.epochs / seconds:,.0f} samples/s ({seconds:.2f} s for {args.epochs} "
          "epochs, validation included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
