"""Recording and differentiating: graph nodes, GradientTape, no_grad and the backward engine.

Every differentiable op calls :func:`record` with its output buffer (or a tuple of them, for an op with several
outputs), its tensor inputs and a ``backward`` closure written right beside its forward. ``record`` attaches a
:class:`Node` to the output when gradients may be wanted: an input requires grad (PyTorch style), or a recording
GradientTape watches an input (TensorFlow style; the node remembers the tapes it was recorded on). The engine walks
the graph in an explicit topological order (no recursion, so 100,000-node chains work), accumulates the gradients of
tensors used several times, runs a node with several outputs once, after the consumers of all of them, sums
broadcast gradients in the ops' backward functions, and frees the nodes it went through unless the tape is
persistent.

Example:
    >>> x = fastnn.Variable(3.0)
    >>> with fastnn.GradientTape() as tape:
    ...     y = x * x
    >>> float(tape.gradient(y, x))
    6.0
"""
from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from fastnn import backend
from fastnn.autograd.tensor import Tensor, Variable


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.tapes = []  # active GradientTapes, innermost last


_state = _State()
_new_object = object.__new__


class Node:
    """The op that produced a tensor: its inputs and the closure computing their gradients.

    ``backward(g, needs)`` receives the gradient of the output and a tuple of booleans (one per parent: is its
    gradient wanted?) and returns one gradient array (or None) per parent, with the parent's shape.
    """

    __slots__ = ("backward", "parents", "tapes", "name", "freed")
    multi = False  # one output (see MultiNode)

    def __init__(self, backward, parents, tapes, name):
        self.backward = backward
        self.parents = parents
        self.tapes = tapes
        self.name = name
        self.freed = False

    def release(self) -> None:
        """Drops the saved buffers and the references to the inputs."""
        self.backward = None
        self.parents = ()
        self.tapes = ()
        self.freed = True


class MultiNode(Node):
    """The node of an op with several outputs (an LSTM's sequence and states, ``moments``' mean and variance,
    ``split``'s pieces): every float output tensor points to this one node, which runs once per backward pass,
    after the consumers of all its outputs.

    ``backward(gs, needs)`` receives a tuple with one gradient per output, in the order of the outputs, None for an
    output that got no gradient (unused, not differentiable, or not leading to anything wanted), and returns one
    gradient (or None) per parent as :class:`Node`'s does. ``outputs`` maps id(output tensor) to its index: only
    ``record`` sets a tensor's node, so a live tensor whose node is this one is one of these outputs.
    """

    __slots__ = ("outputs", "n_outputs")
    multi = True

    def __init__(self, backward, parents, tapes, name, outputs, n_outputs):
        Node.__init__(self, backward, parents, tapes, name)
        self.outputs = outputs
        self.n_outputs = n_outputs


def record(data, parents: tuple, backward, name: str):
    """Wraps an op's output buffer in a Tensor and attaches a graph node when gradients may be wanted.

    Args:
        data: the output buffer, or a tuple of output buffers (an op with several outputs: the result is then a
            tuple of Tensors sharing one :class:`MultiNode`, and ``backward`` receives a tuple of gradients).
        parents: the Tensor inputs the backward closure returns gradients for, in order.
        backward: ``backward(g, needs) -> tuple`` (see :class:`Node` and :class:`MultiNode`).
        name: the op name (shown in errors and ``repr``).
    """
    # Tensor._wrap, inlined (record runs once per op); the tuple test sits on the rare not-a-buffer path.
    if not backend.is_buffer(data):
        if type(data) is tuple:
            return _record_outputs(data, parents, backward, name)
        data = backend.asarray(data)  # NumPy scalars (0-D results) become 0-D buffers
    out = _new_object(Tensor)
    out._data = data
    out._node = None
    out._requires_grad = False
    out.grad = None
    st = _state
    if not st.grad_enabled or data.dtype.kind != "f":
        return out
    req = False
    for p in parents:
        if p._requires_grad:
            req = True
            break
    tapes = ()
    active = st.tapes
    if active:
        if len(active) == 1:
            # One tape (fit's train step): the general expression below without its generator and list.
            tape = active[0]
            if tape._recording:
                connected = False
                for p in parents:  # no short-circuit: _connected also registers every accessed trainable variable
                    if tape._connected(p):
                        connected = True
                if connected:
                    tapes = (tape,)
        else:
            # No short-circuit: _connected also registers every accessed trainable variable with the tape.
            tapes = tuple(t for t in active if t._recording and any([t._connected(p) for p in parents]))
    if req or tapes:
        out._node = Node(backward, parents, tapes, name)
        out._requires_grad = req
    return out


def _record_outputs(buffers: tuple, parents: tuple, backward, name: str) -> tuple:
    """``record`` for an op with several outputs: one Tensor per buffer, the float ones sharing one MultiNode
    (integer and bool outputs, such as indices, are constants, as they are for one-output ops)."""
    outs = tuple(Tensor._wrap(b) for b in buffers)
    st = _state
    if not st.grad_enabled:
        return outs
    differentiable = {id(o): i for i, o in enumerate(outs) if o._data.dtype.kind == "f"}
    if not differentiable:
        return outs
    req = any([p._requires_grad for p in parents])
    tapes = ()
    if st.tapes:
        # No short-circuit: _connected also registers every accessed trainable variable with the tape.
        tapes = tuple(t for t in st.tapes if t._recording and any([t._connected(p) for p in parents]))
    if req or tapes:
        node = MultiNode(backward, parents, tapes, name, differentiable, len(outs))
        for o in outs:
            if id(o) in differentiable:
                o._node = node
                o._requires_grad = req
    return outs


def is_grad_enabled() -> bool:
    return _state.grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which no op is recorded for differentiation.

    Example:
        >>> with fastnn.no_grad():
        ...     y = w * x          # y has no graph; nothing is kept alive for a backward pass
    """

    def __enter__(self):
        self._prev = _state.grad_enabled
        _state.grad_enabled = False
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev
        return False


# ---------------------------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------------------------
def _freed_error(node) -> RuntimeError:
    return RuntimeError(
        f"backward: the graph through op '{node.name}' was already freed by an earlier backward() or "
        "non-persistent GradientTape.gradient(); use fastnn.GradientTape(persistent=True) to differentiate a "
        "graph several times"
    )


def _deliver(g):
    """A gradient handed to the user: a writable array of its own layout (broadcast views are materialised)."""
    if not backend.is_writeable(g):
        g = backend.copy(g)
    return g


def _backprop(roots, seeds, *, tape=None, wanted=(), accumulate=False, retain=False):
    """Propagates ``seeds`` (one buffer per root) back through the graph.

    Args:
        roots: output tensors; seeds: d(objective)/d(root), same shapes.
        tape: only follow nodes recorded on this tape (None: every node).
        wanted: tensors whose total gradient is returned, as {id: gradient buffer}.
        accumulate: add the gradients of leaf tensors with requires_grad into their ``.grad``.
        retain: keep the graph (persistent tapes); otherwise nodes are released once used.
    """
    wanted_ids = {id(t) for t in wanted}

    def node_of(t):
        n = t._node
        if n is None or (tape is not None and tape not in n.tapes):
            return None
        if n.freed:
            raise _freed_error(n)
        return n

    # 1. Topological order by an iterative post-order DFS; needs[id] says whether a gradient at that tensor
    #    leads to something wanted, so backward closures skip inputs nobody asked for. A node with several outputs
    #    is reached through each of its outputs; multi_outputs[id(output)] is its node, and pending[id(node)] counts
    #    its outputs in the order (step 2 counts them down and collects their gradients in collected[id(node)]).
    order = []
    needs = {}
    visited = set()
    multi_outputs = {}
    pending = {}
    stack = [(r, False) for r in roots]
    while stack:
        t, done = stack.pop()
        tid = id(t)
        if done:
            n = node_of(t)
            need = tid in wanted_ids or (accumulate and n is None and t._requires_grad)
            if n is not None:
                if not need:
                    for p in n.parents:
                        if needs[id(p)]:
                            need = True
                            break
                if n.multi:
                    multi_outputs[tid] = n
                    nid = id(n)
                    pending[nid] = pending.get(nid, 0) + 1
            needs[tid] = need
            order.append(t)
            continue
        if tid in visited:
            continue
        visited.add(tid)
        stack.append((t, True))
        n = node_of(t)
        if n is not None:
            for p in n.parents:
                if id(p) not in visited:
                    stack.append((p, False))

    # 2. Reverse topological order: every consumer of a tensor runs before the tensor itself. A node with several
    #    outputs runs when the last of its outputs in the order comes up: every consumer of every output came
    #    earlier, and its parents come later (each output depends on them), so it runs once with all gradients.
    grads = {}
    for r, s in zip(roots, seeds):
        prev = grads.get(id(r))
        grads[id(r)] = s if prev is None else backend.add(prev, s)
    results = {}
    collected = {}
    for t in reversed(order):
        tid = id(t)
        g = grads.pop(tid, None)
        if multi_outputs and tid in multi_outputs:
            n = multi_outputs[tid]
            nid = id(n)
            if g is not None and needs[tid]:
                if tid in wanted_ids:
                    results[tid] = g
                slots = collected.get(nid)
                if slots is None:
                    slots = collected[nid] = [None] * n.n_outputs
                slots[n.outputs[tid]] = g
            left = pending[nid] - 1
            if left:
                pending[nid] = left
                continue
            slots = collected.pop(nid, None)
            if slots is None:  # no output got a gradient
                continue
            g = tuple(slots)
        else:
            if g is None or not needs[tid]:
                continue
            if tid in wanted_ids:
                results[tid] = g
            n = node_of(t)
            if n is None:
                if accumulate and t._requires_grad:
                    g = g if g.dtype == t._data.dtype else backend.astype(g, t._data.dtype)
                    t.grad = Tensor._wrap(_deliver(g) if t.grad is None else backend.add(t.grad._data, g))
                continue
        parents = n.parents
        pneeds = tuple(needs[id(p)] for p in parents)
        if any(pneeds):
            pgrads = n.backward(g, pneeds)
            for p, need, pg in zip(parents, pneeds, pgrads):
                if not need or pg is None:
                    continue
                if not backend.is_buffer(pg):  # NumPy returns scalars for 0-D results
                    pg = backend.asarray(pg)
                pdata = p._data
                if pg.shape != pdata.shape:
                    raise RuntimeError(
                        f"internal error: the backward of '{n.name}' returned a gradient of shape {pg.shape} "
                        f"for an input of shape {pdata.shape}"
                    )
                if pg.dtype != pdata.dtype:
                    pg = backend.astype(pg, pdata.dtype)
                pid = id(p)
                prev = grads.get(pid)
                grads[pid] = pg if prev is None else backend.add(prev, pg)
        if not retain:
            n.release()
    return results


def _seed(target: Tensor, gradient, op: str):
    if not np.issubdtype(target.dtype, np.floating):
        raise TypeError(f"{op}: the target must be a float tensor, but it has dtype {target.dtype}")
    if gradient is None:
        return backend.ones(target.shape, dtype=target.dtype)
    from fastnn.autograd import dtypes

    g = dtypes.to_buffer(gradient, target.dtype, op=op)
    if g.shape != target.shape:
        raise ValueError(
            f"{op}: the output gradient must have the target's shape {target.shape}, but received shape {g.shape}"
        )
    return g


def backward(tensor: Tensor, gradient=None) -> None:
    """Implements ``Tensor.backward``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"backward: expected a fastnn.Tensor, but received {type(tensor).__name__}")
    seed = _seed(tensor, gradient, "backward")
    if tensor._node is None and not tensor._requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require gradients and has no graph; create the inputs with "
            "requires_grad=True (or use fastnn.Variable) outside fastnn.no_grad()"
        )
    _backprop([tensor], [seed], accumulate=True)


# ---------------------------------------------------------------------------------------------------------------
# GradientTape
# ---------------------------------------------------------------------------------------------------------------
def _flatten(structure, out):
    if isinstance(structure, (list, tuple)):
        for s in structure:
            _flatten(s, out)
    elif isinstance(structure, dict):
        for k in sorted(structure):
            _flatten(structure[k], out)
    else:
        out.append(structure)
    return out


def _pack(structure, flat_iter):
    if isinstance(structure, (list, tuple)):
        packed = [_pack(s, flat_iter) for s in structure]
        if isinstance(structure, tuple):
            return type(structure)(*packed) if hasattr(structure, "_fields") else tuple(packed)
        return packed
    if isinstance(structure, dict):
        return {k: _pack(structure[k], flat_iter) for k in sorted(structure)}
    return next(flat_iter)


_UNCONNECTED = {"none": "none", "zero": "zero"}


class GradientTape:
    """Records ops for reverse-mode differentiation (TensorFlow's ``tf.GradientTape``).

    Args:
        persistent: allow several ``gradient`` calls (the graph is kept until the tape and the tensors go).
        watch_accessed_variables: watch every trainable Variable used inside the tape automatically.

    Example:
        >>> x = fastnn.Tensor(2.0)
        >>> with fastnn.GradientTape() as tape:
        ...     tape.watch(x)
        ...     y = x ** 3
        >>> float(tape.gradient(y, x))
        12.0
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self._persistent = bool(persistent)
        self._watch_vars = bool(watch_accessed_variables)
        self._watched = {}  # id -> tensor (strong references, like TensorFlow's tape)
        self._recording = False
        self._entered = False
        self._used = False

    # -- context ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "GradientTape":
        if self._recording:
            raise RuntimeError("GradientTape: this tape is already recording (nested `with` on the same tape)")
        self._entered = True
        self._used = False
        self._recording = True
        _state.tapes.append(self)
        return self

    def __exit__(self, *exc):
        self._pop()
        return False

    def _pop(self):
        if self._recording:
            self._recording = False
            try:
                _state.tapes.remove(self)
            except ValueError:  # pragma: no cover - entered on another thread
                pass

    @contextlib.contextmanager
    def stop_recording(self):
        """Ops run inside this context are not recorded on this tape."""
        if not self._recording:
            raise RuntimeError("GradientTape.stop_recording: the tape is not recording (use it inside `with tape:`)")
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def reset(self) -> None:
        """Forgets everything recorded so far (the tape keeps recording when inside its context)."""
        self._watched = {}
        self._used = False

    # -- watching ---------------------------------------------------------------------------------------------
    def watch(self, tensor) -> None:
        """Watches a tensor (or a nested list/tuple/dict of tensors) so ops on it are recorded."""
        for t in _flatten(tensor, []):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"GradientTape.watch: expected a fastnn.Tensor or Variable, but received {type(t).__name__}"
                    " (convert it first with fastnn.ops.convert_to_tensor)"
                )
            if not np.issubdtype(t.dtype, np.floating):
                raise TypeError(
                    f"GradientTape.watch: only float tensors can be differentiated, but received dtype {t.dtype}"
                )
            self._watched[id(t)] = t

    def watched_variables(self) -> tuple:
        return tuple(t for t in self._watched.values() if isinstance(t, Variable))

    def _connected(self, t) -> bool:
        n = t._node
        if n is not None and self in n.tapes:
            return True
        if id(t) in self._watched:
            return True
        if self._watch_vars and isinstance(t, Variable) and t._trainable and t._data.dtype.kind == "f":
            self._watched[id(t)] = t
            return True
        return False

    # -- differentiation --------------------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(target)/d(sources), with TensorFlow's semantics.

        Args:
            target: a Tensor, or a (nested) list of Tensors (their gradients add up). A non-scalar target is
                differentiated as its sum (unless ``output_gradients`` is given).
            sources: a Tensor/Variable or a nested list/tuple/dict of them.
            output_gradients: optional seed gradient(s), same structure and shapes as ``target``.
            unconnected_gradients: "none" (default) gives None for sources the target does not depend on;
                "zero" gives zeros.

        Returns:
            Gradient tensors in the structure of ``sources``.

        Raises:
            RuntimeError: on a second call on a non-persistent tape, or on a tape never used as a context.
            TypeError: when a source or the target is not a float tensor.
        """
        if not self._entered:
            raise RuntimeError(
                "GradientTape.gradient: this tape never recorded anything; use it as `with fastnn.GradientTape() "
                "as tape:` around the computation first"
            )
        if self._used and not self._persistent:
            raise RuntimeError(
                "GradientTape.gradient can only be called once on a non-persistent tape; create it with "
                "fastnn.GradientTape(persistent=True) to compute several gradients"
            )
        mode = _UNCONNECTED.get(getattr(unconnected_gradients, "value", unconnected_gradients))
        if mode is None:
            raise ValueError(
                f"GradientTape.gradient: unconnected_gradients must be 'none' or 'zero', but received "
                f"{unconnected_gradients!r}"
            )
        if not self._persistent:
            self._pop()  # as in TensorFlow: a non-persistent tape stops recording when differentiated
        targets = _flatten(target, [])
        for t in targets:
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"GradientTape.gradient: the target must be a fastnn.Tensor, but received {type(t).__name__}"
                )
        if output_gradients is None:
            seeds = [_seed(t, None, "GradientTape.gradient") for t in targets]
        else:
            og = _flatten(output_gradients, [])
            if len(og) != len(targets):
                raise ValueError(
                    f"GradientTape.gradient: {len(targets)} targets but {len(og)} output_gradients"
                )
            seeds = [_seed(t, g, "GradientTape.gradient") for t, g in zip(targets, og)]
        flat_sources = _flatten(sources, [])
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(
                    "GradientTape.gradient: sources must be fastnn Tensors or Variables, but received "
                    f"{type(s).__name__}"
                )
            if not np.issubdtype(s.dtype, np.floating):
                raise TypeError(
                    f"GradientTape.gradient: cannot differentiate with respect to a tensor of dtype {s.dtype}; "
                    "sources must be float tensors"
                )
        # Only what the tape saw can have a gradient: watched tensors (and variables) and tensors it computed.
        on_tape = [s for s in flat_sources if id(s) in self._watched or (s._node is not None and self in s._node.tapes)]
        self._used = True
        found = _backprop(targets, seeds, tape=self, wanted=on_tape, retain=self._persistent)
        grads = []
        for s in flat_sources:
            g = found.get(id(s))
            if g is None:
                grads.append(Tensor._wrap(backend.zeros(s.shape, s.dtype)) if mode == "zero" else None)
            else:
                if g.dtype != s.dtype:
                    g = backend.astype(g, s.dtype)
                grads.append(Tensor._wrap(_deliver(g)))
        if isinstance(sources, Tensor):
            return grads[0]
        return _pack(sources, iter(grads))
