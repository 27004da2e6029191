"""The compiled step against eager execution, for tests: the same model fitted, evaluated and run with
``jit_compile=False`` and ``True`` from the same seed must give the same bits (history, evaluation, predictions,
weights), and every kind of step must have run from a plan."""
from __future__ import annotations

import numpy as np

import fastnn


def assert_same(a, b, what):
    """Bit-equal nested dicts / lists / arrays."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            assert_same(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, f"{what}[{i}]")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


def fit_evaluate_predict(build, x, y, compile_kwargs, fit_kwargs, jit, epochs=2, seed=1):
    """(model, results) of ``build()`` compiled with ``jit_compile=jit``, fitted, evaluated and run on (x, y)."""
    fastnn.utils.set_random_seed(seed)
    model = build()
    model.compile(jit_compile=jit, **compile_kwargs)
    history = model.fit(x, y, epochs=epochs, verbose=0, **fit_kwargs)
    bs = fit_kwargs.get("batch_size", 32)
    ev = model.evaluate(x, y, batch_size=bs, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=bs, verbose=0)
    return model, {"history": history.history, "evaluate": ev, "predict": pred, "weights": model.get_weights()}


def assert_compiled_equals_eager(build, x, y, compile_kwargs, fit_kwargs=None, epochs=2,
                                 kinds=("train", "test", "predict")):
    """The compiled model's results equal the eager one's bit for bit, and each of ``kinds`` ran from a plan (no
    layer fell back to eager execution). Returns the compiled model."""
    fit_kwargs = dict(fit_kwargs or {})
    fit_kwargs.setdefault("batch_size", 8)
    _, eager = fit_evaluate_predict(build, x, y, compile_kwargs, fit_kwargs, False, epochs)
    model, comp = fit_evaluate_predict(build, x, y, compile_kwargs, fit_kwargs, True, epochs)
    assert_same(eager, comp, "compiled vs eager")
    steps = model._compiled_steps
    assert not steps.eager_kinds, steps.eager_kinds
    assert {key[0] for key, entry in steps.entries.items() if entry.plan is not None} == set(kinds)
    return model
