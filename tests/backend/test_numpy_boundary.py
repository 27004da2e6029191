"""NumPy stays out of the autograd engine and ops, layers, models, losses, metrics, optimizers, initializers,
regularizers, constraints and activations: they compute through ``fastnn.backend``.

Allowed everywhere: dtype metadata (``np.float32``, ``np.dtype``, ``np.integer``, ``np.finfo``, ``np.inf``, ...)
and ``isinstance(x, np.ndarray)`` checks. Anything else that names NumPy must sit in a function marked as the user
boundary (converting the user's data in, handing NumPy arrays out) by a comment on the line above its ``def`` (or
above its decorators)::

    # NumPy boundary: <why this function handles host data>
    def numpy(self): ...

The wrapped-backend test (test_wrapped_backend.py) catches the other half: methods and operators on buffers.
"""
from __future__ import annotations

import ast
import pathlib

import fastnn

PACKAGE = pathlib.Path(fastnn.__file__).parent
CHECKED = ["autograd", "layers", "models", "losses.py", "metrics", "optimizers", "ops.py", "activations.py",
           "initializers.py", "regularizers.py", "constraints.py"]
METADATA = {
    "dtype", "float16", "float32", "float64", "longdouble", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool_", "integer", "floating", "signedinteger", "unsignedinteger", "number", "generic",
    "inexact", "complexfloating", "ndarray", "finfo", "iinfo", "inf", "nan", "pi", "e", "newaxis", "issubdtype",
    "promote_types", "result_type", "can_cast", "dtypes",
}
MARKER = "# NumPy boundary:"


def _files():
    for entry in CHECKED:
        path = PACKAGE / entry
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def _boundary_ranges(tree, lines):
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if first >= 2 and lines[first - 2].strip().startswith(MARKER):
                ranges.append((node.lineno, node.end_lineno))
    return ranges


def numpy_uses(path):
    """(line, text) of every NumPy reference in ``path`` outside metadata and marked boundary functions."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "numpy":
            return [(node.lineno, lines[node.lineno - 1].strip())]  # from numpy import ...: never allowed
    for node in tree.body:  # module-level aliases such as ``xp = np``
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    ranges = _boundary_ranges(tree, lines)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr in METADATA or any(a <= node.lineno <= b for a, b in ranges):
                continue
            found.append((node.lineno, f"{node.value.id}.{node.attr}: {lines[node.lineno - 1].strip()}"))
    return sorted(set(found))


def test_no_numpy_outside_the_backend_and_the_user_boundary():
    report = []
    for path in _files():
        for line, text in numpy_uses(path):
            report.append(f"{path.relative_to(PACKAGE)}:{line}: {text}")
    assert not report, "NumPy used around fastnn.backend:\n" + "\n".join(report)


def test_the_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\n\ndef f(x):\n    return np.exp(x) + np.float32(1)\n\n"
                   "# NumPy boundary: hands data to the user\ndef g(x):\n    return np.asarray(x)\n")
    uses = numpy_uses(bad)
    assert [u[0] for u in uses] == [4] and "np.exp" in uses[0][1]
