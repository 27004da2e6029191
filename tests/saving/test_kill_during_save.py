"""Atomic saves: a child process overwriting a saved file is SIGKILLed at several points of the save (half of the
bytes written to the temporary file, before its fsync, before os.replace, after it, and at seeded random moments:
the N-th Python / C call of the save, also in a loop of saves); the parent then finds the previous file intact,
byte for byte, and loading it gives the original weights (or, once os.replace has run, the complete new file).
For .keras, .weights.h5 and legacy .h5 files."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.saving

pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")

# The children import the fastnn this process imported (the source tree in a checkout with a built extension, the
# installed package in CI's README stage, where src/ has no compiled _C).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))

# The model both processes build; its weights are then set to a marker value so a file shows which save it holds.
MODEL = r'''
import numpy as np
import fastnn
from fastnn import layers


def build(value):
    fastnn.utils.set_random_seed(0)
    fastnn.utils.clear_session()
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.ones((2, 4), "float32"), np.ones((2, 3), "float32"))  # optimizer state exists
    if value is not None:
        model.set_weights([np.full(w.shape, value, w.dtype) for w in model.get_weights()])
    return model


def save(model, path, fmt):
    if fmt == "weights":
        model.save_weights(path)
    else:
        model.save(path)
'''

CHILD = MODEL + r'''
import json, os, signal, sys
from fastnn.saving import file_io

cfg = json.loads(sys.argv[1])
model = build(cfg["value"])
other = build(cfg["other"]) if cfg.get("other") is not None else None


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


events = 0


def counter(frame, event, arg):
    global events
    events += 1
    if events == cfg.get("at"):
        die()


hook = cfg["hook"]
if hook == "mid_write":  # the temporary file gets half of the bytes, then the process dies
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            die()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    os.fdopen = lambda fd, mode="r", *a, **k: HalfWriter(real_fdopen(fd, mode, *a, **k)) if "w" in mode else \
        real_fdopen(fd, mode, *a, **k)
elif hook == "before_fsync":
    os.fsync = die
elif hook == "before_replace":
    os.replace = die
elif hook == "after_replace":
    file_io._fsync_directory = die

if hook in ("event", "count"):
    # A first save imports what saving needs (h5py, zipfile...); warm up so that the calls counted are those of
    # a save like any other, the same in the counting run and in the killed one.
    save(model, os.path.join(os.path.dirname(cfg["path"]), "warmup_" + os.path.basename(cfg["path"])), cfg["fmt"])
    sys.setprofile(counter)
if cfg.get("loop"):
    for i in range(cfg["loop"]):
        save(other if i % 2 else model, cfg["path"], cfg["fmt"])
else:
    save(model, cfg["path"], cfg["fmt"])
sys.setprofile(None)
print(json.dumps({"events": events}))
'''

ORIGINAL, NEW = 1.5, -2.25
FORMATS = {"keras": "m.keras", "weights": "m.weights.h5", "h5": "m.h5"}

_namespace = {}
exec(MODEL, _namespace)  # noqa: S102 - the same build() as the child's


def _child(tmp_path, **cfg):
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-W", "ignore", str(script), json.dumps(cfg)], env=env,
                          capture_output=True, text=True, timeout=120)


def _weights_in(path, fmt):
    if fmt == "weights":
        model = _namespace["build"](None)
        model.load_weights(path)
    else:
        model = fastnn.saving.load_model(path)
    return model.get_weights(), int(model.optimizer.iterations.numpy())


def _marker(weights):
    """The single value every weight holds (the save it came from), or None for anything else."""
    values = {float(v) for w in weights for v in np.unique(w)}
    return values.pop() if len(values) == 1 else None


@pytest.fixture(scope="module", params=list(FORMATS))
def original(request, tmp_path_factory):
    """(fmt, folder, path of the original file, its bytes, the number of calls its save made)."""
    fmt = request.param
    if fmt == "h5":
        pytest.importorskip("fastnn.saving.legacy_h5", reason="the legacy .h5 writer (fastnn.saving.legacy_h5)")
    tmp_path = tmp_path_factory.mktemp(fmt)
    path = tmp_path / FORMATS[fmt]
    proc = _child(tmp_path, path=str(path), fmt=fmt, value=ORIGINAL, hook="count")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads(proc.stdout.strip().splitlines()[-1])["events"]
    weights, iterations = _weights_in(path, fmt)
    assert _marker(weights) == ORIGINAL and iterations == 1
    return fmt, tmp_path, path, path.read_bytes(), events


def _kill_and_check(original, case, expect_new=False, **cfg):
    fmt, folder, source, data, _ = original
    case_dir = folder / case
    case_dir.mkdir()
    path = case_dir / source.name
    shutil.copyfile(source, path)
    proc = _child(folder, path=str(path), fmt=fmt, value=NEW, **cfg)
    assert proc.returncode == -signal.SIGKILL, (f"the save was not killed at {case} (rc {proc.returncode}): it "
                                                f"does not pass there?\n{proc.stderr[-3000:]}")
    # Nothing but the target and, at most, the temporary file the killed save left behind.
    leftovers = [n for n in os.listdir(case_dir) if n != path.name and not n.startswith("warmup_")]
    assert all(re.fullmatch(rf"\.{re.escape(path.name)}\..+\.tmp", n) for n in leftovers), leftovers
    weights, _ = _weights_in(path, fmt)
    if expect_new is None:  # a random moment: either the whole old file or the whole new one
        assert _marker(weights) in (ORIGINAL, NEW)
        if _marker(weights) == ORIGINAL and not cfg.get("loop"):  # (a loop also re-saves the original weights)
            assert path.read_bytes() == data
    elif expect_new:
        assert _marker(weights) == NEW
    else:
        assert path.read_bytes() == data  # untouched, byte for byte
        assert _marker(weights) == ORIGINAL
    # The next save over it works despite the leftover temporary file.
    model = _namespace["build"](NEW)
    _namespace["save"](model, str(path), fmt)
    assert _marker(_weights_in(path, fmt)[0]) == NEW


@pytest.mark.parametrize("hook", ["mid_write", "before_fsync", "before_replace"])
def test_killed_before_the_replace_keeps_the_previous_file(original, hook):
    _kill_and_check(original, hook, hook=hook)


def test_killed_after_the_replace_has_the_new_file(original):
    _kill_and_check(original, "after_replace", expect_new=True, hook="after_replace")


def test_killed_at_random_moments(original):
    fmt, _, _, _, events = original
    rng = random.Random(f"kill-{fmt}")
    assert events > 50  # the counter sees the save's calls
    for i, at in enumerate(sorted(rng.sample(range(1, int(events * 0.9)), 2))):
        _kill_and_check(original, f"event{i}", expect_new=None, hook="event", at=at)


def test_killed_while_overwriting_in_a_loop(original):
    fmt, _, _, _, events = original
    at = random.Random(f"loop-{fmt}").randrange(events, int(events * 3.5))  # during the 2nd .. 4th save
    _kill_and_check(original, "loop", expect_new=None, hook="event", at=at, loop=5, other=ORIGINAL)

