"""The article's image models against Keras 3 (TensorFlow backend), each built twice -- fastnn and Keras -- by ONE
function parameterised by the module, with fastnn's initial weights copied into the Keras model:

- listing 5 (a small CNN with "same" padding), listing 6 (a CNN with BatchNormalization and Dropout after each
  convolution, the listing's lines in listing 9's style as examples/listing6_batchnorm_dropout.py builds it) and
  listing 9 (the classic CNN), at the article's size (28x28x1, full width);
- listing 7's residual network in its working form (examples/listing7_resnet.py: the stem of two residual blocks,
  the loop of blocks whose width doubles up to 8x, a 1x1 convolution + BatchNormalization projecting the shortcut
  where the width changes, GlobalAveragePooling2D, softmax) at reduced width and depth: base width 8 instead of 64
  and 4 loop blocks (widths 16, 32, 64, 64) instead of 13, on 12x12x1 images -- the full network has 52 million
  weights and costs ~82 GFLOPs per image, which is no test;
- the benchmark ResNet of issue 15 (32x32x3, Conv2D(64, 3, "same") -> BN -> ReLU, residual blocks Conv -> BN ->
  ReLU -> Conv -> BN, Add, ReLU, GlobalAveragePooling2D, Dense(10, softmax)) with 2 residual blocks.

Checked: (a) predictions (inference mode, BatchNormalization on random moving statistics, Dropout as printed) at
identical weights agree to 1e-5 relative; (b) two epochs of fit (shuffle=False, Dropout rate 0) with
SGD(momentum=0.9, clipvalue) and with Adam give the same per-epoch losses, final predictions and every weight,
BatchNormalization's moving_mean / moving_variance included (listing 6 and the two ResNets train BatchNormalization
in training mode): in float64 for all five models (to 1e-9: the same math), in float32 for the three CNNs (SGD to
1e-5 relative; Adam by the bulk of the weights). Why the residual networks are not compared in float32, and every
tolerance with what was measured: at the tests. Synthetic images (seeded), so no data files are needed; about 45 s
on 2 cores (the float64 ResNet runs are most of it).

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_article_models.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn.testing import keras_parity  # noqa: E402

NUM_CLASSES = 10


# --- the models: one builder each, `lib` is fastnn or keras; `dtype` goes to every layer (fastnn has no global
# dtype policy), `rate` is the Dropout rate (0 for the training comparisons: the masks cannot match) ---------------
def listing5(lib, dtype="float32", rate=0.0):
    L = lib.layers
    return lib.models.Sequential([
        L.Input((28, 28, 1), dtype=dtype),
        L.Conv2D(filters=32, kernel_size=(3, 3), padding="same", activation="relu", dtype=dtype),
        L.MaxPooling2D(pool_size=(2, 2), strides=2, dtype=dtype),
        L.Conv2D(filters=64, kernel_size=(3, 3), padding="same", activation="relu", dtype=dtype),
        L.MaxPooling2D(pool_size=(2, 2), strides=2, dtype=dtype),
        L.Flatten(dtype=dtype),
        L.Dense(units=NUM_CLASSES, activation="softmax", dtype=dtype),
    ])


def listing6(lib, dtype="float32", rate=0.0):
    L = lib.layers
    model = lib.models.Sequential([L.Input((28, 28, 1), dtype=dtype)])
    model.add(L.Conv2D(filters=32, kernel_size=(3, 3), activation="relu", dtype=dtype))
    model.add(L.BatchNormalization(dtype=dtype))  # listing 6
    model.add(L.Dropout(rate, dtype=dtype))  # listing 6 (0.2 as printed)
    model.add(L.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    model.add(L.Conv2D(filters=64, kernel_size=(3, 3), activation="relu", dtype=dtype))
    model.add(L.BatchNormalization(dtype=dtype))  # listing 6
    model.add(L.Dropout(rate, dtype=dtype))  # listing 6
    model.add(L.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    model.add(L.Flatten(dtype=dtype))
    model.add(L.Dense(units=NUM_CLASSES, activation="softmax", dtype=dtype))
    return model


def listing9(lib, dtype="float32", rate=0.0):
    L = lib.layers
    model = lib.models.Sequential([L.Input((28, 28, 1), dtype=dtype)])
    model.add(L.Conv2D(filters=32, kernel_size=(3, 3), activation="relu", dtype=dtype))
    model.add(L.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    model.add(L.Conv2D(filters=64, kernel_size=(3, 3), activation="relu", dtype=dtype))
    model.add(L.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    model.add(L.Conv2D(filters=128, kernel_size=(3, 3), activation="relu", dtype=dtype))
    model.add(L.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    model.add(L.Flatten(dtype=dtype))
    model.add(L.Dense(units=128, activation="relu", dtype=dtype))
    model.add(L.Dropout(rate=rate, dtype=dtype))  # 0.5 as printed
    model.add(L.Dense(units=NUM_CLASSES, activation="softmax", dtype=dtype))
    return model


def _residual_block(L, inputs, filters, dtype):
    # Listing 7's residual_block, working form: a 1x1 projection of the shortcut where the width changes.
    x = L.Conv2D(filters, kernel_size=3, strides=1, padding="same", dtype=dtype)(inputs)
    x = L.BatchNormalization(dtype=dtype)(x)
    x = L.Activation("relu", dtype=dtype)(x)
    x = L.Conv2D(filters, kernel_size=3, strides=1, padding="same", dtype=dtype)(x)
    x = L.BatchNormalization(dtype=dtype)(x)
    shortcut = inputs
    if inputs.shape[-1] != filters:
        shortcut = L.Conv2D(filters, kernel_size=1, strides=1, padding="same", dtype=dtype)(inputs)
        shortcut = L.BatchNormalization(dtype=dtype)(shortcut)
    return L.Activation("relu", dtype=dtype)(L.Add(dtype=dtype)([shortcut, x]))


def listing7(lib, dtype="float32", rate=0.0, base=8, loop_blocks=4):
    # examples/listing7_resnet.py at 1/8 of the width and 4 of the 13 loop blocks (see the module docstring).
    L = lib.layers
    inputs = L.Input((12, 12, 1), dtype=dtype)
    x = L.Conv2D(base, kernel_size=3, strides=1, padding="same", dtype=dtype)(inputs)  # resnet_layer's stem
    x = L.Activation("relu", dtype=dtype)(L.BatchNormalization(dtype=dtype)(x))
    for _ in range(2):
        x = _residual_block(L, x, base, dtype)
    for i in range(2, 2 + loop_blocks):
        x = _residual_block(L, x, base * min(2 ** (i - 1), 8), dtype)
    x = L.GlobalAveragePooling2D(dtype=dtype)(x)
    outputs = L.Dense(NUM_CLASSES, activation="softmax", dtype=dtype)(x)
    return lib.models.Model(inputs=inputs, outputs=outputs)


def benchmark_resnet(lib, dtype="float32", rate=0.0, blocks=2):
    # Issue 15's benchmark ResNet with 2 residual blocks (fewer than the benchmark's).
    L = lib.layers
    inputs = L.Input((32, 32, 3), dtype=dtype)
    x = L.Conv2D(64, 3, padding="same", dtype=dtype)(inputs)
    x = L.Activation("relu", dtype=dtype)(L.BatchNormalization(dtype=dtype)(x))
    for _ in range(blocks):
        y = L.Conv2D(64, 3, padding="same", dtype=dtype)(x)
        y = L.Activation("relu", dtype=dtype)(L.BatchNormalization(dtype=dtype)(y))
        y = L.BatchNormalization(dtype=dtype)(L.Conv2D(64, 3, padding="same", dtype=dtype)(y))
        x = L.Activation("relu", dtype=dtype)(L.Add(dtype=dtype)([x, y]))
    x = L.GlobalAveragePooling2D(dtype=dtype)(x)
    return lib.models.Model(inputs, L.Dense(NUM_CLASSES, activation="softmax", dtype=dtype)(x))


MODELS = {"listing5": listing5, "listing6": listing6, "listing9": listing9, "listing7": listing7,
          "benchmark_resnet": benchmark_resnet}
RESIDUAL_NETWORKS = ("listing7", "benchmark_resnet")
IMAGES = {"listing5": 32, "listing6": 32, "listing9": 32, "listing7": 16, "benchmark_resnet": 16}  # 4 or 2 batches of 8
# Dropout as printed for the predictions (inference mode: no effect); 0 for training, whose masks cannot match.
PRINTED_DROPOUT = {"listing6": 0.2, "listing9": 0.5}

# Hyperparameters exactly representable in float32. Keras turns a Python float into a float32 tensor before casting it
# to a variable's dtype (its learning-rate variable, SGD's momentum, Adam's beta powers), so with beta_2 = 0.999 its
# Adam step at t = 1 is 6.6e-6 larger than the exact one fastnn takes, in float64 too, and Adam amplifies that into
# 1e-3 differences of weights with tiny gradients; tests/e2e/test_keras_optimizers.py judges that with its own
# tolerance. Here both libraries then run the same numbers, and the comparison measures the models. clipvalue 0.01
# clips 1-90% of the gradients of each model at its first step.
SGD = lambda lib: lib.optimizers.SGD(learning_rate=2 ** -7, momentum=float(np.float32(0.9)),  # noqa: E731
                                     clipvalue=0.01)
ADAM = lambda lib: lib.optimizers.Adam(learning_rate=2 ** -10, beta_1=float(np.float32(0.9)),  # noqa: E731
                                       beta_2=float(np.float32(0.999)))


def _data(name, seed=0):
    """Images uniform in [0, 1) as float32 (exact in float64 too, so Keras's fit -- which casts float64 arrays to
    float32 -- and fastnn see the same numbers in every run) and one-hot labels, for model `name`."""
    shape = tuple(MODELS[name](fastnn).inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (IMAGES[name],) + shape).astype("float32")
    return x, np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, IMAGES[name])]


def _build(name, rate=0.0):
    return lambda lib, dtype="float32": MODELS[name](lib, dtype, rate=rate)


def _with_random_batch_norm_statistics(model, seed=0):
    """The model's weights with BatchNormalization's gamma, beta and moving statistics drawn at random (fresh ones are
    1, 0, 0, 1: inference mode would then hardly normalize)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])
    return model.get_weights()


@pytest.mark.parametrize("name", list(MODELS))
def test_predictions_at_identical_weights_match_keras(name):
    x, _ = _data(name)
    build = _build(name, rate=PRINTED_DROPOUT.get(name, 0.0))
    fastnn.utils.set_random_seed(0)
    weights = _with_random_batch_norm_statistics(build(fastnn))
    f_model, k_model = keras_parity.model_pair(build, weights=weights)
    assert [(w.name, tuple(w.shape)) for w in f_model.weights] == [(w.name, tuple(w.shape)) for w in k_model.weights]
    assert [type(layer).__name__ for layer in f_model.layers] == [type(layer).__name__ for layer in k_model.layers]
    expected = k_model.predict(x, verbose=0)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(f_model(x).numpy(), expected, rtol=1e-5, atol=1e-7)  # the call, inference mode


def _assert_runs_match(f_model, k_model, f_losses, k_losses, x, losses_rtol, predictions_rtol, predictions_atol):
    assert len(f_losses) == len(k_losses) == 2 and np.all(np.isfinite(f_losses))
    np.testing.assert_allclose(f_losses, k_losses, rtol=losses_rtol)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=predictions_rtol,
                               atol=predictions_atol)


def _assert_batch_norm_trained(f_model):
    # BatchNormalization ran in training mode: its moving statistics left their initial 0 / 1.
    for layer in f_model.layers:
        if type(layer).__name__ == "BatchNormalization":
            assert np.abs(layer.moving_mean.numpy()).max() > 1e-4, layer.name
            assert np.abs(layer.moving_variance.numpy() - 1).max() > 1e-4, layer.name


@pytest.mark.parametrize("optimizer", [SGD, ADAM], ids=["sgd_momentum_clipvalue", "adam"])
@pytest.mark.parametrize("name", list(MODELS))
def test_float64_training_matches_keras(name, optimizer):
    # In float64 both libraries do the same math to rounding (measured, seeds 0-1: predictions within 3e-13, 99% of
    # the weights within 4e-14 of their array's scale, every weight within 5e-11 of it or 4e-12 absolute), so this
    # judges every model -- the residual networks included, see the float32 SGD test -- far below the 1e-5.
    # Losses to 1e-6: Keras's history holds float32 means. atol 1e-10: the biases of the convolutions that feed
    # BatchNormalization have an exactly-zero gradient, so they hold nothing but rounding (~1e-16, after Adam ~1e-12).
    x, y = _data(name)
    fastnn.utils.set_random_seed(0)
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(_build(name), optimizer, x, y, dtype="float64")
    assert f_model.get_weights()[0].dtype == "float64"
    _assert_runs_match(f_model, k_model, f_losses, k_losses, x, 1e-6, 1e-9, 1e-12)
    keras_parity.assert_weights_close(f_model, k_model, rtol=1e-9, atol=1e-10)
    _assert_batch_norm_trained(f_model)


def _assert_float32_weights_match(f_model, k_model, exact_model, rtol, atol):
    """fastnn's float32 weights against Keras's float32 ones to rtol / atol, element by element -- except where the
    two float32 runs took different sides of a discrete event (a ReLU or max-pool choice decided by float32
    rounding; both libraries then stay on their side): there fastnn's weight must be the closer of the two to the
    exact trajectory, the float64 run (which test_float64_training_matches_keras matches to Keras's at 1e-9). And
    fastnn's float32 run must track the exact one to rtol / atol everywhere."""
    names = keras_parity.weight_names(k_model)
    for name, f, k, e in zip(names, f_model.get_weights(), k_model.get_weights(), exact_model.get_weights()):
        e = e.astype(np.float64)
        np.testing.assert_allclose(f, e, rtol=rtol, atol=atol, err_msg=f"{name}: fastnn float32 vs float64")
        apart = np.abs(f.astype(np.float64) - k) > atol + rtol * np.abs(k)
        fastnn_closer = np.abs(f.astype(np.float64) - e) <= np.abs(k.astype(np.float64) - e)
        assert np.all(fastnn_closer[apart]), f"{name}: where fastnn and Keras part, Keras is the closer to float64"


@pytest.mark.parametrize("name", [n for n in MODELS if n not in RESIDUAL_NETWORKS])
def test_float32_sgd_training_matches_keras(name):
    # Losses, predictions and every weight to 1e-5 relative; the 1e-6 absolute floor is for weights near zero.
    # Where the float32 runs part (listing 5, seed 0: 19 of the first conv's 288 kernel weights, up to 3.9e-6 apart,
    # after one ReLU / pooling choice went the other way in float32), fastnn's weights are the ones that follow the
    # float64 run (within 4e-8 of it; Keras's 3.9e-6 off it): _assert_float32_weights_match. Not the residual
    # networks: Keras's float32 gradients of those are themselves up to 5e-3 relative off its float64 ones
    # (TensorFlow's float32 BatchNormalization backward loses digits to cancellation; fastnn's sums in double), and a
    # single ReLU landing on the other side of zero in one library changes a gradient by ~1e-2 -- float32 rounding,
    # not the models; the float64 test judges them.
    x, y = _data(name)
    fastnn.utils.set_random_seed(0)
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(_build(name), SGD, x, y)
    _assert_runs_match(f_model, k_model, f_losses, k_losses, x, 1e-5, 1e-5, 1e-6)
    fastnn.utils.set_random_seed(0)  # the same initial weights as fit_pair's, in float64
    initial = _build(name)(fastnn, "float32").get_weights()
    exact = _build(name)(fastnn, "float64")
    exact.set_weights([w.astype(np.float64) for w in initial])
    exact.compile(optimizer=SGD(fastnn), loss=fastnn.losses.CategoricalCrossentropy(dtype="float64"))
    exact.fit(x.astype(np.float64), y.astype(np.float64), batch_size=8, epochs=2, shuffle=False, verbose=0)
    _assert_float32_weights_match(f_model, k_model, exact, rtol=1e-5, atol=1e-6)
    if name == "listing6":
        _assert_batch_norm_trained(f_model)


@pytest.mark.parametrize("name", [n for n in MODELS if n not in RESIDUAL_NETWORKS])
def test_float32_adam_training_matches_keras(name):
    # Adam divides by sqrt(v): a weight whose gradient is rounding noise (the conv biases under ReLU +
    # BatchNormalization of listing 6) takes full-size steps in a direction set by that noise, so it is judged as
    # test_keras_crosscheck.py judges Adam runs. Errors relative to each array's scale (scaled_weight_errors), over
    # all the weights together: the 99th percentile below 2e-5 (measured <= 4e-6, seeds 0-2) and every one below
    # 0.05 (measured <= 2.6e-2). Losses to 2e-5 (measured <= 3.2e-6), predictions to 2e-5 absolute (<= 4.9e-6).
    x, y = _data(name)
    fastnn.utils.set_random_seed(0)
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(_build(name), ADAM, x, y)
    _assert_runs_match(f_model, k_model, f_losses, k_losses, x, 2e-5, 0, 2e-5)
    keras_parity.assert_bulk_of_weights_close(f_model, k_model, bulk=2e-5, quantile=99, everything=0.05)
    if name == "listing6":
        _assert_batch_norm_trained(f_model)
