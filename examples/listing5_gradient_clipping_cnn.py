"""Listing 5 of the article, "Gradient clipping and a small CNN", trained on MNIST digits.

The listing is unchanged apart from the import and its free names (img_height, img_width, num_channels,
num_classes and the data); the compile call (the listing's optimizer, categorical crossentropy) and fit are the
reader's. Full recipe: 3 epochs, batch 32, on 8,000 MNIST images, evaluated on 2,000 held out. ``--quick``: a few
batches of one epoch.
"""
from example_data import mnist_images, options, report

import fastnn as keras

args = options(__doc__.splitlines()[0], default_epochs=3)
keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = mnist_images(args.quick)
img_height, img_width, num_channels, num_classes = 28, 28, 1, 10

# --- listing 5 ---
optimizer = keras.optimizers.SGD(clipvalue=0.5)
model = keras.models.Sequential([
    keras.layers.Conv2D(filters=32, kernel_size=(3,3), padding="same", activation="relu",
                        input_shape=(img_height, img_width, num_channels)),
    keras.layers.MaxPooling2D(pool_size=(2,2), strides=2),
    keras.layers.Conv2D(filters=64, kernel_size=(3,3), padding="same", activation="relu"),
    keras.layers.MaxPooling2D(pool_size=(2,2), strides=2),
    keras.layers.Flatten(),
    keras.layers.Dense(units=num_classes, activation="softmax")
])
# --- end of listing 5 ---

model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=2)
report(history, model, x_test, y_test)
