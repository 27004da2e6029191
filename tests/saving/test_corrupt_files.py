"""Corrupt, truncated and foreign files: loading either succeeds or raises a clean Python exception (ValueError,
OSError or TypeError, with a message) -- never a crash, a hang or a stray KeyError / AttributeError from inside.

Hypothesis flips bits, truncates and zeroes byte ranges of a saved .keras archive (as a whole, and member by member
inside a valid zip, so that the zip's CRC does not catch everything first) and of a .weights.h5 file. The zip's
CRC-32 protects every member of a .keras file, so a corrupted archive that still loads must give the saved weights;
HDF5 has no checksum over the data, so a corrupt .weights.h5 may load different numbers: for it only the clean
failure is checked.
"""
from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import layers as L

CLEAN_ERRORS = (ValueError, OSError, TypeError)
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _model():
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.ones((2, 3), "float32"), np.ones((2, 2), "float32"))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    model = _model()
    model.save(folder / "m.keras")
    model.save_weights(folder / "m.weights.h5")
    with zipfile.ZipFile(folder / "m.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return {"model": model, "keras": (folder / "m.keras").read_bytes(),
            "weights": (folder / "m.weights.h5").read_bytes(), "members": members}


# A corruption: ("flip", [(position, bit), ...]), ("truncate", fraction) or ("zero", start fraction, length).
corruptions = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True), st.integers(1, 256)),
)


def _corrupt(data: bytes, corruption) -> bytes:
    b = bytearray(data)
    kind = corruption[0]
    if kind == "flip":
        for where, bit in corruption[1]:
            b[int(where * len(b))] ^= 1 << bit
    elif kind == "truncate":
        b = b[:int(corruption[1] * len(b))]
    else:
        start = int(corruption[1] * len(b))
        stop = min(len(b), start + corruption[2])
        b[start:stop] = bytes(stop - start)
    return bytes(b)


def _load_cleanly(load):
    """The loaded object, or None after a clean exception (which must say something)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load()
        except CLEAN_ERRORS as e:
            assert str(e).strip(), f"{type(e).__name__} without a message"
            return None


def _assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


@FUZZ
@given(corruption=corruptions)
def test_corrupt_keras_archive(saved, tmp_path, corruption):
    path = tmp_path / "c.keras"
    path.write_bytes(_corrupt(saved["keras"], corruption))
    loaded = _load_cleanly(lambda: fastnn.saving.load_model(path))
    if loaded is not None:  # the zip's CRC let it through: then it is the saved model
        _assert_same_weights(loaded, saved["model"])


@FUZZ
@given(member=st.sampled_from(["config.json", "model.weights.h5", "metadata.json"]), corruption=corruptions)
def test_corrupt_member_inside_a_valid_zip(saved, tmp_path, member, corruption):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in saved["members"].items():
            zf.writestr(name, _corrupt(data, corruption) if name == member else data)
    path = tmp_path / "c.keras"
    path.write_bytes(buf.getvalue())
    loaded = _load_cleanly(lambda: fastnn.saving.load_model(path))
    if loaded is not None and member == "metadata.json":  # never read for loading
        _assert_same_weights(loaded, saved["model"])


@FUZZ
@given(corruption=corruptions)
def test_corrupt_weights_file(saved, tmp_path, corruption):
    path = tmp_path / "c.weights.h5"
    path.write_bytes(_corrupt(saved["weights"], corruption))
    target = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)])
    target.compile(optimizer="adam", loss="mse")
    _load_cleanly(lambda: target.load_weights(path))
    for w in target.weights:  # whatever happened, the model still holds arrays of its own shapes
        assert w.numpy().shape == tuple(w.shape)


def test_zip_that_is_not_a_keras_archive(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a Keras model archive: it has no `config.json`"):
        fastnn.saving.load_model(path)


def test_archive_without_weights(saved, tmp_path):
    path = tmp_path / "noweights.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", saved["members"]["metadata.json"])
        zf.writestr("config.json", saved["members"]["config.json"])
    with pytest.raises(ValueError, match="expected a model.weights.h5 file"):
        fastnn.saving.load_model(path)


@pytest.mark.parametrize("config", [b"[]", b"null", b"{}", b'{"class_name": "Sequential"}', b'{"class_name": 3}',
                                    b'{"class_name": "NoSuchLayer", "config": {}}', b"\xff\xfe", b"{" * 5000])
def test_bad_configs(saved, tmp_path, config):
    path = tmp_path / "cfg.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", saved["members"]["metadata.json"])
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", saved["members"]["model.weights.h5"])
    with pytest.raises(CLEAN_ERRORS) as info:
        fastnn.saving.load_model(path)
    assert str(info.value).strip()


def test_unknown_layer_class_says_custom_objects(saved, tmp_path):
    config = saved["members"]["config.json"].replace(b'"class_name": "Dense"', b'"class_name": "MyDense"', 1)
    path = tmp_path / "custom.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", saved["members"]["model.weights.h5"])
    with pytest.raises((TypeError, ValueError), match="custom_objects"):  # Keras: a TypeError
        fastnn.saving.load_model(path)


def test_not_files_of_the_format(tmp_path):
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a zip archive"):
        fastnn.saving.load_model(text)
    empty = tmp_path / "empty.weights.h5"
    empty.write_bytes(b"")
    model = _model()
    with pytest.raises(OSError, match="not a valid HDF5 file"):
        model.load_weights(empty)
    wrong = tmp_path / "zip.weights.h5"
    wrong.write_bytes((tmp_path / "text.keras").read_bytes())
    with pytest.raises(OSError, match="not a valid HDF5 file"):
        model.load_weights(wrong)
    with pytest.raises(ValueError, match="File format not supported"):
        fastnn.saving.load_model(tmp_path / "model.pt")


def test_h5_with_a_non_numeric_dataset_and_a_soft_link(saved, tmp_path):
    import h5py

    path = tmp_path / "odd.weights.h5"
    path.write_bytes(saved["weights"])
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.array([b"text"])
        del f["layers/dense_1/vars/1"]
        f["layers/dense_1/vars/1"] = h5py.SoftLink("/layers/dense_1/vars/0")
    model = _model()
    with pytest.raises(ValueError) as info:
        model.load_weights(path)
    msg = str(info.value)
    assert "2 objects could not be loaded" in msg and "not a numeric variable" in msg
