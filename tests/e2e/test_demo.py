"""``python -m fastnn.demo`` runs end to end (one epoch) and prints the summary, progress, accuracy and speed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

SRC = Path(fastnn.__file__).resolve().parents[1]


def _run(args, cwd, extra_env=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["FASTNN_HOME"] = str(cwd / "home")  # an empty cache: the demo must not look at the user's
    env.pop("FASTNN_MNIST_DIR", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "fastnn.demo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_demo_on_shared_mnist(shared_mnist_dir, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    os.symlink(shared_mnist_dir, tmp_path / "shared" / "data" / "mnist")
    r = _run(["--epochs", "1"], cwd=work)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "MNIST test split" in out and 'Model: "sequential"' in out and "Total params: 55,050" in out
    assert "\r" not in out and "57/57 ━━━━━━━━━━━━━━━━━━━━" in out and "val_accuracy" in out
    acc = float(out.split("held-out accuracy: ")[1].split()[0])
    assert acc > 0.8
    assert "samples/s" in out


def test_demo_without_any_dataset_says_what_to_do(tmp_path):
    try:
        import sklearn  # noqa: F401
        pytest.skip("scikit-learn is installed, so the digits fallback is available")
    except ImportError:
        pass
    r = _run(["--epochs", "1", "--data", "mnist"], cwd=tmp_path)
    assert r.returncode == 2 and "no dataset available offline" in r.stderr and "fastnn[demo]" in r.stderr


def test_demo_digits_fallback(tmp_path):
    pytest.importorskip("sklearn")
    r = _run(["--epochs", "2", "--data", "digits"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "scikit-learn digits" in r.stdout and float(r.stdout.split("held-out accuracy: ")[1].split()[0]) > 0.7
