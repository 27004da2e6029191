"""Listings 1-4 of the article (the dense ones) on a synthetic regression problem.

1. A regression MLP; 2. a custom activation written with operators only (used here as the activation of the
listing-3 layer); 3. initializers by name; 4. compile and fit (mse, Adam, 100 epochs, batch 32, validation data).
The listings are unchanged apart from the import and their free names: input_dim, output_dim and the data
(X_train, y_train, X_test, y_test: 1,000 + 200 samples of a smooth function of 8 inputs plus noise, generated here,
offline). ``--quick``: a few batches of one epoch.
"""
import numpy as np
from example_data import options, report

import fastnn as keras


class tf:  # noqa: N801 -- the listings write `tf.keras....`: `tf.keras` is fastnn here
    keras = keras


args = options(__doc__.splitlines()[0], default_epochs=100)
tf.keras.utils.set_random_seed(0)
input_dim, output_dim = 8, 2
rng = np.random.default_rng(0)
n_train, n_test = (128, 64) if args.quick else (1000, 200)
X = rng.uniform(-1.0, 1.0, size=(n_train + n_test, input_dim)).astype("float32")
targets = np.stack([np.sin(2.0 * X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 3]) - 0.5 * X[:, 4] ** 2], axis=1)
targets += 0.05 * rng.standard_normal(targets.shape)
X_train, X_test = X[:n_train], X[n_train:]
y_train, y_test = targets[:n_train].astype("float32"), targets[n_train:].astype("float32")

# --- listing 1 ---
model = tf.keras.models.Sequential([
    tf.keras.layers.Dense(units=64, activation='relu', input_shape=(input_dim,)),
    tf.keras.layers.Dense(units=64, activation='relu'),
    tf.keras.layers.Dropout(rate=0.5),
    tf.keras.layers.Dense(units=output_dim)
])
# --- end of listing 1 ---
model.summary()

# --- listing 4 ---
model.compile(loss='mse', optimizer='adam')
history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=32, validation_data=(X_test, y_test))
# --- end of listing 4 ---
print("listing 1's MLP:")
report(history, model, X_test, y_test)


# --- listing 2 ---
def my_activation_function(x):
    return x ** 2
# --- end of listing 2 ---


# --- listing 3 ---
model = tf.keras.models.Sequential([
    tf.keras.layers.Dense(units=64, activation='relu', input_shape=(input_dim,),
                          kernel_initializer='random_normal', bias_initializer='zeros')
])
# --- end of listing 3 ---
# The reader's completion of listing 3: a layer with listing 2's activation, then the regression output.
model.add(tf.keras.layers.Dense(units=32, activation=my_activation_function))
model.add(tf.keras.layers.Dense(units=output_dim))
model.summary()

# listing 4 again, on this model
model.compile(loss='mse', optimizer='adam')
history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=32, validation_data=(X_test, y_test))
print("listing 3's model with listing 2's activation:")
report(history, model, X_test, y_test)
