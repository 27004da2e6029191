"""``Model.summary()``: Keras 3's table of layers, output shapes and parameter counts."""
from __future__ import annotations

import numpy as np


def readable_memory_size(n_bytes: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    size = float(n_bytes)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.2f} {unit}"
        size /= 1024.0
    return f"{size:.2f} TB"  # pragma: no cover


def _fmt_shape(shape):
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _count(weights):
    return int(sum(int(np.prod(w.shape)) for w in weights))


def _bytes(weights):
    return int(sum(int(np.prod(w.shape)) * w.numpy().itemsize for w in weights))


def _row(cells, widths, aligns):
    out = []
    for c, w, a in zip(cells, widths, aligns):
        c = str(c)
        if len(c) > w - 2:
            c = c[: w - 3] + "…"
        out.append(" " + (c.rjust(w - 2) if a == "r" else c.ljust(w - 2)) + " ")
    return out


def summary_lines(model, rows, connected=False, line_length=None):
    """rows: list of (name (type), output shape, param count, connected-to text)."""
    if connected:
        widths = [30, 24, 13, 30]
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["l", "l", "r", "l"]
    else:
        widths = [33, 24, 15]
        headers = ["Layer (type)", "Output Shape", "Param #"]
        aligns = ["l", "l", "r"]
    if line_length:
        scale = line_length / (sum(widths) + len(widths) + 1)
        widths = [max(8, int(w * scale)) for w in widths]
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    lines.append("┃" + "┃".join(_row(headers, widths, aligns)) + "┃")
    lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    for i, r in enumerate(rows):
        sub_lines = r[3].split("\n") if connected else [""]
        first = [r[0], r[1], f"{r[2]:,}" if isinstance(r[2], int) else r[2]] + ([sub_lines[0]] if connected else [])
        lines.append("│" + "│".join(_row(first, widths, aligns)) + "│")
        for extra in sub_lines[1:]:
            lines.append("│" + "│".join(_row(["", "", "", extra], widths, aligns)) + "│")
        if i != len(rows) - 1:
            lines.append("├" + "┼".join("─" * w for w in widths) + "┤")
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    weights = model.weights
    trainable = model.trainable_weights
    tid = {id(w) for w in trainable}
    non_trainable = [w for w in weights if id(w) not in tid]
    total = _count(weights)
    lines.append(f" Total params: {total:,} ({readable_memory_size(_bytes(weights))})")
    lines.append(f" Trainable params: {_count(trainable):,} ({readable_memory_size(_bytes(trainable))})")
    lines.append(f" Non-trainable params: {_count(non_trainable):,} ({readable_memory_size(_bytes(non_trainable))})")
    opt = getattr(model, "optimizer", None)
    if opt is not None and getattr(opt, "_slots", None):
        slots = [s for ss in opt._slots.values() for s in ss if s is not None]
        n = int(sum(s.size for s in slots))
        if n:
            lines.append(f" Optimizer params: {n:,} ({readable_memory_size(sum(s.nbytes for s in slots))})")
    return lines
