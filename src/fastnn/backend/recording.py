"""Recording one step's backend calls into a plan, and replaying the plan (the engine of the compiled step).

Every computation of fastnn's upper tiers goes through ``fastnn.backend`` (``B.gemm(...)``, ``B.add(...)``): the
layers, the autograd engine and its backward closures, the losses. So a step is fully described by the sequence of
backend calls it made, with which buffers, and what became of the results. ``record`` runs a Python function once
with a recording backend installed (every function of the active backend wrapped) and turns what it saw into a
*plan*: straight-line Python source, one line per backend call, compiled once::

    def plan(i0, i1):
        s0 = F0(i0, V0._data, C0, ...)          # the first Dense's GEMM (bias + ReLU fused)
        s1 = F1(s0, V1._data, ...)
        ...
        return (s5, s7, (s9, s11))

Replaying it later skips everything that is not a backend call: Layer.__call__, structure flattening, input-spec
checks, the functional graph walk, tape recording and the backward engine's graph traversal. The same functions
run with the same arguments in the same order, so results are bit-identical to eager execution.

What each value of a recorded call becomes in the plan:

- a buffer the step received (the batch): a parameter ``iK``;
- a buffer a recorded call returned (or an element of a returned tuple, an RNN workspace, a generator):
  a local ``sK``, deleted after its last use so intermediates are freed as eagerly as in eager mode;
- the current buffer of a model variable: ``VK._data`` read at the point of first use, so updates between steps
  (the optimizer, ``set_weights``, copy-on-write replacements) are seen;
- anything else (shapes, axes, dtypes, Python numbers, the seeded random generators, constant arrays made
  outside the step): a constant ``CK``. A generator is the same object at every replay, so random draws continue
  the same stream as in eager mode.

Variable updates made inside the step (BatchNormalization's moving statistics) are recorded as calls of the
Variable's own method (``V3.assign(s12)``), so its copy-on-write rule runs at replay as it would eagerly.

Host values: a call whose result is a Python value (``B.item``: a validation such as Embedding's negative-index
check, or a data-dependent choice such as the hinge losses' 0/1-label test) becomes a *guard*: at replay the value
is computed again and compared with the recorded one; if it differs, the replay raises ``GuardFailed`` before any
later call, the caller undoes the step's side effects made so far (``Plan.snapshot`` / ``Plan.restore``: random
generator states and assigned variables) and runs the step eagerly. Leaving the backend in a way the recorder
cannot follow raises ``Untraceable`` during recording (a fastnn Tensor passed where a buffer belongs, a buffer
handed to the host by ``to_numpy`` / ``tolist``); the caller then runs eagerly and warns once, naming the layer.

Backend-independent: a plan calls the functions of the backend that was active when it was recorded (looked up by
name on that backend), so the same mechanism replays a CUDA backend's kernels.
"""
from __future__ import annotations

import math
import sys
import threading
import weakref

import numpy as np

from fastnn import backend as B

# Functions that only describe buffers or the runtime (shapes, layouts, settings): called through unrecorded, their
# results are not data. `errstate` is recorded separately (its enter / exit), see _ErrstateRecorder.
_PASSTHROUGH = frozenset("""
is_buffer is_contiguous is_writeable private_refcount is_private_layout is_random_generator memory_owner_id
build_info get_num_threads set_num_threads simd_path set_simd_path gemm_path set_gemm_path oversubscription_guard
set_oversubscription_guard conv_same_padding broadcast_shapes result_type promote_types shares_memory
random_generator_state set_random_generator_state
""".split())
# Calls that hand a buffer's contents to the host, where the recorder cannot see what the Python does with them.
_HOST_EXPORTS = frozenset(["to_numpy"])
# Conversions that return their argument itself when it already has the wanted dtype and layout. When one did so
# while recording, the plan skips it: at replay its argument comes from the same kernels with the same shapes (or is
# a variable's buffer, always C-ordered, or a batch whose layout is part of the plan's signature).
_MAYBE_IDENTITY = frozenset(["asarray", "native", "contiguous", "astype", "ascontiguousarray"])
# Calls whose results are advanced by drawing from a generator (side effects a failed guard must undo).
_RANDOM = frozenset(["random_uniform", "random_normal", "random_integers", "random_permutation",
                     "random_truncated_normal"])

# Calls that write into an argument (or create a generator, whose draws must restart at every replay): never folded
# into constants nor dropped as dead code.
_WRITES = frozenset(["setitem", "scatter_add", "copyto", "put_along_axis", "optimizer_update", "adam_rows_update",
                     "random_generator", "set_random_generator_state"])

# Python values that are never slots: ids of small ints, True / None and interned strings are shared. Exact types:
# NumPy's float64 scalar is a float subclass, and a recorded call's NumPy scalar (a full sum) is data.
_PLAIN_TYPES = frozenset([bool, int, float, complex, str, bytes, type(None), type(Ellipsis), slice, range])


def _is_plain(obj):
    return type(obj) in _PLAIN_TYPES or isinstance(obj, (type, np.dtype))


_active = None  # the Recorder of the step being recorded (one at a time, in one thread)


class Untraceable(Exception):
    """Recording met something a plan cannot reproduce; ``where`` names the layer (or "the step")."""

    def __init__(self, reason, where):
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.where = where


class RecordingBusy(RuntimeError):
    """Another thread is recording a step (one recording at a time: it swaps the backend's functions); the caller
    runs its step eagerly instead."""


class GuardFailed(Exception):
    """A host value computed at replay differs from the recorded one: this batch must run eagerly."""


def active():
    """The recorder of the step being recorded in this thread, or None (used by Variable's update methods)."""
    rec = _active
    if rec is not None and rec.thread == threading.get_ident() and not rec.suspended and rec.failed is None:
        return rec
    return None


def run_at_replay(fn, *args):
    """Calls ``fn(*args)`` now and, when a step is being recorded, at every replay of its plan too, with the replay's
    buffers. For host-side bookkeeping that must follow the buffers (the embedding gradient's lookup rows, which
    the optimizers read); ``fn`` must not compute on buffers itself."""
    rec = active()
    if rec is not None:
        rec.effect(fn, args)
    return fn(*args)


def _current_layer():
    """The innermost Layer whose ``call`` is on the stack (named in Untraceable messages); found only on failure."""
    f = sys._getframe(1)
    from fastnn.layers.layer import Layer

    while f is not None:
        if f.f_code.co_name in ("call", "__call__", "_eager_call"):
            me = f.f_locals.get("self")
            if isinstance(me, Layer):
                return f'layer "{me.name}" ({type(me).__name__})'
        f = f.f_back
    return "the step"


def _differs(value, expected):
    """A guard's test: not the same host value (NaN equals NaN; lists compared element by element)."""
    if type(value) is not type(expected):
        return True
    if isinstance(value, float):
        return not (value == expected or (math.isnan(value) and math.isnan(expected)))
    return value != expected


class _ErrstateRecorder:
    """``B.errstate(...)`` while recording: enters the real context and records its enter and exit."""

    def __init__(self, rec, kwargs):
        self._rec = rec
        self._kwargs = kwargs
        self._real = rec.impl.errstate(**kwargs)
        self._name = None

    def __enter__(self):
        # The plan opens a `with B_errstate(**kwargs):` block of its own here (closed at the matching exit).
        rec = self._rec
        self._name = rec._const(self._kwargs)
        rec.funcs["B_errstate"] = rec.impl.errstate
        rec._emit(f"with B_errstate(**{self._name}):", (), (), "enter", self._name)
        return self._real.__enter__()

    def __exit__(self, *exc):
        self._rec._emit("# end of errstate", (), (), "exit", self._name)
        return self._real.__exit__(*exc)


class _Call:
    """A recorded call's parts (what the fusion pass rewrites): its result, the backend function's name and plan
    name, the local it defines, positional arguments as [source, object], keyword arguments as [key, source,
    object]."""

    __slots__ = ("result", "fname", "fsrc", "out", "args", "kwargs")

    def __init__(self, result, fname, fsrc, out, args, kwargs):
        self.result, self.fname, self.fsrc, self.out = result, fname, fsrc, out
        self.args = [list(a) for a in args]
        self.kwargs = [list(k) for k in kwargs]

    def line(self):
        parts = [a[0] for a in self.args] + [f"{k}={v}" for k, v, _ in self.kwargs]
        return f"{self.out} = {self.fsrc}({', '.join(parts)})"

    def uses(self):
        names = [a[0] for a in self.args] + [v for _, v, _ in self.kwargs]
        return tuple(n for n in names if n[:1] in ("s", "i", "g"))

    def kwarg(self, key, default=None):
        return next((obj for k, _, obj in self.kwargs if k == key), default)

    def set_kwarg(self, key, src, obj):
        for kw in self.kwargs:
            if kw[0] == key:
                kw[1], kw[2] = src, obj
                return
        self.kwargs.append([key, src, obj])


class Recorder:
    """Records the backend calls of one step run in this thread (``record`` is the way to use it)."""

    def __init__(self, impl, inputs, variables):
        self.impl = impl
        self.thread = threading.get_ident()
        self.suspended = False
        self.failed = None  # the Untraceable met; from then on the step just runs (eagerly) to its end
        self.lines = []  # (source line, slots used, slot defined or None)
        self.consts = []  # the objects behind C0, C1, ...
        self.funcs = {}  # B_<name> -> the backend function it calls
        self._const_ids = {}
        self.keep = []  # objects whose ids are mapped and must not die meanwhile (ids are unique only while alive)
        self.weak = {}  # id -> weak reference of a result (its death forgets the id)
        self.fingerprint = {}  # id of a returned tuple / list -> its elements' ids
        self.const_locals = set()  # locals computed from constants only (candidates for folding)
        self.ref = {}  # id(object) -> local name holding it in the plan
        self.var_of = {}  # id(a variable's current buffer) -> its index in self.variables
        # The model's variables first, then every other live one (a buffer of any variable read inside the step is
        # read from the variable at replay); the plan holds only those it uses.
        from fastnn.autograd.tensor import live_variables

        listed = {id(v) for v in variables}
        self.variables = list(variables) + [v for v in live_variables() if id(v) not in listed]
        self.index_of = {id(v): k for k, v in enumerate(self.variables)}
        self.used_variables = set()
        self.n_locals = 0
        self.side_effect_at = None  # index of the first line that draws random numbers or assigns a variable
        self.generators = []  # generators the plan draws from (their states are snapshot when needed)
        self.assigned = []  # indices of variables the plan assigns
        for k, v in enumerate(self.variables):
            self.var_of[id(v._data)] = k
            self.keep.append(v._data)
        self.params = []
        for k, buf in enumerate(inputs):
            name = f"i{k}"
            self.params.append(name)
            if buf is not None and not _is_plain(buf):
                self.ref[id(buf)] = name
                self.keep.append(buf)

    # -- naming -------------------------------------------------------------------------------------------------
    def _new_local(self, prefix="s"):
        self.n_locals += 1
        return f"{prefix}{self.n_locals}"

    def _const(self, obj):
        k = self._const_ids.get(id(obj))
        if k is None:
            k = len(self.consts)
            self.consts.append(obj)
            self._const_ids[id(obj)] = k
            self.keep.append(obj)
        return f"C{k}"

    def _func(self, fname, fn):
        """The plan's name for a backend function: ``B_<name>`` (readable plans)."""
        name = f"B_{fname}"
        known = self.funcs.get(name)
        if known is not None and known is not fn:
            name = f"B_{fname}_{id(fn)}"
        self.funcs[name] = fn
        return name

    def _emit(self, line, uses, defines, kind="effect", obj=None):
        """One plan line. ``kind``: "call" (a pure call: no draw, no write into an argument; ``obj`` its result),
        "sub" (an element of a returned tuple), "read" (a variable's buffer), or "effect" (kept as it is: draws,
        writes, guards, assignments, host effects, the return)."""
        if kind not in ("call", "sub", "read"):
            self.const_locals.difference_update(uses)  # written into (or returned): not a constant from here on
        self.lines.append((line, tuple(uses), tuple(defines), kind, obj))

    # -- values -------------------------------------------------------------------------------------------------
    def render(self, obj, uses):
        """The plan expression for an argument (slot, variable read, structure of them, or constant)."""
        name = self.ref.get(id(obj))
        if name is not None and (id(obj) not in self.fingerprint or (
                isinstance(obj, (tuple, list)) and self.fingerprint[id(obj)] == tuple(id(o) for o in obj))):
            uses.append(name)
            return name
        if _is_plain(obj):
            t = type(obj)
            if t is bool or t is int or obj is None or (t is float and math.isfinite(obj)):
                return repr(obj)
            return self._const(obj)
        k = self.var_of.get(id(obj))
        if k is not None:  # first use of a variable's buffer in this step: read it here at replay
            name = self._new_local()
            self.used_variables.add(k)
            self._emit(f"{name} = V{k}._data", (), (name,), "read")
            self.ref[id(obj)] = name
            uses.append(name)
            return name
        if isinstance(obj, (tuple, list)):
            n_uses = len(uses)
            parts = [self.render(o, uses) for o in obj]
            if len(uses) == n_uses:  # nothing of the step inside: one constant
                return self._const(obj)
            if isinstance(obj, list):
                return "[" + ", ".join(parts) + "]"
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if isinstance(obj, dict):
            n_uses = len(uses)
            parts = {k: self.render(v, uses) for k, v in obj.items()}
            if len(uses) == n_uses:
                return self._const(obj)
            return "{" + ", ".join(f"{self._const(k)}: {p}" for k, p in parts.items()) + "}"
        from fastnn.autograd.tensor import Tensor

        if isinstance(obj, Tensor):
            raise Untraceable("passes a fastnn Tensor to the backend where a buffer belongs", _current_layer())
        return self._const(obj)

    def _forget(self, key, name):
        if self.ref.get(key) == name:
            del self.ref[key]
        self.weak.pop(key, None)

    def _bind(self, obj, name):
        """Maps a call's result (and the elements of a returned tuple / list) to plan locals."""
        if _is_plain(obj):
            return
        key = id(obj)
        self.ref[key] = name
        # Results are not kept alive (a step's temporaries die as in eager mode, so recording does not raise the
        # peak memory): a weak reference forgets the id when the object dies, before the id can be reused. A tuple
        # or list (no weak references) is recognised by its elements' ids; what supports neither (NumPy scalars)
        # is kept.
        if isinstance(obj, (tuple, list)):
            self.fingerprint[key] = tuple(id(o) for o in obj)
        else:
            try:
                self.weak[key] = weakref.ref(obj, lambda _r, key=key, name=name: self._forget(key, name))
            except TypeError:
                self.keep.append(obj)
        if isinstance(obj, (tuple, list)):
            for j, o in enumerate(obj):
                if _is_plain(o) or id(o) in self.ref:
                    continue
                sub = self._new_local()
                constant = name in self.const_locals
                if constant:
                    self.const_locals.add(sub)
                self._emit(f"{sub} = {name}[{j}]", (name,), (sub,), "sub", o if constant else None)
                self._bind(o, sub)

    # -- events -------------------------------------------------------------------------------------------------
    def call(self, fname, fn, args, kwargs):
        """Runs one backend function and records it. What cannot be recorded marks the recording failed and the
        step goes on unrecorded, so it still completes as an eager step."""
        if fname in _HOST_EXPORTS:
            self.failed = Untraceable(f"hands a buffer to the host (B.{fname}, e.g. Tensor.numpy() inside a call)",
                                      _current_layer())
            return fn(*args, **kwargs)
        result = fn(*args, **kwargs)
        if fname in _MAYBE_IDENTITY and args and result is args[0]:
            src = self.ref.get(id(result))
            if src is None and id(result) in self.var_of:
                src = self.render(result, [])
            if src is not None:
                return result
        uses = []
        consts = []  # per argument: whether it is a constant of the plan (no local in it)
        try:
            arg_src = []
            for a in args:
                n = len(uses)
                arg_src.append(self.render(a, uses))
                consts.append(len(uses) == n)
            kw_src = []
            for k, v in kwargs.items():
                n = len(uses)
                kw_src.append((k, self.render(v, uses)))
                consts.append(len(uses) == n)
        except Untraceable as exc:
            self.failed = exc
            return result
        fsrc = self._func(fname, fn)
        call_src = f"{fsrc}({', '.join(arg_src + [f'{k}={v}' for k, v in kw_src])})"
        if fname in _RANDOM:
            for a in list(args) + list(kwargs.values()):
                if self.impl.is_random_generator(a) and all(a is not g for g in self.generators):
                    self.generators.append(a)
            self._side_effect()
        if _is_plain(result) or (isinstance(result, list) and fname == "tolist"):
            if result is None:
                self._emit(call_src, uses, ())
            else:  # a host value: a guard
                name = self._new_local("g")
                self._emit(f"{name} = {call_src}", uses, (name,))
                self._emit(f"if _differs({name}, {self._const(result)}): raise GuardFailed({len(self.lines)})",
                           (name,), ())
            return result
        name = self._new_local()
        pure = not (fname in _RANDOM or fname in _WRITES or "out" in kwargs
                    or (isinstance(fn, np.ufunc) and len(args) > fn.nin))
        # Objects are kept only where a later pass reads them: constant arguments (the fusion pass tests them) and
        # the results of calls on constants only (the folding pass makes them plan constants). Holding every
        # result would keep the step's temporaries alive and raise the recording step's peak memory.
        constant = pure and all(u in self.const_locals for u in uses)
        nargs = len(args)
        call = _Call(result if constant else None, fname, fsrc, name,
                     [(src, a if consts[j] else None) for j, (src, a) in enumerate(zip(arg_src, args))],
                     [(k, v, kwargs[k] if consts[nargs + j] else None) for j, (k, v) in enumerate(kw_src)])
        if constant:
            self.const_locals.add(name)
        self._emit(f"{name} = {call_src}", uses, (name,), "call" if pure else "effect", call)
        self._bind(result, name)
        return result

    def _side_effect(self):
        if self.side_effect_at is None:
            self.side_effect_at = len(self.lines)

    def assign(self, var, method, value):
        """A Variable update inside the step (the Variable's method ``method`` with ``value``)."""
        from fastnn.autograd.tensor import Tensor, Variable

        index = self.index_of.get(id(var))
        if index is None:
            self.failed = Untraceable(f"updates variable {var.name!r}, which is not one of the model's variables",
                                      _current_layer())
            return getattr(Variable, method)(var, value)
        buf = value._data if isinstance(value, Tensor) else value
        uses = []
        try:
            src = self.render(buf, uses)
        except Untraceable as exc:
            self.failed = exc
        if self.failed is not None:
            return getattr(Variable, method)(var, value)
        self._side_effect()
        if index not in self.assigned:
            self.assigned.append(index)
        self.used_variables.add(index)
        old = var._data
        self.suspended = True
        try:
            getattr(Variable, method)(var, value)
        finally:
            self.suspended = False
        self._emit(f"V{index}.{method}({src})", uses, ())
        if var._data is not old:  # copy-on-write gave it a fresh buffer: later reads of it are reads of V
            self.var_of.pop(id(old), None)
            self.var_of[id(var._data)] = index
            self.keep.append(var._data)
        elif id(old) in self.ref:
            # Written in place: a plan local holding this buffer would hold the new values at replay too, but a
            # later read must see them as the variable's current buffer, so forget the local.
            del self.ref[id(old)]
        return var

    def effect(self, fn, args):
        """A host-side Python effect of the step (``run_at_replay``): the plan calls ``fn`` with the same values."""
        uses = []
        try:
            src = [self.render(a, uses) for a in args]
        except Untraceable as exc:
            self.failed = exc
            return
        self._emit(f"{self._const(fn)}({', '.join(src)})", uses, ())

    # -- the plan -----------------------------------------------------------------------------------------------
    def finish(self, outputs):
        """The plan returning ``outputs`` (a flat list of buffers / None / constants from this step); raises the
        Untraceable met while recording."""
        self.weak.clear()  # no callbacks after the recording
        if self.failed is not None:
            raise self.failed
        uses = []
        from fastnn.autograd.tensor import Tensor

        if any(isinstance(o, Tensor) for o in outputs):
            raise TypeError("fastnn plan outputs must be buffers")
        out_src = [self.render(o, uses) if o is not None else "None" for o in outputs]
        self._emit("return (" + ", ".join(out_src) + ("," if len(out_src) == 1 else "") + ")", uses, ())
        return Plan(self)


def _fused(rec, lines):
    """Kernel pairs one fused call replaces with the same bits (csrc: batch normalization with activation="relu",
    ``add_relu``), when a ReLU's input has no other use than that ReLU and its backward:

    - ``y = batch_norm_*_forward(...)[0]; r = activation_forward(y, "relu")``: the batch norm computes r itself;
    - ``s = add(a, b); r = activation_forward(s, "relu")``: ``r = add_relu(a, b)``;
    - the ReLU's backward ``activation_backward(g, s, r, "relu")`` then reads r for s (it tests s > 0, which is
      r > 0), and when it feeds only ``batch_norm_backward``, that call masks g itself (``relu_y=r``).

    Keras has no layer holding both halves of a pair, so only a whole step shows them; eager execution runs them
    unfused, and the plan gives its bits."""
    if not hasattr(rec.impl, "add_relu"):
        return lines
    lines = list(lines)

    def indexed():
        """Who defines and who uses each local, read from the lines as they stand: a fusion renames locals and
        drops lines, so the maps are rebuilt after each one (a stale map sent a later ReLU to a removed line)."""
        calls, users, subs = {}, {}, {}
        for i, e in enumerate(lines):
            if e is None:
                continue
            if isinstance(e[4], _Call):
                calls[e[4].out] = (i, e[4])
            for u in set(e[1]):
                users.setdefault(u, []).append(i)
            if e[3] == "sub" and e[0].endswith("]"):  # ``y = t[k]``, not a fusion's renaming ``r = y``
                subs[e[2][0]] = (i, e[1][0], int(e[0].rsplit("[", 1)[1][:-1]))
        return calls, users, subs

    calls, users, subs = indexed()

    def relu_call(c):
        return (c.fname == "activation_forward" and len(c.args) >= 2 and c.args[1][1] == "relu"
                and not c.kwargs)

    def set_line(i, call):
        line, _, defines, kind, _ = lines[i]
        lines[i] = (call.line(), call.uses(), defines, kind, call)

    for i in range(len(lines)):
        relu = lines[i][4] if lines[i] is not None else None
        if not isinstance(relu, _Call) or not relu_call(relu):
            continue
        src = relu.args[0][0]  # the ReLU's input local
        backward = [j for j in users.get(src, []) if j != i]
        back_calls = [lines[j][4] for j in backward]
        if not all(isinstance(c, _Call) and c.fname == "activation_backward" and len(c.args) >= 4
                   and c.args[1][0] == src and c.args[2][0] == relu.out and c.args[3][1] == "relu"
                   for c in back_calls):
            continue
        producer = None
        if src in subs:  # y = bn(...)[0]
            k, parent, index = subs[src]
            owner = calls.get(parent)
            if index == 0 and owner is not None and owner[1].fname in ("batch_norm_train_forward",
                                                                       "batch_norm_inference_forward") \
                    and owner[1].kwarg("activation", "linear") == "linear":
                producer = ("bn", owner)
        elif src in calls and calls[src][1].fname == "add" and len(calls[src][1].args) == 2 \
                and not calls[src][1].kwargs:
            producer = ("add", calls[src])
        elif src in calls and calls[src][1].fname == "batch_norm_inference_forward" \
                and calls[src][1].kwarg("activation", "linear") == "linear":
            producer = ("bn_inference", calls[src])
        if producer is None:
            continue
        kind, (pi, pcall) = producer
        if kind == "bn":
            pcall.set_kwarg("activation", rec._const("relu"), "relu")
            set_line(pi, pcall)
            lines[i] = (f"{relu.out} = {src}", (src,), (relu.out,), "sub", relu.result)
        else:
            if kind == "add":
                pcall.fname, pcall.fsrc = "add_relu", rec._func("add_relu", rec.impl.add_relu)
            else:
                pcall.set_kwarg("activation", rec._const("relu"), "relu")
            pcall.out = relu.out
            set_line(pi, pcall)
            lines[pi] = (pcall.line(), pcall.uses(), (relu.out,), lines[pi][3], pcall)
            lines[i] = (f"{src} = {relu.out}", (relu.out,), (src,), "sub", relu.result)
        for j, c in zip(backward, back_calls):
            c.args[1][0], c.args[1][1] = relu.out, relu.result  # s > 0 is r > 0
            set_line(j, c)
            if kind != "bn":
                continue
            consumers = users.get(c.out, [])
            bwd = lines[consumers[0]][4] if len(consumers) == 1 else None
            if isinstance(bwd, _Call) and bwd.fname == "batch_norm_backward" and bwd.args[0][0] == c.out \
                    and bwd.kwarg("relu_y") is None:
                bwd.args[0][0], bwd.args[0][1] = c.args[0][0], c.args[0][1]  # the incoming gradient itself
                bwd.set_kwarg("relu_y", relu.out, relu.result)
                set_line(consumers[0], bwd)
                lines[j] = None  # removed below: batch_norm_backward masks the gradient itself
        calls, users, subs = indexed()
    return [e for e in lines if e is not None]


def _constants_folded(rec, lines):
    """Pure calls whose arguments are all constants of the step (the losses' batch-size arithmetic, a mask of ones)
    give the same value at every replay: the plan takes the recorded value (``sK = Cj``). Not for a value a later
    call writes into (it must be fresh at every replay, and what follows the write is not constant), nor for an
    output (each step returns fresh buffers)."""
    folded = set()
    for line, uses, defines, kind, obj in lines:
        if kind in ("call", "sub"):
            if all(u in folded for u in uses):
                folded.update(defines)
        elif kind != "read":
            folded.difference_update(uses)  # written into by an effect, or returned
    out = []
    for line, uses, defines, kind, obj in lines:
        if kind in ("call", "sub") and defines and defines[0] in folded:
            value = obj.result if isinstance(obj, _Call) else obj
            out.append((f"{defines[0]} = {rec._const(value)}", (), defines, "call", value))
        else:
            out.append((line, uses, defines, kind, obj))
    return out


def _dead_code_removed(lines):
    """Without the pure lines whose results nothing kept uses (a metric's zeros made while the losses were built,
    conversions whose results were replaced, reads of variables only a folded line used)."""
    live = set()
    kept = []
    for entry in reversed(lines):
        _, uses, defines, kind, _ = entry
        if kind in ("call", "sub", "read") and not any(d in live for d in defines):
            continue
        if kind == "enter" and kept and kept[-1][3] == "exit" and kept[-1][4] == entry[4]:
            kept.pop()  # an errstate around nothing that is left
            continue
        live.update(uses)
        kept.append(entry)
    kept.reverse()
    return kept


class Plan:
    """A recorded step: ``plan(*inputs)`` replays it and returns the flat outputs."""

    def __init__(self, rec: Recorder):
        lines = _dead_code_removed(_constants_folded(rec, _fused(rec, rec.lines)))
        last_use = {}
        for i, (_, uses, defines, _, _) in enumerate(lines):
            for u in uses:
                last_use[u] = i
            for d in defines:
                last_use.setdefault(d, i)
        body = []
        indent = "    "
        for i, (line, uses, defines, kind, _) in enumerate(lines):
            if kind == "exit":  # the end of an errstate block
                indent = indent[:-4]
                continue
            body.append(indent + line)
            if kind == "enter":
                indent += "    "
            dead = sorted({n for n in uses + defines if last_use.get(n) == i and n[0] in "sg"})
            if dead and not line.startswith("return"):
                body.append(indent + "del " + ", ".join(dead))
        self.source = f"def plan({', '.join(rec.params)}):\n" + "\n".join(body) + "\n"
        namespace = {f"C{k}": c for k, c in enumerate(rec.consts)}
        namespace.update({f"V{k}": rec.variables[k] for k in rec.used_variables})
        namespace.update(rec.funcs)
        namespace["_differs"] = _differs
        namespace["GuardFailed"] = GuardFailed
        exec(compile(self.source, "<fastnn plan>", "exec"), namespace)  # noqa: S102 - our own generated source
        self._fn = namespace["plan"]
        self.n_calls = sum(1 for line, *_ in lines if "(" in line and not line.startswith(("if ", "return")))
        # A replay that stops early (a failed guard, or an error the eager step reports in its own words) is undone
        # before the batch runs eagerly: the random draws and variable updates it made come back.
        self.needs_snapshot = rec.side_effect_at is not None
        self.generators = list(rec.generators)
        self.assigned = [rec.variables[k] for k in rec.assigned]
        self.impl = rec.impl

    def __call__(self, *inputs):
        return self._fn(*inputs)

    def snapshot(self):
        """What a replay may change before it stops early (None when the plan draws nothing and assigns nothing)."""
        if not self.needs_snapshot:
            return None
        return ([self.impl.random_generator_state(g) for g in self.generators],
                [(v, v._data, self.impl.copy(v._data)) for v in self.assigned])

    def restore(self, snap):
        if snap is None:
            return
        states, values = snap
        for g, s in zip(self.generators, states):
            self.impl.set_random_generator_state(g, s)
        for v, buf, saved in values:
            v._data = buf
            self.impl.copyto(buf, saved)


def _recording_functions(rec):
    """{name: function} for the recording backend: every function the backend module holds now (the active
    backend's, or whatever a test patched in) wrapped to record its calls."""
    impl = rec.impl
    out = {}
    for name in B._NAMES:
        obj = getattr(impl, name)
        if name == "errstate":
            out[name] = lambda **kw: _ErrstateRecorder(rec, kw) if active() is rec else impl.errstate(**kw)
            continue
        if not callable(obj) or name in _PASSTHROUGH or isinstance(obj, type):
            continue

        def wrapper(*args, _name=name, _fn=obj, **kwargs):
            if active() is rec:  # None when suspended (a nested call), failed, or another thread
                rec.suspended = True
                try:
                    return rec.call(_name, _fn, args, kwargs)
                finally:
                    rec.suspended = False
            return _fn(*args, **kwargs)

        out[name] = wrapper
    return out


class _BackendFunctions:
    """The functions fastnn.backend holds now, as a namespace (what a plan calls and reads states through)."""

    def __init__(self):
        for name in B._NAMES:
            setattr(self, name, getattr(B, name))


def record(fn, inputs, variables):
    """Runs ``fn(*inputs)`` once, eagerly, recording its backend calls. ``fn`` returns a flat list of buffers
    (or None). Returns (outputs, Plan). Raises Untraceable after ``fn`` ran to its end when part of it could not be
    recorded (its results are then those of an ordinary eager run).

    The recording functions replace fastnn.backend's attributes for the duration and the exact previous values
    come back afterwards (a function a test patched in stays patched, and is what the plan calls)."""
    global _active
    rec = Recorder(_BackendFunctions(), inputs, variables)
    saved = {name: getattr(B, name) for name in B._NAMES}
    wrappers = _recording_functions(rec)
    with B._lock:
        if _active is not None:
            raise RecordingBusy("fastnn: another thread is recording a step")
        _active = rec
        for name, w in wrappers.items():
            setattr(B, name, w)
    try:
        outputs = fn(*inputs)
    finally:
        with B._lock:
            for name, value in saved.items():
                setattr(B, name, value)
            _active = None
    return outputs, rec.finish(outputs)
