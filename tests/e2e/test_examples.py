"""Every script in examples/ runs in quick mode (a few batches) in a subprocess, exits 0 and prints a finite
training loss, so none of the article's listings rots. fastnn only (no Keras); the image examples need the shared
MNIST test split and skip cleanly without it (tests/e2e/conftest.py's ``shared_mnist_dir``)."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

SRC = Path(fastnn.__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "example_data.py")
NEEDS_MNIST = {name for name in SCRIPTS if "mnist_images" in (EXAMPLES / name).read_text()}


def test_the_article_listings_all_have_an_example():
    for listing in ("listing1_4", "listing5", "listing6", "listing7", "listing8", "listing9", "rowwise_mnist"):
        assert any(name.startswith(listing) for name in SCRIPTS), (listing, SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text()
    for name in SCRIPTS:
        assert name in readme, f"examples/README.md does not list {name}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_in_quick_mode(script, tmp_path, request):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env["FASTNN_HOME"] = str(tmp_path / "home")  # an empty cache: never the user's
    for var in ("FASTNN_MNIST_DIR", "FASTNN_SHARED_DIR", "FASTNN_EXAMPLE_QUICK"):
        env.pop(var, None)
    if script in NEEDS_MNIST:
        env["FASTNN_MNIST_DIR"] = str(request.getfixturevalue("shared_mnist_dir"))
    r = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"final training loss: (\S+)", r.stdout)]
    assert losses and all(math.isfinite(v) for v in losses), r.stdout[-3000:]
    assert "Total params:" in r.stdout and "held-out loss:" in r.stdout
