"""The binding layer's GIL rules (csrc/python/bind_*.cpp) and the kernels' own checks of data another thread may
change.

- No py::array accessor runs after the GIL is released: every pointer and size is taken before the
  gil_scoped_release (a free-threaded CPython may resize or replace an array's metadata beside the call).
- No binding validates a buffer's contents with the GIL held and trusts them after releasing it: another Python
  thread may write the buffer in between. The sparse crossentropy kernels check each label as they read it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _C

BINDINGS = Path(__file__).resolve().parents[2] / "csrc" / "python"
# Accessors of py::array / py::object (and this layer's helpers that call them), none of which may run without
# the GIL.
FORBIDDEN = re.compile(r"\.(mutable_data|data|shape|strides|ndim|dtype|flags|itemsize|nbytes|writeable|"
                       r"request|attr|cast)\(|\bptr<|\bcptr<|\bpy::(?!gil_scoped_release)|\bout_ptr\(|\bin_ptr\(")


def _released_blocks(source: str):
    """(line number, text) of each scope in which a py::gil_scoped_release is alive."""
    for match in re.finditer(r"py::gil_scoped_release\s+\w+\s*;", source):
        depth, i = 0, match.end()
        while i < len(source):
            ch = source[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        yield source.count("\n", 0, match.start()) + 1, source[match.end():i]


@pytest.mark.skipif(not BINDINGS.is_dir(), reason="needs the source tree (csrc/python)")
def test_no_array_accessor_runs_without_the_gil():
    files = sorted(BINDINGS.glob("bind_*.cpp"))
    assert files
    found = 0
    offending = []
    for path in files:
        for line, block in _released_blocks(path.read_text()):
            found += 1
            # Drop comments: they may name accessors.
            code = re.sub(r"//[^\n]*", "", block)
            for bad in FORBIDDEN.finditer(code):
                offending.append(f"{path.name}:{line}: {bad.group(0)!r} after the GIL is released")
    assert found >= 10, "expected the bindings to release the GIL around their kernels"
    assert not offending, "\n".join(offending)


def _run(body: str, timeout=300):
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_labels_changed_by_another_thread_never_index_out_of_bounds():
    """A thread flips one label between a valid class and 2**40 while another calls the sparse crossentropy
    kernels. The binding used to check the labels with the GIL held and read them again after releasing it, so
    the kernel could index the logits (forward) and write the gradient (backward) 2**40 elements away: a crash.
    Now each call returns a valid answer for the labels it read, or raises the documented ValueError. Run in a
    subprocess, so that a crash is a failure and not the end of the test session."""
    proc = _run("""
        import sys, threading
        import numpy as np
        from fastnn import _C
        sys.setswitchinterval(1e-5)
        rng = np.random.default_rng(0)
        rows, cols = 4000, 256
        logits = rng.standard_normal((rows, cols))
        labels = rng.integers(0, cols, rows).astype(np.int64)
        loss, lse = _C.sparse_xent_forward(logits, labels)
        dloss = np.ones(rows)
        stop = False

        def writer():
            while not stop:
                labels[-1] = 2**40
                labels[-1] = 3

        t = threading.Thread(target=writer)
        t.start()
        ok = raised = 0
        try:
            for i in range(300):
                try:
                    if i % 2:
                        out = _C.sparse_xent_backward(dloss, logits, lse, labels)
                        assert out.shape == logits.shape
                    else:
                        out, _ = _C.sparse_xent_forward(logits, labels)
                        assert np.all(np.isfinite(out[:-1]))
                    ok += 1
                except ValueError as exc:
                    assert "label 1099511627776 at position 3999 is outside the valid range [0, 256)" in str(exc), exc
                    raised += 1
        finally:
            stop = True
            t.join()
        print(ok, raised)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok, raised = map(int, proc.stdout.split())
    assert ok + raised == 300


@pytest.mark.parametrize("reference", [False, True])
def test_out_of_range_labels_are_reported_by_the_kernel(reference):
    logits = np.zeros((5, 3))
    for bad, pos in [(-1, 0), (3, 4), (2**62, 2), (-(2**63), 1)]:
        labels = np.zeros(5, np.int64)
        labels[pos] = bad
        with pytest.raises(ValueError, match=rf"label {bad} at position {pos} is outside the valid range \[0, 3\)"):
            _C.sparse_xent_forward(logits, labels, reference)
        with pytest.raises(ValueError, match=rf"label {bad} at position {pos} is outside"):
            _C.sparse_xent_backward(np.ones(5), logits, np.zeros(5), labels)
    # The first bad row is named, whichever thread met it first.
    labels = np.full(3000, 7, np.int64)
    labels[[1200, 2999]] = 3
    big = np.zeros((3000, 3))
    with pytest.raises(ValueError, match="label 7 at position 0 is"):
        _C.sparse_xent_forward(big, labels, reference)
    labels[:] = 0
    labels[[2100, 1700]] = -5
    with pytest.raises(ValueError, match="label -5 at position 1700 is"):
        _C.sparse_xent_backward(np.ones(3000), big, np.zeros(3000), labels)
    with pytest.raises(ValueError, match=r"label 0 at position 0 is outside the valid range \[0, 0\)"):
        _C.sparse_xent_forward(np.zeros((2, 0)), np.zeros(2, np.int64), reference)
