"""Listing 9 of the article (the classic CNN) trained on real digits: the issue's recipe -- 4 epochs, batch 64, Adam,
categorical crossentropy, on the first 8,000 images of the shared MNIST test split -- reaches >= 97% on the last
2,000 (Keras 3 reaches 97.5% with this recipe). fastnn only; skips cleanly without the shared data
(tests/e2e/conftest.py's ``shared_mnist_dir``). About 10-15 s on 2 cores."""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn.datasets import mnist
from fastnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastnn.models import Sequential


def listing9(image_size=28, color_channels=1, num_classes=10):
    # As printed in the article (../shared/SEED_USAGE.md, listing 9), with fastnn's imports.
    model = Sequential()
    model.add(Conv2D(filters=32, kernel_size=(3,3), activation='relu', input_shape=(image_size, image_size, color_channels)))
    model.add(MaxPooling2D(pool_size=(2,2)))
    model.add(Conv2D(filters=64, kernel_size=(3,3), activation='relu'))
    model.add(MaxPooling2D(pool_size=(2,2)))
    model.add(Conv2D(filters=128, kernel_size=(3,3), activation='relu'))
    model.add(MaxPooling2D(pool_size=(2,2)))
    model.add(Flatten())
    model.add(Dense(units=128, activation='relu'))
    model.add(Dropout(rate=0.5))
    model.add(Dense(units=num_classes, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
    return model


def test_listing9_cnn_reaches_97_percent_on_held_out_mnist(shared_mnist_dir):
    x, y = mnist.load_split("test", path=shared_mnist_dir)
    x = (x.astype("float32") / 255.0)[..., None]
    y = fastnn.utils.to_categorical(y, 10)
    fastnn.utils.set_random_seed(0)
    model = listing9()
    assert model.count_params() == 110_474
    history = model.fit(x[:8000], y[:8000], epochs=4, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] / 3, losses
    loss, acc = model.evaluate(x[-2000:], y[-2000:], verbose=0)
    # The bar. Measured with this exact recipe here (AVX-512, 2 threads), seeds 0-7: 0.9635-0.9775 (mean
    # 0.971, sd 0.0045; seed 0: 0.9745); Keras 3 with TensorFlow, seeds 0-3: 0.9715-0.9785 (mean 0.976). So the
    # bar holds for seed 0 (also on the avx2 and generic kernel paths) with about one sd of room, not for every
    # seed: a change of summation order that moves the trajectory could cross it without a bug. Keras 3, seeds 0-7,
    # same machine: 0.965-0.9785 (mean 0.974, sd 0.0042; seed 7 misses the bar) vs fastnn 0.9711 (sd 0.0044): Welch
    # t = -1.34, p = 0.20, no real gap. From the same (Keras's) initial weights without shuffling fastnn ends >= Keras
    # for seeds 0-3 (mean 0.9644 vs 0.9614), and fastnn's fit from Keras's seed 0-3 initial weights reaches 0.9755
    # (Keras on them: 0.9756); initializer limits, shuffling, loss, Adam, Dropout and evaluate were checked too.
    assert acc >= 0.97, acc
