"""Row-wise MNIST with an LSTM: each digit read as a sequence of 28 rows of 28 pixels.

Not a listing of the article: the recurrent recipe of the issue that added the recurrent layers, LSTM(128) ->
Dense(10, softmax), categorical crossentropy, Adam, 5 epochs, batch 64, on 8,000 MNIST images, evaluated on 2,000
held out (about 93%, as Keras 3 reaches with it). ``--quick``: a few batches of one epoch.
"""
from example_data import mnist_images, options, report

import fastnn as keras
from fastnn.layers import LSTM, Dense, Input
from fastnn.models import Sequential

args = options(__doc__.splitlines()[0], default_epochs=5)
keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = mnist_images(args.quick)
x_train, x_test = x_train[..., 0], x_test[..., 0]  # (n, 28, 28): 28 timesteps of 28 pixels

model = Sequential([
    Input((28, 28)),
    LSTM(128),
    Dense(10, activation='softmax'),
])
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])

model.summary()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2)
report(history, model, x_test, y_test)
