"""The FASTNN_REQUIRE_KERAS / FASTNN_REQUIRE_SKLEARN switch of tests/e2e/conftest.py: with it, a test skipped for
lack of Keras (module-level or in-test importorskip) fails; without it, it skips as a user's plain pytest does."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SAMPLE_TESTS = {
    "test_module_level.py": 'import pytest\nkeras = pytest.importorskip("keras")\n\ndef test_a():\n    pass\n',
    "test_in_test.py": ('import pytest\n\ndef test_b():\n    pytest.importorskip("sklearn")\n\n'
                        'def test_unrelated_skip():\n    pytest.skip("no GPU here")\n'),
}


def _run_sample(tmp_path, env_vars):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(HERE / "conftest.py", suite / "conftest.py")
    for name, text in SAMPLE_TESTS.items():
        (suite / name).write_text(text)
    hidden = tmp_path / "hidden"  # keras and sklearn that fail to import, whatever this environment has
    for mod in ("keras", "sklearn"):
        (hidden / mod).mkdir(parents=True)
        (hidden / mod / "__init__.py").write_text(f'raise ModuleNotFoundError("No module named {mod!r}")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_REQUIRE_")}
    env.update(env_vars, PYTHONPATH=str(hidden))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "--continue-on-collection-errors", str(suite)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout


def test_plain_run_skips_missing_keras(tmp_path):
    rc, out = _run_sample(tmp_path, {})
    assert rc == 0, out
    assert "3 skipped" in out and "failed" not in out and "error" not in out, out


def test_required_keras_and_sklearn_turn_those_skips_into_failures(tmp_path):
    rc, out = _run_sample(tmp_path, {"FASTNN_REQUIRE_KERAS": "1", "FASTNN_REQUIRE_SKLEARN": "1"})
    assert rc != 0, out
    assert "FASTNN_REQUIRE_KERAS=1 makes 'keras' required" in out, out
    assert "FASTNN_REQUIRE_SKLEARN=1 makes 'sklearn' required" in out, out
    assert "1 skipped" in out, out  # the unrelated skip stays a skip


@pytest.mark.parametrize("reason, expected", [
    ("Skipped: could not import 'keras': No module named 'keras'", "keras"),
    ("could not import 'tensorflow.python': boom", "tensorflow"),
    ("No module named 'sklearn'", "sklearn"),
    ("could not import 'kerasfoo': No module named 'kerasfoo'", None),
    ("the shared MNIST test split is not here", None),
])
def test_reason_matching(reason, expected):
    spec = importlib.util.spec_from_file_location("_e2e_conftest", HERE / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    assert conftest._missing_module_in(reason, ["keras", "tensorflow", "sklearn"]) == expected
