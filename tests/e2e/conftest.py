"""Fixtures for tests on the shared real data (``../shared/data/mnist`` from the project root)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = PROJECT_ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def shared_mnist_dir():
    """The folder with the MNIST test split; skips where it is absent, fails when FASTNN_REQUIRE_SHARED_DATA=1."""
    ok = (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file() and (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file()
    if not ok:
        msg = (f"the shared MNIST test split is not at {SHARED_MNIST} (a fresh clone has no ../shared/data); "
               "CI sets FASTNN_REQUIRE_SHARED_DATA=1 to make this a failure")
        if os.environ.get("FASTNN_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_MNIST
