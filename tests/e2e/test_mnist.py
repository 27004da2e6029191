"""fastnn.datasets.mnist (IDX reading, search order, download with checksum and atomic writes, offline errors)
and real-data training: an MLP on the first 8,000 shared MNIST test images, evaluated on the last 2,000."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import urllib.error

import numpy as np
import pytest

import fastnn
from fastnn.datasets import mnist


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test touches the user's cache or the network."""
    monkeypatch.setenv("FASTNN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTNN_MNIST_DIR", raising=False)
    monkeypatch.delenv("FASTNN_OFFLINE", raising=False)

    def no_network(url, timeout):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(mnist, "_urlopen", no_network)


def test_read_idx_shared_test_split(shared_mnist_dir):
    x, y = mnist.load_split("test", path=shared_mnist_dir)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert 0 < x.mean() < 255


def test_mlp_reaches_real_held_out_accuracy(shared_mnist_dir):
    x, y = mnist.load_split("test", path=shared_mnist_dir)
    x = x.reshape(len(x), -1).astype("float32") / 255.0
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([fastnn.Input((784,)), fastnn.layers.Dense(128, activation="relu"),
                               fastnn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:8000], y[:8000], batch_size=64, epochs=5, verbose=0)
    loss, acc = model.evaluate(x[-2000:], y[-2000:], verbose=0)
    # Measured with this exact setup over seeds 0-19: held-out accuracy 0.946-0.959 (mean 0.955, sd 0.004; seed
    # 0 gives 0.959). A linear softmax model (Dense(10) only) trained the same way reaches 0.928-0.931, so 0.94
    # fails a model that learned no more than a linear one, while leaving 0.006 below the worst seed (~3.5 sd
    # below the mean) for kernel-path and thread-count rounding that changes the trajectory.
    assert acc >= 0.94, acc


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_set(folder, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        xi, yi = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        img, lab = mnist.FILES[split]
        _write_idx(os.path.join(folder, img + ".gz"), xi)
        _write_idx(os.path.join(folder, lab + ".gz"), yi)
        data[split] = (xi, yi)
    return data


def test_load_data_from_idx_folder_env_var_and_cache(tmp_path, monkeypatch):
    data = _fake_set(tmp_path / "idx")
    (xtr, ytr), (xte, yte) = mnist.load_data(path=tmp_path / "idx")
    np.testing.assert_array_equal(xtr, data["train"][0])
    np.testing.assert_array_equal(yte, data["test"][1])
    assert xtr.dtype == np.uint8 and xtr.shape == (6, 28, 28)
    monkeypatch.setenv("FASTNN_MNIST_DIR", str(tmp_path / "idx"))
    assert mnist.load_data()[0][0].shape == (6, 28, 28)
    monkeypatch.delenv("FASTNN_MNIST_DIR")
    cache = os.path.join(mnist.cache_dir(), "mnist.npz")
    os.makedirs(os.path.dirname(cache))
    np.savez(cache, x_train=xtr[:2], y_train=ytr[:2], x_test=xte, y_test=yte)
    assert mnist.load_data()[0][0].shape == (2, 28, 28)


def test_missing_data_without_network_says_where_to_put_it(tmp_path, shared_mnist_dir):
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data(path=shared_mnist_dir)  # only the test split is there
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(shared_mnist_dir) in msg and "FASTNN_MNIST_DIR" in msg
    assert "network disabled" in msg


def test_offline_env_var_skips_the_download(monkeypatch):
    called = []
    monkeypatch.setattr(mnist, "_urlopen", lambda url, timeout: called.append(url))
    monkeypatch.setenv("FASTNN_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="FASTNN_OFFLINE"):
        mnist.load_data()
    assert not called


def _npz_bytes():
    buf = io.BytesIO()
    z = np.zeros((2, 28, 28), np.uint8)
    np.savez(buf, x_train=z, y_train=np.array([1, 2], np.uint8), x_test=z[:1], y_test=np.array([3], np.uint8))
    return buf.getvalue()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_verifies_checksum_and_writes_atomically(monkeypatch):
    payload = _npz_bytes()
    urls = []

    def fake(url, timeout):
        urls.append((url, timeout))
        return _Response(payload)

    monkeypatch.setattr(mnist, "_urlopen", fake)
    # wrong checksum: an error, and nothing left in the cache folder
    with pytest.raises(ValueError, match="SHA-256"):
        mnist.load_data()
    assert urls[0][0] == mnist.ORIGIN and urls[0][1] > 0
    assert os.listdir(mnist.cache_dir()) == []
    # right checksum: the file lands in the cache and loads
    monkeypatch.setattr(mnist, "NPZ_SHA256", hashlib.sha256(payload).hexdigest())
    (xtr, ytr), (xte, yte) = mnist.load_data()
    assert ytr.tolist() == [1, 2] and os.listdir(mnist.cache_dir()) == ["mnist.npz"]
    # a second call reads the cache (no download)
    monkeypatch.setattr(mnist, "_urlopen", lambda url, timeout: pytest.fail("downloaded again"))
    assert mnist.load_data()[1][1].tolist() == [3]


def test_interrupted_download_leaves_no_partial_file(monkeypatch):
    class Broken(_Response):
        def read(self, n=-1):
            if self.tell() > 10:
                raise ConnectionResetError("connection reset")
            return super().read(11)

    monkeypatch.setattr(mnist, "_urlopen", lambda url, timeout: Broken(_npz_bytes()))
    with pytest.raises(FileNotFoundError, match="connection reset"):
        mnist.load_data()
    assert os.listdir(mnist.cache_dir()) == []


def test_bad_files(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2 + b"\x00" * 3)
    with pytest.raises(ValueError, match="header says"):
        mnist.read_idx(bad)
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(bad)
    with pytest.raises(ValueError, match="split must be"):
        mnist.load_split("validation")
