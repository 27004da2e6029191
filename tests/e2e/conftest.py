"""Fixtures for tests on the shared real data (``../shared/data/mnist`` from the project root), and the switch that
makes a missing Keras / TensorFlow / scikit-learn a failure instead of a skip where CI requires them.

A user's plain ``pytest`` skips every test here that needs an optional package it lacks. CI's Keras stage sets
``FASTNN_REQUIRE_KERAS=1`` (Keras and TensorFlow must import) and ``FASTNN_REQUIRE_SKLEARN=1`` (scikit-learn must
import, for the demo's digits fallback); then every skip in tests/e2e caused by one of those packages missing --
``pytest.importorskip("keras")`` at module level or inside a test, in any file, present or future -- is reported
as a failure, so a broken TensorFlow install can no longer turn the cross-checks into a green run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# TensorFlow enables its oneDNN kernels by default only on some CPUs: on AMD (a Zen 3 here) it runs its own
# Conv2D, which refuses channels_first on the CPU ("only supports the NHWC tensor format"), so the Keras side of
# the channels_first cross-checks could not run. oneDNN has NCHW; set before any test module imports TensorFlow.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# ../shared beside the clone, as CI lays it out; FASTNN_SHARED_DIR points elsewhere (e.g. a git worktree).
SHARED_MNIST = Path(os.environ.get("FASTNN_SHARED_DIR") or PROJECT_ROOT.parent / "shared") / "data" / "mnist"

# env var -> the top-level modules it makes mandatory
REQUIRED_BY_ENV = {
    "FASTNN_REQUIRE_KERAS": ("keras", "tensorflow"),
    "FASTNN_REQUIRE_SKLEARN": ("sklearn",),
}


def required_modules():
    """The optional modules the environment makes mandatory for this run."""
    return [m for var, mods in REQUIRED_BY_ENV.items() if os.environ.get(var) == "1" for m in mods]


def _missing_module_in(reason, modules):
    """The required module a skip reason says is missing, or None. Matches pytest.importorskip's message
    ("could not import 'keras': No module named 'keras'", also with a submodule) and a bare ImportError text."""
    for m in modules:
        if re.search(rf"(could not import|No module named) '{re.escape(m)}(\.|')", reason):
            return m
    return None


def _skip_reason(longrepr):
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def _as_failure(report, module):
    env = next(v for v, mods in REQUIRED_BY_ENV.items() if module in mods)
    reason = _skip_reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"{env}=1 makes {module!r} required, but this was skipped for lack of it: {reason}\n"
                       f"(install it in this environment, or unset {env} to let such tests skip)")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A test module that skips itself at import (module-level importorskip) fails when its package is required."""
    outcome = yield
    report = outcome.get_result()
    modules = required_modules()
    if report.skipped and modules:
        missing = _missing_module_in(_skip_reason(report.longrepr), modules)
        if missing:
            _as_failure(report, missing)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test (setup, call or teardown) skipped for lack of a required package fails instead."""
    outcome = yield
    report = outcome.get_result()
    modules = required_modules()
    if report.skipped and modules and not hasattr(report, "wasxfail"):
        missing = _missing_module_in(_skip_reason(report.longrepr), modules)
        if missing:
            _as_failure(report, missing)


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
