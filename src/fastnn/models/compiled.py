"""The compiled train / test / predict step (``compile(jit_compile=...)``).

The first step for an input signature runs eagerly with its backend calls recorded (``fastnn.backend.recording``);
later batches with that signature replay the recorded plan: the same kernels with the same arguments in the same
order, without the per-layer Python (Layer.__call__, input-spec checks, the functional graph walk, tape
recording, the backward engine's traversal). Results are bit-identical to eager execution.

What a plan covers, per kind of step:

- train: the forward pass in training mode, the compiled losses and regularization, the loss scaling and the
  gradients of the trainable variables. The optimizer update, the loss tracker and the metrics run after it as in
  eager mode (their scalars, such as Adam's bias corrections, change every step);
- test: the forward pass in inference mode and the losses; the trackers and metrics run after it;
- predict: the forward pass in inference mode.

A signature is the structure, shapes and dtypes of the batch, plus the trainable variables (a layer frozen
between steps gives a new plan). A partial last batch therefore records a second plan. ``Model.compile`` drops
every plan.

When recording meets something a plan cannot reproduce (``trace.Untraceable``), the step it was recording still
completes eagerly, the model warns once naming the layer, and that kind of step stays eager for the model. A
guard that fails at replay (a data-dependent host value, ``trace.GuardFailed``) undoes what the replay changed and
runs that batch eagerly; a signature whose guards keep failing is given up after ``_MAX_GUARD_FAILURES``.

``FASTNN_JIT_VERIFY=1`` (tests): every replay is also run eagerly from the same state and the two results must be
bit-identical (AssertionError otherwise); the eager results are the ones kept.
"""
from __future__ import annotations

import os
import warnings

from fastnn import backend as B
from fastnn import utils as _utils
from fastnn.autograd.tensor import Tensor
from fastnn.backend import recording as trace

_MAX_GUARD_FAILURES = 3
_VERIFY = os.environ.get("FASTNN_JIT_VERIFY", "") not in ("", "0")


def _flatten(structure):
    """(leaves, treedef) of nested tuples / lists / dicts; treedef is hashable."""
    leaves = []

    def walk(s):
        if isinstance(s, tuple):
            return ("t",) + tuple(walk(e) for e in s)
        if isinstance(s, list):
            return ("l",) + tuple(walk(e) for e in s)
        if isinstance(s, dict):
            keys = tuple(s)
            return ("d", keys) + tuple(walk(s[k]) for k in keys)
        leaves.append(s)
        return None

    return leaves, walk(structure)


def _unflatten(tree, leaves):
    it = iter(leaves)

    def build(t):
        if t is None:
            return next(it)
        if t[0] == "t":
            return tuple(build(e) for e in t[1:])
        if t[0] == "l":
            return [build(e) for e in t[1:]]
        return {k: build(e) for k, e in zip(t[1], t[2:])}

    return build(tree)


def _buffer_of(t):
    return None if t is None else (t._data if isinstance(t, Tensor) else t)


def _flat_outputs(out):
    """A region's results (predictions, then tensors or lists of tensors) as (flat buffers, predictions' treedef,
    number of prediction leaves): what a plan returns."""
    pred_leaves, pred_tree = _flatten(out[0])
    flat = [_buffer_of(t) for t in pred_leaves]
    for item in out[1:]:
        flat += [_buffer_of(t) for t in item] if isinstance(item, list) else [_buffer_of(item)]
    return flat, pred_tree, len(pred_leaves)


def _wrap(b):
    return None if b is None else Tensor._wrap(b)


class _Entry:
    """A plan and how to rebuild the region's results from its flat outputs: the predictions' structure, then per
    further item None (one tensor) or the length of its list (the gradients, the per-output losses)."""

    __slots__ = ("plan", "pred_tree", "n_pred", "layout", "guard_failures")

    def __init__(self, plan, pred_tree, n_pred, layout):
        self.plan, self.pred_tree, self.n_pred, self.layout = plan, pred_tree, n_pred, layout
        self.guard_failures = 0


class CompiledSteps:
    """The plans of one model, by signature, and the eager regions they were recorded from."""

    def __init__(self, model):
        self.model = model
        self.entries = {}
        self.eager_kinds = {}  # kind -> the reason it cannot be traced

    # -- signatures ---------------------------------------------------------------------------------------------
    def _key(self, kind, leaves, tree, variables):
        # Per buffer its shape, dtype and contiguity (a plan skips conversions that were no-ops for the recorded
        # batch; a batch whose alignment differs makes a kernel refuse it at replay, and the batch runs eagerly).
        # The global generator is part of it: set_random_seed replaces it, and a plan draws from the object it saw.
        return (kind, tree, tuple([None if b is None else (b.shape, b.dtype, B.is_contiguous(b)) for b in leaves]),
                tuple([id(v) for v in variables]) if variables else (), id(B.current()), id(_utils.rng()))

    def _variables(self):
        model = self.model
        vs = list(model.variables)
        opt = getattr(model, "optimizer", None)
        if opt is not None:
            seen = {id(v) for v in vs}
            vs += [v for v in getattr(opt, "variables", []) if id(v) not in seen]
        return vs

    # -- the eager regions (what a plan records) -----------------------------------------------------------------
    def _train_region(self, x, y, sw, variables):
        model = self.model
        y_pred, loss, grads = model._forward_backward(x, y, sw, variables)
        return y_pred, loss, grads, list(model._last_output_losses or [])

    def _test_region(self, x, y, sw):
        model = self.model
        y_pred, loss = model._forward_loss(x, y, sw)
        return y_pred, loss, list(model._last_output_losses or [])

    def _predict_region(self, x):
        return self.model._forward_predict(x)

    # -- running a step -----------------------------------------------------------------------------------------
    def _run(self, kind, batch, region, variables=()):
        """Runs ``region(*batch)`` through a plan when there is one for this signature (recording it otherwise).
        The region returns (y_pred, *tensors_or_lists); returns the same structure with Tensors."""
        is_buffer = B.is_buffer
        if all(b is None or is_buffer(b) for b in batch):  # the common case: one buffer per argument
            leaves, tree = batch, len(batch)
        else:
            leaves, tree = _flatten(batch)
            if not all(b is None or is_buffer(b) for b in leaves):
                return region(*batch)
        if kind in self.eager_kinds or not self.model.built:
            return region(*batch)
        key = self._key(kind, leaves, tree, variables)
        entry = self.entries.get(key)
        if entry is None:
            return self._record(kind, key, batch, leaves, tree, region)
        if entry.plan is None:  # given up on (guards kept failing)
            return region(*batch)
        snap = entry.plan.snapshot()
        if _VERIFY:
            return self._verify(entry, batch, leaves, region)
        try:
            flat = entry.plan(*leaves)
        except trace.GuardFailed:
            entry.plan.restore(snap)
            entry.guard_failures += 1
            if entry.guard_failures >= _MAX_GUARD_FAILURES:
                entry.plan = None
            return region(*batch)
        except Exception as exc:
            # A kernel refused the batch (an index out of range, ...): undo the replay and run the batch eagerly,
            # which raises the error in the words of the layer that checks it.
            entry.plan.restore(snap)
            out = region(*batch)
            # The eager step did not fail: eager code recovered from what stopped the plan (a fallback the plan
            # could not follow). Give the signature up, and say so once.
            entry.plan = None
            warnings.warn(f"fastnn: the compiled {kind} step of model \"{self.model.name}\" stopped with "
                          f"{type(exc).__name__}: {exc}; the batch ran eagerly and this input signature stays eager.",
                          RuntimeWarning, stacklevel=4)
            return out
        return self._unpack(entry, flat)

    def _record(self, kind, key, batch, leaves, tree, region):
        result = {}

        def flat_region(*lv):
            out = region(*(lv if isinstance(tree, int) else _unflatten(tree, lv)))
            result["out"] = out
            flat, result["pred_tree"], result["n_pred"] = _flat_outputs(out)
            return flat

        variables = self._variables()
        try:
            _, plan = trace.record(flat_region, leaves, variables)
        except trace.RecordingBusy:
            return region(*batch)  # another thread is recording: this batch runs eagerly, a later one records
        except trace.Untraceable as exc:
            self._give_up(kind, exc)
            return result["out"]
        out = result["out"]
        if len(self._variables()) != len(variables):
            # The step created variables (a model built by its first call, a lazily built sublayer): their initial
            # values came from recorded calls, so this recording is not a step to replay. The next batch records.
            return out
        layout = [len(item) if isinstance(item, list) else None for item in out[1:]]
        self.entries[key] = _Entry(plan, result["pred_tree"], result["n_pred"], layout)
        return out

    def _give_up(self, kind, exc):
        self.eager_kinds[kind] = str(exc)
        warnings.warn(f"fastnn: the compiled {kind} step of model \"{self.model.name}\" cannot be traced: {exc.where} "
                      f"{exc.reason}. That step runs eagerly (same results, more Python per batch); compile with "
                      "jit_compile=False to silence this warning.", UserWarning, stacklevel=5)

    def _unpack(self, entry, flat):
        if entry.pred_tree is None and not entry.layout:  # predict of a one-output model
            return (Tensor._wrap(flat[0]),)
        out = [_unflatten(entry.pred_tree, [_wrap(b) for b in flat[:entry.n_pred]])]
        i = entry.n_pred
        for n in entry.layout:
            if n is None:
                out.append(_wrap(flat[i]))
                i += 1
            else:
                out.append([_wrap(b) for b in flat[i:i + n]])
                i += n
        return tuple(out)

    def _verify(self, entry, batch, leaves, region):
        """FASTNN_JIT_VERIFY: the replay and the eager step from the same state must agree bit for bit."""
        from fastnn.models.training_state import random_state, set_random_state

        model = self.model
        variables = self._variables()
        saved = [(v, B.copy(v._data)) for v in variables]
        streams = random_state(model)
        try:
            flat = entry.plan(*leaves)
        except trace.GuardFailed:
            flat = None
        replayed = None if flat is None else [None if b is None else B.copy(b) for b in flat]
        after_plan = [B.copy(v._data) for v in variables]
        for v, buf in saved:
            v._data = B.copy(buf)
        set_random_state(model, streams)
        out = region(*batch)
        if replayed is not None:
            eager = _flat_outputs(out)[0]
            assert len(eager) == len(replayed), "FASTNN_JIT_VERIFY: a different number of outputs"
            for k, (a, b) in enumerate(zip(eager, replayed)):
                assert (a is None) == (b is None), f"FASTNN_JIT_VERIFY: output {k} is None in one run only"
                if a is not None:
                    assert a.shape == b.shape and a.dtype == b.dtype and B.array_equal(a, b, equal_nan=True), \
                        f"FASTNN_JIT_VERIFY: output {k} of the replayed plan differs from eager execution"
            for v, buf in zip(variables, after_plan):
                assert B.array_equal(v._data, buf, equal_nan=True), \
                    f"FASTNN_JIT_VERIFY: variable {v.path!r} differs after the replayed plan"
        return out

    # -- the three steps ----------------------------------------------------------------------------------------
    def train(self, x, y, sw, variables):
        return self._run("train", (x, y, sw), lambda x, y, sw: self._train_region(x, y, sw, variables), variables)

    def test(self, x, y, sw):
        return self._run("test", (x, y, sw), self._test_region)

    def predict(self, x):
        out = self._run("predict", (x,), lambda x: (self._predict_region(x),))
        return out[0]
