"""Listing 9 of the article, "A classic CNN", trained on MNIST digits.

The listing is unchanged apart from the import and its free names (image_size, color_channels, num_classes and the
data). Full recipe: 4 epochs, batch 64, on 8,000 MNIST images, evaluated on 2,000 held out (about 97.5%).
``--quick``: a few batches of one epoch.
"""
from example_data import mnist_images, options, report

import fastnn as keras
from fastnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastnn.models import Sequential

args = options(__doc__.splitlines()[0], default_epochs=4)
keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = mnist_images(args.quick)
image_size, color_channels, num_classes = 28, 1, 10

# --- listing 9 ---
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
# --- end of listing 9 ---

model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2)
report(history, model, x_test, y_test)
