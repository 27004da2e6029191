"""The random state a ``fit`` consumes, captured and restored so that a resumed run is bit-identical.

A training run draws random numbers from three places: fastnn's global generator (``fastnn.utils.rng()``: the
shuffling permutations and every Dropout without a seed), each layer's own generator (a Dropout / SpatialDropout /
recurrent cell with a ``seed``), and, with ``steps_per_epoch``, the batch iterator's pass over the data, which
carries over from one epoch to the next. Weights and optimizer state alone (Keras's backup) restart these
streams, so a resumed fit would shuffle and drop differently from the run that was never interrupted.

``FitPosition`` (``model._fit_position`` while ``fit`` runs) snapshots all three as plain JSON data:

- at the start of each epoch, before the epoch draws its batches (``epoch_begin``);
- when ``backup`` is called (BackupAndRestore): at the end of an epoch the state is the next epoch's start; in
  the middle of an epoch it is the epoch's start snapshot plus the state after the batches done so far.

``restore`` puts the model back there: the epoch's batches are drawn again from the epoch's start state (the same
permutation), then the generators jump to the state after the batches already trained, which ``fit`` skips.
Keras has no such state (its backups restart the interrupted epoch); fastnn stores it under the key "fastnn" of
Keras's training_metadata.json, which Keras ignores.
"""
from __future__ import annotations

from fastnn import backend as B
from fastnn import utils as _utils

FORMAT_VERSION = 1


def _layer_generators(model):
    """(key, generator) of every random generator held by the model's layers, in a stable walk order (depth first
    through ``_sublayers``, each layer once, its generators by attribute name). The key names the layer's position,
    class and attribute, so a backup restored into another architecture is refused."""
    found, seen = [], set()

    def walk(layer, path):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for attr in sorted(vars(layer)):
            value = vars(layer)[attr]
            if B.is_random_generator(value):
                found.append((f"{path}:{type(layer).__name__}.{attr}", value))
        for i, sub in enumerate(layer._sublayers()):
            walk(sub, f"{path}/{i}")

    walk(model, "0")
    return found


def random_state(model) -> dict:
    """The global generator's state and every layer generator's state (plain data)."""
    return {"global": B.random_generator_state(_utils.rng()),
            "layers": {key: B.random_generator_state(g) for key, g in _layer_generators(model)}}


def _check_random_state(model, state):
    gens = dict(_layer_generators(model))
    saved = state.get("layers") if isinstance(state, dict) else None
    if not isinstance(saved, dict) or "global" not in state:
        raise ValueError(f"not a random state snapshot: {str(state)[:200]}")
    if set(gens) != set(saved):
        raise ValueError(f"the backup has the layer generators {sorted(saved)}, the model has {sorted(gens)} (was the "
                         "backup made by another model?)")
    return gens, saved


def set_random_state(model, state) -> None:
    """Restores :func:`random_state`'s snapshot; raises ValueError (before changing anything) when the model's
    generators differ from those the snapshot was taken from (another architecture, a seed added or removed)."""
    gens, saved = _check_random_state(model, state)
    B.set_random_generator_state(_utils.rng(), state["global"])
    for key, g in gens.items():
        B.set_random_generator_state(g, saved[key])


class FitPosition:
    """Where a ``fit`` is in its random streams (see the module docstring); ``fit`` creates one per call as
    ``model._fit_position``."""

    def __init__(self, model, batches):
        self.model = model
        self.batches = batches  # the fit's _BatchIterator
        self.epoch = None  # the epoch in progress (None between epochs)
        self.steps_done = 0  # batches of that epoch trained so far
        self._epoch_start = None  # snapshot before the epoch drew its batches
        self._resume = None  # (epoch, steps to skip, random state after them) set by restore

    def _snapshot(self):
        return {"random": random_state(self.model), "iterator": self.batches.get_state()}

    def _apply(self, snapshot):
        self.batches.set_state(snapshot["iterator"])
        set_random_state(self.model, snapshot["random"])

    # -- called by fit ------------------------------------------------------------------------------------------
    def epoch_begin(self, epoch):
        self.epoch = epoch
        self.steps_done = 0
        self._epoch_start = self._snapshot()

    def steps_to_skip(self, epoch):
        """After the epoch drew its batches: the number of them a mid-epoch restore already trained (0 otherwise);
        the generators then continue from the state after those batches."""
        if self._resume is None or self._resume[0] != epoch:
            self._resume = None
            return 0
        _, skip, after = self._resume
        self._resume = None
        set_random_state(self.model, after)
        self.steps_done = skip
        return skip

    def epoch_end(self):
        self.epoch = None

    # -- called by BackupAndRestore -----------------------------------------------------------------------------
    def backup(self, at_epoch_end) -> dict:
        """The JSON-serializable state to resume from here: at an epoch end (``at_epoch_end``, or between
        epochs) the next epoch starts from the current state; in the middle of an epoch, from the epoch's start
        snapshot with ``steps_done`` batches skipped."""
        out = {"format": FORMAT_VERSION, **self._fit_facts()}
        if at_epoch_end or self.epoch is None or self.steps_done == 0:
            out.update(steps_done=0, epoch_start=self._snapshot(), after_steps=None)
        else:
            out.update(steps_done=self.steps_done, epoch_start=self._epoch_start, after_steps=random_state(self.model))
        return out

    def _fit_facts(self):
        b = self.batches
        return {"num_samples": b.n, "batch_size": b.batch_size, "shuffle": bool(b.shuffle),
                "steps_per_epoch": b.steps_per_epoch}

    def restore(self, state, epoch) -> None:
        """Puts the random streams back to ``state`` (from :meth:`backup`) for a fit resuming at ``epoch``. Raises
        ValueError, having changed nothing, when the state does not belong to this model and fit (another
        format, architecture, amount of data, batch size, shuffle or steps_per_epoch)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown fastnn training state (format "
                             f"{state.get('format') if isinstance(state, dict) else state!r}; expected "
                             f"{FORMAT_VERSION})")
        facts = self._fit_facts()
        saved = {k: state.get(k) for k in facts}
        if saved != facts:
            raise ValueError(f"the backup was made by a fit with {saved}, this fit has {facts}")
        try:
            skip = int(state["steps_done"])
            _check_random_state(self.model, state["epoch_start"]["random"])
            if skip:
                _check_random_state(self.model, state["after_steps"])
            iterator = state["epoch_start"]["iterator"]
            int(iterator["pos"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete fastnn training state ({exc!r})") from exc
        self._apply(state["epoch_start"])
        self._resume = (epoch, skip, state["after_steps"]) if skip else None
