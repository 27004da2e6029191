"""callbacks.BackupAndRestore: a fit killed part-way (SIGKILL, in a child process) and run again resumes where its
backup was and ends with the weights of a run that was never interrupted, bit for bit: with shuffling, Dropout
with and without a seed, backups at epoch ends and every few batches (resumed in the middle of an epoch), and
steps_per_epoch (the shuffling pass carries over epochs). Plus Keras's files and arguments, the previous backup
of double_checkpoint, and in-process interruptions."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers

# The children import the fastnn this process imported (the source tree in a checkout with a built extension, the
# installed package in CI's README stage, where src/ has no compiled _C).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))

# The child: builds the model from a seed, trains with BackupAndRestore (and a callback that SIGKILLs the process at
# the point asked), writes the final weights and the epochs it ran.
CHILD = r'''
import json, os, signal, sys
import numpy as np
import fastnn
from fastnn import callbacks, layers

cfg = json.loads(sys.argv[1])
fastnn.utils.set_random_seed(7)
fastnn.utils.clear_session()
stack = [fastnn.Input((6,)), layers.Dense(16, activation="relu")]
if cfg["dropout"]:
    stack += [layers.Dropout(0.3), layers.Dense(8, activation="tanh"), layers.Dropout(0.25, seed=11)]
model = fastnn.Sequential(stack + [layers.Dense(2)])
model.compile(optimizer="adam", loss="mse")
rs = np.random.RandomState(0)
x = rs.rand(45, 6).astype("float32")
y = rs.rand(45, 2).astype("float32")


class Kill(callbacks.Callback):
    """SIGKILLs this process at the N-th batch end (counted over the whole run) or at an epoch's start."""

    def __init__(self, spec):
        super().__init__()
        self.spec, self.batches = spec, 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.spec and self.spec[0] == "epoch_begin" and epoch == self.spec[1]:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.spec and self.spec[0] == "batch_end" and self.batches == self.spec[1]:
            os.kill(os.getpid(), signal.SIGKILL)


cbs = []
if cfg["backup"]:
    cbs.append(callbacks.BackupAndRestore(cfg["backup"], save_freq=cfg["save_freq"], delete_checkpoint=True))
cbs.append(Kill(cfg["kill"]))
history = model.fit(x, y, epochs=cfg["epochs"], batch_size=8, shuffle=cfg["shuffle"], verbose=0, callbacks=cbs,
                    steps_per_epoch=cfg["steps_per_epoch"])
np.savez(cfg["out"], *model.get_weights())
with open(cfg["out"] + ".json", "w") as f:
    json.dump({"epochs": history.epoch if history is not None else [],
               "iterations": int(model.optimizer.iterations.numpy())}, f)
'''


def _run(tmp_path, **cfg):
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script), json.dumps(cfg)], env=env,
                          capture_output=True, text=True, timeout=120)
    return proc


def _config(tmp_path, name, **overrides):
    cfg = dict(backup=str(tmp_path / "backup"), out=str(tmp_path / f"{name}.npz"), kill=None, shuffle=True,
               dropout=True, save_freq="epoch", steps_per_epoch=None, epochs=5)
    cfg.update(overrides)
    return cfg


def _finished(tmp_path, **cfg):
    proc = _run(tmp_path, **cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(cfg["out"]) as f:
        weights = [f[f"arr_{i}"] for i in range(len(f.files))]
    with open(cfg["out"] + ".json") as f:
        info = json.load(f)
    return weights, info


def _killed(tmp_path, **cfg):
    proc = _run(tmp_path, **cfg)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])
    assert not os.path.exists(cfg["out"])
    with open(os.path.join(cfg["backup"], "training_metadata.json")) as f:
        return json.load(f)


def _assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u, v), np.abs(u.astype("float64") - v).max()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs (no backup callback at all), by (shuffle, steps_per_epoch, dropout)."""
    cache = {}

    def get(shuffle=True, steps_per_epoch=None, dropout=True):
        key = (shuffle, steps_per_epoch, dropout)
        if key not in cache:
            d = tmp_path_factory.mktemp("reference")
            cache[key] = _finished(d, **_config(d, "ref", backup=None, shuffle=shuffle,
                                                steps_per_epoch=steps_per_epoch, dropout=dropout))
        return cache[key]

    return get


def test_killed_at_an_epoch_start_resumes_there(tmp_path, reference):
    ref_weights, ref_info = reference()
    meta = _killed(tmp_path, **_config(tmp_path, "run", kill=["epoch_begin", 3]))
    assert meta["epoch"] == 3 and meta["batch"] == 0  # Keras's fields: 3 epochs done
    assert set(os.listdir(tmp_path / "backup")) == {"latest.weights.h5", "training_metadata.json"}
    weights, info = _finished(tmp_path, **_config(tmp_path, "run"))
    assert info["epochs"] == [3, 4]
    assert info["iterations"] == ref_info["iterations"] == 5 * 6
    _assert_same(weights, ref_weights)
    assert not (tmp_path / "backup").exists()  # deleted at the end of the successful fit


def test_killed_mid_epoch_with_epoch_backups_redoes_that_epoch(tmp_path, reference):
    ref_weights, _ = reference()
    meta = _killed(tmp_path, **_config(tmp_path, "run", kill=["batch_end", 6 * 2 + 4]))  # epoch 2, batch 3
    assert meta["epoch"] == 2
    weights, info = _finished(tmp_path, **_config(tmp_path, "run"))
    assert info["epochs"] == [2, 3, 4]
    _assert_same(weights, ref_weights)


def test_mid_epoch_backup_resumes_after_the_batches_done(tmp_path, reference):
    ref_weights, ref_info = reference()
    # 6 batches an epoch, a backup every 4: the last before batch 17 is at batch 16 = epoch 2, batch index 3.
    meta = _killed(tmp_path, **_config(tmp_path, "run", save_freq=4, kill=["batch_end", 17]))
    assert (meta["epoch"], meta["batch"]) == (2, 3)
    assert meta["fastnn"]["position"]["steps_done"] == 4
    weights, info = _finished(tmp_path, **_config(tmp_path, "run", save_freq=4))
    assert info["epochs"] == [2, 3, 4]
    assert info["iterations"] == ref_info["iterations"]  # no batch trained twice, none skipped
    _assert_same(weights, ref_weights)


def test_killed_twice_with_steps_per_epoch(tmp_path, reference):
    # steps_per_epoch=4 over 6 batches of data: the shuffled pass spans epochs, so its position is restored too.
    ref_weights, ref_info = reference(steps_per_epoch=4)
    cfg = dict(steps_per_epoch=4, save_freq=3)
    first = _killed(tmp_path, **_config(tmp_path, "run", kill=["batch_end", 7], **cfg))
    second = _killed(tmp_path, **_config(tmp_path, "run", kill=["batch_end", 5], **cfg))
    assert (first["epoch"], second["epoch"]) == (1, 2)  # epoch 1 ends a pass early (2 batches)
    weights, info = _finished(tmp_path, **_config(tmp_path, "run", **cfg))
    assert info["iterations"] == ref_info["iterations"]
    _assert_same(weights, ref_weights)


def test_without_shuffle_or_dropout(tmp_path, reference):
    ref_weights, _ = reference(shuffle=False, dropout=False)
    _killed(tmp_path, **_config(tmp_path, "run", shuffle=False, dropout=False, kill=["epoch_begin", 1]))
    weights, info = _finished(tmp_path, **_config(tmp_path, "run", shuffle=False, dropout=False))
    assert info["epochs"] == [1, 2, 3, 4]
    _assert_same(weights, ref_weights)


# -- in-process ----------------------------------------------------------------------------------------------------
def _model(seed=3, dropout=True):
    fastnn.utils.set_random_seed(seed)
    fastnn.utils.clear_session()
    stack = [fastnn.Input((4,)), layers.Dense(8, activation="relu")]
    if dropout:
        stack += [layers.Dropout(0.2), layers.Dropout(0.3, seed=5)]
    model = fastnn.Sequential(stack + [layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _data():
    rs = np.random.RandomState(2)
    return rs.rand(30, 4).astype("float32"), rs.rand(30, 1).astype("float32")


class _Interrupt(callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("Interrupting!")


def _reference_weights(epochs=6):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0)
    return model.get_weights()


def test_in_process_interruption_as_keras_example(tmp_path):
    x, y = _data()
    backup = callbacks.BackupAndRestore(backup_dir=str(tmp_path / "b"))
    model = _model()
    with pytest.raises(RuntimeError, match="Interrupting!"):
        model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[backup, _Interrupt(4)])
    model = _model()
    history = model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 2 and history.epoch == [4, 5]
    _assert_same(model.get_weights(), _reference_weights())
    # fastnn clears the resume point at every fit (Keras would keep starting the same model at epoch 4)
    assert model.fit(x, y, epochs=1, verbose=0).epoch == [0]


def _recurrent_model(seeded):
    fastnn.utils.set_random_seed(8)
    fastnn.utils.clear_session()
    seed = 3 if seeded else None
    model = fastnn.Sequential([
        fastnn.Input((5, 3)), layers.SpatialDropout1D(0.2, seed=seed),
        layers.LSTM(4, dropout=0.3, recurrent_dropout=0.2, seed=seed, return_sequences=True),
        layers.GRU(3, dropout=0.25, seed=seed), layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse")
    return model


@pytest.mark.parametrize("seeded", [True, False], ids=["layer_seeds", "global_generator"])
def test_recurrent_dropout_streams_resume(tmp_path, seeded):
    rs = np.random.RandomState(4)
    x, y = rs.rand(20, 5, 3).astype("float32"), rs.rand(20, 1).astype("float32")
    reference = _recurrent_model(seeded)
    reference.fit(x, y, epochs=4, batch_size=6, verbose=0)
    backup = callbacks.BackupAndRestore(str(tmp_path / "b"), save_freq=3)
    model = _recurrent_model(seeded)
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=4, batch_size=6, verbose=0, callbacks=[backup, _Interrupt(2)])
    model = _recurrent_model(seeded)
    model.fit(x, y, epochs=4, batch_size=6, verbose=0, callbacks=[backup])
    _assert_same(model.get_weights(), reference.get_weights())


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[
            callbacks.BackupAndRestore(str(folder), double_checkpoint=True), _Interrupt(4)])
    assert sorted(os.listdir(folder)) == ["latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
                                          "training_metadata.json.bkp"]
    assert json.loads((folder / "training_metadata.json.bkp").read_text())["epoch"] == 3
    (folder / "latest.weights.h5").write_bytes(b"\x89HDF not really")  # the latest backup is damaged
    model = _model()
    history = model.fit(x, y, epochs=6, batch_size=4, verbose=0,
                        callbacks=[callbacks.BackupAndRestore(str(folder), double_checkpoint=True)])
    assert history.epoch == [3, 4, 5]  # from the previous backup, still bit-identical
    _assert_same(model.get_weights(), _reference_weights())


def test_weights_and_metadata_from_different_saves_are_refused(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[
            callbacks.BackupAndRestore(str(folder)), _Interrupt(2)])
    meta = (folder / "training_metadata.json").read_text()
    model.train_on_batch(x[:4], y[:4])
    model.save_weights(str(folder / "latest.weights.h5"))  # a newer weights file than the metadata describes
    with pytest.raises(OSError, match="is not the weights file that .* was written with"):
        _model().fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[callbacks.BackupAndRestore(str(folder))])
    assert (folder / "training_metadata.json").read_text() == meta


def test_random_state_of_another_fit_warns_and_resumes_from_weights_and_epoch(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    with pytest.raises(RuntimeError):
        _model().fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[
            callbacks.BackupAndRestore(str(folder)), _Interrupt(3)])
    model = _model()
    with pytest.warns(UserWarning, match=r"BackupAndRestore: the random state in .* does not fit this fit \(the "
                                         r"backup was made by a fit with .*'batch_size': 4.*this fit has "
                                         r".*'batch_size': 5"):
        history = model.fit(x, y, epochs=6, batch_size=5, verbose=0,
                            callbacks=[callbacks.BackupAndRestore(str(folder))])
    assert history.epoch == [3, 4, 5]


def test_backup_files_are_keras_files(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[
            callbacks.BackupAndRestore(str(folder), delete_checkpoint=False), _Interrupt(2)])
    meta = json.loads((folder / "training_metadata.json").read_text())
    assert meta["epoch"] == 2 and meta["batch"] == 0  # what Keras reads (it ignores "fastnn")
    with h5py.File(folder / "latest.weights.h5", "r") as f:
        assert "layers" in f and "optimizer" in f  # Keras's weights layout, optimizer variables included
    fresh = _model(seed=99)
    fresh.load_weights(str(folder / "latest.weights.h5"))
    _assert_same(fresh.get_weights(), model.get_weights())


def test_keras_backup_without_fastnn_state_resumes_at_its_epoch(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    folder.mkdir()
    source = _model(dropout=False)
    source.fit(x, y, epochs=2, batch_size=4, verbose=0)
    source.save_weights(str(folder / "latest.weights.h5"))
    (folder / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))  # as Keras writes it
    model = _model(seed=50, dropout=False)
    history = model.fit(x, y, epochs=4, batch_size=4, verbose=0, shuffle=False,
                        callbacks=[callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)])
    assert history.epoch == [2, 3]
    assert int(model.optimizer.iterations.numpy()) == 4 * 8  # the optimizer state came from the backup


def test_delete_checkpoint_false_keeps_the_backup(tmp_path):
    x, y = _data()
    folder = tmp_path / "b"
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.BackupAndRestore(str(folder),
                                                                                   delete_checkpoint=False)])
    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == 2
    # Run again: the backup says 2 epochs are done, so nothing is left to train.
    model = _model()
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.BackupAndRestore(str(folder))])
    assert history is None or history.epoch == []
    assert not folder.exists()


def test_argument_errors():
    with pytest.raises(ValueError, match="^Empty `backup_dir` argument passed$"):
        callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match=r"^Invalid value for argument `save_freq`\. Received: save_freq=batch\. "
                                         r"Expected either 'epoch' or an integer value\.$"):
        callbacks.BackupAndRestore("b", save_freq="batch")


def test_unbuilt_model_is_keras_error(tmp_path):
    model = fastnn.Sequential([layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = _data()
    with pytest.raises(ValueError, match=re.escape("To use the BackupAndRestore callback, you model must be built "
                                                   "before you call `fit()`. Model ")):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.BackupAndRestore(str(tmp_path / "b"))])
