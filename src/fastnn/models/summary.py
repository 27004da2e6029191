"""``Model.summary()``: Keras 3's table of layers, output shapes and parameter counts, laid out as Keras's
``print_summary`` lays it out through rich (column positions, terminal width, word wrapping, the Trainable column,
nested models, layer ranges, and the "Optimizer params" line once the optimizer is built)."""
from __future__ import annotations

import math
import re
import shutil

import numpy as np

from fastnn import backend as B


def readable_memory_size(n_bytes: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    size = float(n_bytes)
    for unit in units:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} {units[-1]}"


def _fmt_shape(shape):
    if shape is None:
        return "?"
    if isinstance(shape, list):  # several outputs: Keras prints str() of the list of shapes
        return "[" + ", ".join(_fmt_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _as_int(value):
    """A counter (a Variable, a Tensor or a Python int) as a Python int."""
    return int(B.item(value._data)) if hasattr(value, "_data") else int(value)


def _count(weights):
    return sum(math.prod(w.shape) for w in weights)


def _bytes(weights):
    unique = {id(w): w for w in weights}.values()  # as Keras's weight_memory_size
    return sum(math.prod(w.shape) * np.dtype(w.dtype).itemsize for w in unique)


# -- rich's table layout ------------------------------------------------------------------------------------------
def _ratio_reduce(total, ratios, maximums, values):
    """rich._ratio.ratio_reduce: takes ``total`` off ``values`` in proportion to ``ratios`` (Python rounding)."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining, out = total, []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            distributed = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - distributed)
            remaining -= distributed
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def column_widths(positions, line_length):
    """Keras's column widths (int(position * line_length) steps, each at least 4) as rich renders them in a table
    of ``line_length`` characters: each column gets 2 of padding, and what exceeds the room left by the borders is
    taken off evenly. Returns the widths including padding."""
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    padded = [w + 2 for w in widths]
    room = line_length - (len(widths) + 1)
    if sum(padded) > room:
        padded = _ratio_reduce(sum(padded) - room, [1] * len(padded), padded, padded)
    return padded


def _wrap(text, width):
    """rich's word wrapping of a cell (words longer than the cell end with an ellipsis)."""
    lines = []
    for paragraph in str(text).split("\n"):
        if len(paragraph) <= width:  # fits: kept as is (leading spaces of nested rows included)
            lines.append(paragraph)
            continue
        line = ""
        for word in paragraph.split(" "):
            if len(word) > width:
                word = word[: width - 1] + "…"
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _cell(text, width, align):
    if align == "right":
        return " " + text.rjust(width - 2) + " "
    if align == "center":
        return " " + text.center(width - 2) + " "
    return " " + text.ljust(width - 2) + " "


def _render_row(cells, widths, aligns, bar, bottom=False):
    wrapped = [_wrap(c, w - 2) for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    if bottom:  # rich aligns header cells at the bottom of a wrapped header row
        wrapped = [[""] * (height - len(lines)) + lines for lines in wrapped]
    out = []
    for i in range(height):
        parts = [_cell(lines[i] if i < len(lines) else "", w, a) for lines, w, a in zip(wrapped, widths, aligns)]
        out.append(bar + bar.join(parts) + bar)
    return out


# -- the summary --------------------------------------------------------------------------------------------------
def _layer_range_bounds(layers, layer_range):
    """Keras's get_layer_index_bound_by_layer_name: [first, last + 1] of the layers whose names re.match the two
    patterns (swapped when the first comes after the second)."""
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2:
        raise ValueError(f"layer_range must be a list or tuple of length 2. Received: layer_range = {layer_range} "
                         f"of length {len(layer_range)}")
    if not isinstance(layer_range[0], str) or not isinstance(layer_range[1], str):
        raise ValueError(f"layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, l in enumerate(layers) if re.match(layer_range[0], l.name)]
    upper = [i for i, l in enumerate(layers) if re.match(layer_range[1], l.name)]
    if not lower or not upper:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                  layer_range=None):
    """Keras 3.15's ``print_summary`` for a fastnn model (see ``Model.summary``)."""
    from fastnn.models.functional import Functional, graph_is_sequential_like

    connected = isinstance(model, Functional) and not graph_is_sequential_like(model)
    if connected:
        default_line_length, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["left", "left", "right", "left"]
        graph_nodes = {id(n) for n in model._nodes}
    else:
        default_line_length, positions = 88, positions or [0.45, 0.80, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #"]
        aligns = ["left", "left", "right"]
        graph_nodes = set()
    if show_trainable:
        default_line_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    default_line_length = min(default_line_length, shutil.get_terminal_size().columns - 4)
    widths = column_widths(positions, line_length or default_line_length)

    def connections(layer):
        out = []
        for node in layer._inbound_nodes:
            if graph_nodes and id(node) not in graph_nodes:
                continue
            for t in node.input_tensors:
                inbound, node_index, tensor_index = t._history
                out.append(f"{inbound.name}[{node_index}][{tensor_index}]")
        return ", ".join(out) or "-"

    def fields(layer, owner, prefix=""):
        if not layer.built:
            params = "0 (unbuilt)"
        else:
            params = f"{_count(layer.weights):,}"
        row = [f"{prefix}{layer.name} ({type(layer).__name__})", owner._summary_shape(layer), params]
        if connected:
            row.append(connections(layer))
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        return row

    def rows_of(layer, owner, level=0):
        rows = [fields(layer, owner, "   " * level + "└ " if level else "")]
        if expand_nested and getattr(layer, "layers", None) and hasattr(layer, "_summary_shape"):
            for sub in layer.layers:
                rows.extend(rows_of(sub, layer, level + 1))
        return rows

    layers = model.operations if isinstance(model, Functional) else model.layers  # Keras lists operations too
    start, stop = _layer_range_bounds(layers, layer_range)
    rows = [r for layer in layers[start:stop] for r in rows_of(layer, model)]

    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    lines += _render_row(header, widths, aligns, "┃", bottom=True)
    lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    for i, row in enumerate(rows):
        lines += _render_row(row, widths, aligns, "│")
        if i != len(rows) - 1:
            lines.append("├" + "┼".join("─" * w for w in widths) + "┤")
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    # Keras prints through a rich Console as wide as the terminal: a wider table (line_length beyond it) is cut.
    console_width = shutil.get_terminal_size().columns
    lines = [line[:console_width] for line in lines]

    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    optimizer = getattr(model, "optimizer", None)
    # Keras's optimizer is built by its first update; an optimizer that has stepped is built whatever its flag says.
    built = optimizer is not None and (getattr(optimizer, "built", False) or
                                       _as_int(getattr(optimizer, "iterations", 0)) > 0)
    if getattr(model, "compiled", False) and built:
        opt_vars = list(optimizer.variables)  # as Keras: shown, and counted in the total, once built (first step)
    else:
        opt_vars = None
    total = _count(trainable) + _count(non_trainable) + (_count(opt_vars) if opt_vars else 0)
    total_bytes = _bytes(trainable) + _bytes(non_trainable) + (_bytes(opt_vars) if opt_vars else 0)
    lines.append(f" Total params: {total:,} ({readable_memory_size(total_bytes)})")
    lines.append(f" Trainable params: {_count(trainable):,} ({readable_memory_size(_bytes(trainable))})")
    lines.append(f" Non-trainable params: {_count(non_trainable):,} ({readable_memory_size(_bytes(non_trainable))})")
    if opt_vars is not None:
        lines.append(f" Optimizer params: {_count(opt_vars):,} ({readable_memory_size(_bytes(opt_vars))})")
    (print_fn or print)("\n".join(lines))
