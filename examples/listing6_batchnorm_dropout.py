"""Listing 6 of the article, "BatchNormalization and Dropout added to a model", on a small CNN trained on MNIST.

The listing's two ``model.add`` lines are unchanged apart from the import (``tf.keras`` is ``fastnn``); the model
they are added to is the reader's: here a Sequential CNN in the style of listing 9, with the listing's two lines
after each convolution block. Full recipe: 3 epochs, batch 64, Adam, categorical crossentropy, on 8,000 MNIST
images, evaluated on 2,000 held out (BatchNormalization then runs on its moving statistics). ``--quick``: a few
batches of one epoch.
"""
from example_data import mnist_images, options, report

import fastnn as tf_keras  # the listing's `tf.keras`
from fastnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from fastnn.models import Sequential


class tf:  # noqa: N801 -- the listing writes `tf.keras.layers...`: `tf.keras` is fastnn here
    keras = tf_keras


args = options(__doc__.splitlines()[0], default_epochs=3)
tf.keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = mnist_images(args.quick)
image_size, color_channels, num_classes = 28, 1, 10

model = Sequential()
model.add(Conv2D(filters=32, kernel_size=(3, 3), activation='relu', input_shape=(image_size, image_size, color_channels)))
# --- listing 6 ---
model.add(tf.keras.layers.BatchNormalization())
model.add(tf.keras.layers.Dropout(0.2))
# --- end of listing 6 ---
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(filters=64, kernel_size=(3, 3), activation='relu'))
# --- listing 6 ---
model.add(tf.keras.layers.BatchNormalization())
model.add(tf.keras.layers.Dropout(0.2))
# --- end of listing 6 ---
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(units=num_classes, activation='softmax'))
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])

model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2)
report(history, model, x_test, y_test)
