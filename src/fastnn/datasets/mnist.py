"""MNIST handwritten digits (``keras.datasets.mnist``).

``load_data(path=None)`` returns ``(x_train, y_train), (x_test, y_test)``: uint8 images (60000, 28, 28) /
(10000, 28, 28) and uint8 labels, as Keras does. It reads, in order:

1. ``path`` when given: an ``mnist.npz`` file, or a folder holding ``mnist.npz`` or the four IDX files
   (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
   ``t10k-labels-idx1-ubyte[.gz]``);
2. the folder in ``$FASTNN_MNIST_DIR``;
3. the cache folder ``$FASTNN_HOME/datasets`` (default ``~/.fastnn/datasets``): ``mnist.npz`` or ``mnist/``.

When none has the data it downloads ``mnist.npz`` from Keras's public location into the cache folder, verifying
its SHA-256 and writing atomically (a temporary file renamed into place, removed on any failure). Without a
network (or with ``FASTNN_OFFLINE=1``) it raises FileNotFoundError saying where to put the files.
``load_split("test")`` reads one split alone (e.g. the 10,000-image test split).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile

import numpy as np

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TIMEOUT_S = 60


def cache_dir() -> str:
    """``$FASTNN_HOME/datasets`` (default ``~/.fastnn/datasets``)."""
    from fastnn.utils import get_file_cache_dir

    return os.path.join(get_file_cache_dir(), "datasets")


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (gzip-compressed or not) into a uint8 array of the shape its header gives."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"read_idx: cannot read {path!r}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"read_idx: {path!r} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"read_idx: {path!r} has a truncated header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise ValueError(f"read_idx: {path!r} holds {len(data) - header} bytes of data, but its header says "
                         f"{shape} ({size} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _idx_path(folder, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    return None


def _read_split_from_folder(folder, split):
    images, labels = (_idx_path(folder, s) for s in FILES[split])
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"mnist: {images} and {labels} do not match: images {x.shape}, labels {y.shape}")
    return x, y


def _load_npz(path):
    with np.load(path, allow_pickle=False) as f:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
        if missing:
            raise ValueError(f"mnist: {path} is not Keras's mnist.npz (missing arrays {sorted(missing)})")
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _locations(path):
    out = []
    if path is not None:
        out.append(os.fspath(path))
    env = os.environ.get("FASTNN_MNIST_DIR")
    if env:
        out.append(env)
    base = cache_dir()
    out += [os.path.join(base, "mnist.npz"), os.path.join(base, "mnist")]
    return out


def _find_local(path=None, split=None):
    """The data from the first location that has it, or None."""
    for loc in _locations(path):
        if os.path.isfile(loc):
            if loc.endswith(".npz"):
                data = _load_npz(loc)
                return data if split is None else data[0 if split == "train" else 1]
            continue
        if not os.path.isdir(loc):
            continue
        npz = os.path.join(loc, "mnist.npz")
        if os.path.isfile(npz):
            data = _load_npz(npz)
            return data if split is None else data[0 if split == "train" else 1]
        if split is not None:
            found = _read_split_from_folder(loc, split)
            if found is not None:
                return found
            continue
        train, test = _read_split_from_folder(loc, "train"), _read_split_from_folder(loc, "test")
        if train is not None and test is not None:
            return train, test
    return None


def _urlopen(url, timeout):
    import urllib.request

    return urllib.request.urlopen(url, timeout=timeout)


def download(url, dest, sha256):
    """Downloads ``url`` to ``dest`` atomically, verifying the SHA-256 (ValueError on mismatch; nothing is left
    behind on any failure)."""
    folder = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".part", dir=folder)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _urlopen(url, _TIMEOUT_S) as response:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"mnist: the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected "
                             f"{sha256}; it was discarded (a corrupted or tampered download)")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return dest


def _missing_message(path, reason):
    locs = "\n".join(f"  - {loc}" for loc in _locations(path))
    return (
        "MNIST was not found and could not be downloaded"
        + (f" ({reason})" if reason else "")
        + ". Put Keras's mnist.npz, or the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz), in one of:\n" + locs
        + "\n(set FASTNN_MNIST_DIR to use another folder, or pass path= to load_data)."
    )


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)`` as uint8 arrays; see the module docstring for where it looks.

    Raises:
        FileNotFoundError: the data is nowhere and cannot be downloaded (the message lists where to put it).
        ValueError: a file is not valid MNIST data, or a download fails its checksum.
    """
    found = _find_local(path)
    if found is not None:
        return found
    if os.environ.get("FASTNN_OFFLINE", "") not in ("", "0"):
        raise FileNotFoundError(_missing_message(path, "FASTNN_OFFLINE is set"))
    dest = os.path.join(cache_dir(), "mnist.npz")
    try:
        download(ORIGIN, dest, NPZ_SHA256)
    except OSError as exc:  # URLError, timeouts, unwritable cache folder
        raise FileNotFoundError(_missing_message(path, f"download failed: {exc}")) from exc
    return _load_npz(dest)


def load_split(split="test", path=None):
    """One split, ``(x, y)``, from the same locations as ``load_data`` (no download). ``split`` is "train" or
    "test"; FileNotFoundError when it is nowhere."""
    if split not in FILES:
        raise ValueError(f"load_split: split must be 'train' or 'test', but received {split!r}")
    found = _find_local(path, split)
    if found is None:
        raise FileNotFoundError(_missing_message(path, f"no {split} split found"))
    return found
