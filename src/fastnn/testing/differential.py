"""Differential testing of fastnn against Keras 3: one generator, one model in both libraries, every difference.

``make_case(seed)`` draws a small random model and training setup from ``random.Random(seed)`` as plain data
(a ``Case``): the architecture (Sequential, functional with branches of different depths, multi-input,
multi-output), the layers fastnn has (Dense with activations / initializers / regularizers, Activation, Dropout,
Flatten, Reshape, Permute, RepeatVector, Identity, Lambda, the merge layers), the optimizer (every optimizer, with
momentum / nesterov / amsgrad / centered / clipping / weight decay / learning-rate schedules), the losses and
metrics per output (string ids and objects, loss_weights, weighted_metrics), and fit's sample_weight,
class_weight, validation_split and batch size (often with a partial last batch). The pools also hold the names
Keras 3.15 has and fastnn does not yet: a case that draws one reports "missing in fastnn", so the test turns green
by itself when the name is added with Keras's behaviour.

``build(lib, case)`` turns the same description into a model of ``lib`` -- ``keras`` or ``fastnn`` -- by the same
code (``import fastnn as keras``-compatible), so both sides are built from one source of truth.

``run_case(case, keras, fastnn)`` builds both, copies Keras's initial weights into fastnn layer by layer **by
name** (every layer has an explicit name, so a layer-order difference is reported as such instead of silently
loading weights into the wrong layers), then compares and returns every difference found as ``Difference``
records (category + detail), instead of stopping at the first: layer names and order, predictions, fit histories
(every key, every epoch), evaluate results (list and dict), final weights, ``get_config()`` of the model and of
the optimizer (key sets and values), the summary's parameter totals, and a smoke fit of fastnn's own
initialization (e.g. an Orthogonal kernel that is not C-contiguous).

Tolerances (float32 on both sides, different summation orders; see ``TOLERANCES``):
  * before training (predictions): each output is a chain of <= 5 layers of float32 dot products over <= 48
    terms plus elementwise functions. Rounding differs between the two libraries' summation orders by about
    K * eps = 48 * 1.2e-7 ~ 6e-6 relative per layer in the worst case, ~3e-5 over five layers; ``rtol=1e-4``
    leaves a 3x margin, and ``atol=1e-5`` x the largest magnitude of the reference array covers elements that
    cancel to nearly 0.
  * after training (histories, evaluate, final weights): the forward difference above enters every gradient and
    every update; over the <= 24 steps a case takes, with adaptive optimizers dividing by sqrt(v) + eps, it grows
    by up to about an order of magnitude, so ``rtol=1e-3`` and ``atol=1e-4`` x scale. A formula difference
    (a wrong default, a missing bias correction, a different reduction) moves these numbers by 1e-2 or more.
  * discrete metrics (accuracy, precision at a threshold...) use the same tolerance; a prediction within 1e-6 of
    a decision threshold could flip one, and the random data makes that unlikely at the sizes used.
"""
from __future__ import annotations

import io
import math
import random
import re
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import numpy as np

TOLERANCES = {
    "initial": {"rtol": 1e-4, "atol_scale": 1e-5},
    "trained": {"rtol": 1e-3, "atol_scale": 1e-4},
}


# ----------------------------------------------------------------------------------------------------------------
# Plain-data description of a case (what the test id and a repro print)
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Obj:
    """``lib.<path>(*args, **kwargs)``: an object both libraries construct (e.g. ``regularizers.L2``)."""
    path: str
    kwargs: tuple = ()
    args: tuple = ()

    def __repr__(self):
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.path}({', '.join(parts)})"


def obj(path, *args, **kwargs):
    return Obj(path, tuple(sorted(kwargs.items())), tuple(args))


@dataclass
class Node:
    name: str
    layer: Obj           # e.g. obj("layers.Dense", 4, activation="relu", name=...)
    inputs: list         # names of nodes / inputs


@dataclass
class Head:
    name: str            # the output layer's name
    kind: str            # regression | positive | binary | categorical | sparse
    units: int
    loss: object         # str or Obj
    metrics: list
    weighted_metrics: list


@dataclass
class Case:
    seed: int
    arch: str
    inputs: list                     # [(name, shape)]
    nodes: list                      # [Node] in build order
    heads: list                      # [Head]
    optimizer: Obj
    loss_form: str                   # single | list | dict
    loss_weights: object
    n_samples: int
    batch_size: int
    epochs: int
    validation_split: float
    use_sample_weight: bool
    class_weight: object
    train: bool                      # False: dropout rate > 0, inference-only comparisons
    features: list = field(default_factory=list)

    @property
    def case_id(self):
        return f"seed_{self.seed}-" + "-".join(dict.fromkeys(self.features))  # each feature once, in order

    def describe(self):
        lines = [f"case {self.case_id}", f"  arch={self.arch} inputs={self.inputs}"]
        lines += [f"  {n.name} = {n.layer!r}({', '.join(n.inputs)})" for n in self.nodes]
        for h in self.heads:
            lines.append(f"  head {h.name}: kind={h.kind} units={h.units} loss={h.loss!r} metrics={h.metrics!r} "
                         f"weighted_metrics={h.weighted_metrics!r}")
        lines.append(f"  optimizer={self.optimizer!r} loss_form={self.loss_form} loss_weights={self.loss_weights!r}")
        lines.append(f"  n={self.n_samples} batch_size={self.batch_size} epochs={self.epochs} "
                     f"validation_split={self.validation_split} sample_weight={self.use_sample_weight} "
                     f"class_weight={self.class_weight!r} train={self.train}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Pools. NEW_IN_KERAS: names Keras 3.15 has and fastnn does not yet (issue 9 lists them). Only a share of the seeds
# (those whose test id ends in "new_names") may draw them, so that the other seeds still reach fit / evaluate
# with what fastnn has.
# ----------------------------------------------------------------------------------------------------------------

NEW_IN_KERAS = {
    "optimizers.Lion", "optimizers.Lamb", "optimizers.Adafactor", "optimizers.Ftrl",
    "optimizers.schedules.InverseTimeDecay", "optimizers.schedules.PolynomialDecay",
    "optimizers.schedules.CosineDecayRestarts",
    "losses.BinaryFocalCrossentropy", "losses.CategoricalFocalCrossentropy", "losses.CategoricalHinge",
    "categorical_hinge", "losses.Dice", "losses.Tversky", "losses.CategoricalGeneralizedCrossEntropy",
    "metrics.R2Score", "metrics.PearsonCorrelation", "metrics.ConcordanceCorrelation", "metrics.TruePositives",
    "metrics.FalseNegatives", "metrics.F1Score", "metrics.PrecisionAtRecall", "metrics.BinaryIoU",
    "metrics.CategoricalHinge", "metrics.OneHotMeanIoU", "metrics.MeanIoU", "cosine_similarity",
}


def _name_of(entry):
    return entry if isinstance(entry, str) else entry.path


def _pick(rng, pool, new_names):
    """rng.choice over the pool, without the names fastnn lacks unless this seed tests them."""
    allowed = [e for e in pool if new_names or _name_of(e) not in NEW_IN_KERAS]
    return rng.choice(allowed)


class _Decks:
    """Deterministic rotation through a pool: seed s starts pool p at offset 5*s and steps by one per draw, so a
    few dozen seeds reach every entry of every pool (a random choice would leave some out by chance), and each
    case still depends on its own seed only."""

    def __init__(self, seed):
        self.seed = seed
        self.draws = {}

    def draw(self, key, pool, stride=1):
        i = self.draws.get(key, 0)
        self.draws[key] = i + 1
        if key.startswith(("loss_", "metric_")):
            return pool[(stride * self.seed_for_pools + i) % len(pool)]
        return pool[(5 * self.seed + i) % len(pool)]


def _deal(rng, key, pool, new_names):
    allowed = [e for e in pool if new_names or _name_of(e) not in NEW_IN_KERAS]
    return rng.decks.draw(key, allowed)


ACTIVATIONS = ["relu", "linear", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "swish", "leaky_relu", "relu6",
               "softplus", "softsign", "hard_sigmoid", "softmax", "log_softmax"]
ACTIVATIONS_KERAS_ONLY = ["celu", "hard_shrink", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid", "mish",
                          "soft_shrink", "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink", "glu"]
# Not drawn: sparsemax. Keras 3.15.1 computes it wrongly whenever more than one entry is in the support
# (keras-team/keras#23425: [0, 0.5, 1] gives [0, 0, 0.25]); fastnn follows the paper and is checked against it in
# tests/autograd (op table) and against a fixed Keras where Keras is right (tests/e2e/test_keras_autograd.py).

KERNEL_INITIALIZERS = ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                       "lecun_uniform", "orthogonal", "random_normal", "random_uniform", "truncated_normal"]


def _initializer_obj(rng):
    return rng.choice([
        obj("initializers.GlorotUniform", seed=rng.randrange(100)),
        obj("initializers.HeNormal", seed=rng.randrange(100)),
        obj("initializers.Orthogonal", gain=rng.choice([1.0, 0.5]), seed=rng.randrange(100)),
        obj("initializers.RandomNormal", mean=0.0, stddev=rng.choice([0.05, 0.3])),
        obj("initializers.VarianceScaling", scale=rng.choice([1.0, 2.0]), mode=rng.choice(["fan_in", "fan_avg"]),
            distribution=rng.choice(["truncated_normal", "uniform"])),
    ])


def _regularizer(rng):
    return rng.choice([None, None, "l2", "l1", obj("regularizers.L2", 0.01), obj("regularizers.L1", 0.002),
                       obj("regularizers.L1L2", l1=0.001, l2=0.01)])


def _schedule(rng, new_names):
    lr = rng.choice([0.01, 0.02])
    return _pick(rng, [
        obj("optimizers.schedules.ExponentialDecay", lr, decay_steps=3, decay_rate=0.7,
            staircase=rng.random() < 0.5),
        obj("optimizers.schedules.PiecewiseConstantDecay", [2, 5], [lr, lr / 2, lr / 5]),
        obj("optimizers.schedules.CosineDecay", lr, decay_steps=10, alpha=0.1),
        obj("optimizers.schedules.CosineDecay", lr / 10, decay_steps=10, warmup_target=lr, warmup_steps=3),
        # keras-only today:
        obj("optimizers.schedules.InverseTimeDecay", lr, decay_steps=2, decay_rate=0.5),
        obj("optimizers.schedules.PolynomialDecay", lr, decay_steps=8, end_learning_rate=lr / 10, power=2.0),
        obj("optimizers.schedules.CosineDecayRestarts", lr, first_decay_steps=3, t_mul=2.0, m_mul=0.8),
    ], new_names)


def _optimizer(rng, new_names):
    lr = _schedule(rng, new_names) if rng.random() < 0.3 else None
    clip = rng.choice([{}, {}, {}, {"clipvalue": 0.05}, {"clipnorm": 0.2}, {"global_clipnorm": 0.3}])
    wd = {"weight_decay": 0.01} if rng.random() < 0.15 else {}
    kinds = ["SGD", "SGD", "Adam", "Adam", "AdamW", "Adagrad", "RMSprop", "RMSprop", "Adadelta", "Adamax", "Nadam"]
    if new_names:
        kinds += ["Lion", "Lamb", "Adafactor", "Ftrl"] * 2
    kind = rng.choice(kinds)
    kw = dict(clip, **wd)
    if kind == "SGD":
        kw.update(learning_rate=lr or 0.05, momentum=rng.choice([0.0, 0.9]), nesterov=rng.random() < 0.5)
    elif kind == "Adam":
        kw.update(learning_rate=lr or 0.01, amsgrad=rng.random() < 0.5, beta_2=rng.choice([0.999, 0.99]))
    elif kind == "AdamW":
        kw.update(learning_rate=lr or 0.01, weight_decay=rng.choice([0.004, 0.05]))
    elif kind == "Adagrad":
        kw.update(learning_rate=lr or 0.05, initial_accumulator_value=rng.choice([0.1, 0.01]))
    elif kind == "RMSprop":
        kw.update(learning_rate=lr or 0.005, momentum=rng.choice([0.0, 0.5]), centered=rng.random() < 0.5,
                  rho=rng.choice([0.9, 0.8]))
    elif kind == "Adadelta":
        kw.update(learning_rate=lr or 1.0, rho=0.9)
    elif kind in ("Adamax", "Nadam"):
        kw.update(learning_rate=lr or 0.01)
    elif kind == "Lion":
        kw.update(learning_rate=lr or 0.001)
    elif kind == "Lamb":
        kw.update(learning_rate=lr or 0.01)
    elif kind == "Adafactor":
        kw.update(learning_rate=lr or 0.05)
    elif kind == "Ftrl":
        kw.update(learning_rate=lr or 0.05, l1_regularization_strength=0.001)
    return obj(f"optimizers.{kind}", **kw)


# Losses per output kind: a string id or an object; keras-only entries are there on purpose.
LOSSES = {
    "regression": ["mse", "mae", "mean_squared_error", "huber", "log_cosh", obj("losses.Huber", delta=0.5),
                   obj("losses.MeanSquaredError"), obj("losses.MeanAbsoluteError", reduction="sum"),
                   obj("losses.LogCosh"), obj("losses.CosineSimilarity", axis=-1),
                   obj("losses.MeanSquaredError", reduction="mean")],
    "positive": ["mape", "msle", "poisson", obj("losses.Poisson"), obj("losses.MeanSquaredLogarithmicError"),
                 obj("losses.MeanAbsolutePercentageError", reduction="sum_over_batch_size")],
    "binary": ["binary_crossentropy", obj("losses.BinaryCrossentropy", label_smoothing=0.1),
               obj("losses.BinaryCrossentropy", from_logits=True), "hinge", "squared_hinge",
               obj("losses.Hinge"),
               obj("losses.BinaryFocalCrossentropy", gamma=2.0),
               obj("losses.BinaryFocalCrossentropy", apply_class_balancing=True, alpha=0.3),
               obj("losses.Dice"), obj("losses.Tversky", alpha=0.3, beta=0.7)],
    "categorical": ["categorical_crossentropy", obj("losses.CategoricalCrossentropy", label_smoothing=0.2),
                    obj("losses.CategoricalCrossentropy", from_logits=True), "kl_divergence",
                    obj("losses.KLDivergence"), obj("losses.CategoricalFocalCrossentropy"),
                    obj("losses.CategoricalHinge"), "categorical_hinge"],
    "sparse": ["sparse_categorical_crossentropy", obj("losses.SparseCategoricalCrossentropy", from_logits=True),
               obj("losses.SparseCategoricalCrossentropy", ignore_class=0),
               obj("losses.SparseCategoricalCrossentropy", reduction="sum"),
               obj("losses.CategoricalGeneralizedCrossEntropy", q=0.5)],
}

METRICS = {
    "regression": ["mae", "mse", "mean_squared_error", "root_mean_squared_error", "MSE", "cosine_similarity",
                   obj("metrics.MeanAbsoluteError"), obj("metrics.RootMeanSquaredError"),
                   obj("metrics.CosineSimilarity"), obj("metrics.LogCoshError"),
                   obj("metrics.R2Score"), obj("metrics.PearsonCorrelation"),
                   obj("metrics.ConcordanceCorrelation")],
    "positive": ["mae", "mape", "msle", "poisson", obj("metrics.Poisson"),
                 obj("metrics.MeanSquaredLogarithmicError"), obj("metrics.MeanAbsolutePercentageError")],
    "binary": ["accuracy", "binary_accuracy", "binary_crossentropy", obj("metrics.BinaryAccuracy", threshold=0.6),
               obj("metrics.Precision"), obj("metrics.Recall"), obj("metrics.Recall", thresholds=0.7),
               obj("metrics.AUC"), obj("metrics.AUC", curve="PR"), obj("metrics.AUC", num_thresholds=50),
               "hinge", "squared_hinge", obj("metrics.Hinge"),
               obj("metrics.TruePositives"), obj("metrics.FalseNegatives"), obj("metrics.F1Score", threshold=0.5),
               obj("metrics.PrecisionAtRecall", 0.5), obj("metrics.BinaryIoU")],
    "categorical": ["accuracy", "categorical_accuracy", "categorical_crossentropy", "kl_divergence",
                    "top_k_categorical_accuracy", obj("metrics.TopKCategoricalAccuracy", k=2),
                    obj("metrics.CategoricalAccuracy"), obj("metrics.CategoricalCrossentropy", label_smoothing=0.1),
                    obj("metrics.AUC"), obj("metrics.KLDivergence"), obj("metrics.CategoricalHinge"),
                    obj("metrics.F1Score", average="macro"), obj("metrics.OneHotMeanIoU", num_classes=3)],
    "sparse": ["accuracy", "sparse_categorical_accuracy", "sparse_categorical_crossentropy",
               "sparse_top_k_categorical_accuracy", obj("metrics.SparseTopKCategoricalAccuracy", k=2),
               obj("metrics.SparseCategoricalAccuracy"),
               obj("metrics.SparseCategoricalCrossentropy", from_logits=False),
               obj("metrics.MeanIoU", num_classes=3, sparse_y_pred=False)],
}

# Output activation per kind (a from_logits loss gets a linear output)
HEAD_ACTIVATION = {"regression": ["linear", "tanh"], "positive": ["softplus", "exponential"],
                   "binary": ["sigmoid"], "categorical": ["softmax"], "sparse": ["softmax"]}

LAMBDA_FUNCTIONS = ("scale_shift", "square_mix", "negate")


def _lambda_function(name):
    # Only operators both libraries' tensors support, so the same function runs in both.
    if name == "scale_shift":
        return lambda t: t * 0.5 + 0.25
    if name == "square_mix":
        return lambda t: t - t * t * 0.1
    return lambda t: -t


def _is_from_logits(loss):
    return isinstance(loss, Obj) and dict(loss.kwargs).get("from_logits") is True


# ----------------------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------------------

class _Namer:
    def __init__(self):
        self.count = {}

    def __call__(self, kind):
        i = self.count.get(kind, 0)
        self.count[kind] = i + 1
        return f"{kind}_n{i}"


def _dense(rng, name, units, features, activation=None, new_names=False, keep_width=False):
    """A Dense layer and its output width. keep_width: the width must be `units` (a merge input), so no glu."""
    pool = ACTIVATIONS_KERAS_ONLY if new_names and rng.random() < 0.3 else ACTIVATIONS
    act = activation if activation is not None else rng.decks.draw(
        "activation" if pool is ACTIVATIONS else "new_activation", [a for a in pool if not (keep_width and a == "glu")])
    if act == "glu" and units % 2:
        units += 1  # glu halves the last axis
    kw = {"activation": act, "name": name}
    r = rng.random()
    if r < 0.25:
        kw["kernel_initializer"] = rng.choice(KERNEL_INITIALIZERS)
    elif r < 0.4:
        kw["kernel_initializer"] = _initializer_obj(rng)
    if rng.random() < 0.2:
        kw["bias_initializer"] = rng.choice(["zeros", "ones", obj("initializers.Constant", 0.1)])
    if rng.random() < 0.15:
        kw["use_bias"] = False
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        if rng.random() < 0.2:
            reg = _regularizer(rng)
            if reg is not None:
                kw[key] = reg
                features.append("reg")
    features.append(f"dense_{act}")
    return obj("layers.Dense", units, **kw), (units if act != "glu" else units // 2)


def _trunk(rng, namer, nodes, start, width, features, depth, dropout_rate, new_names):
    """A chain of layers from node `start` with last-axis width `width` (rank 2); returns (name, width)."""
    cur = start
    for step in range(depth):
        r = rng.random()
        if step == 0 and rng.decks.seed % 8 == 3 and not any(n.layer.path == "layers.Dense" for n in nodes):
            # an Orthogonal kernel wider than its input (QR of the transpose: a Fortran-ordered array unless the
            # library makes it C-contiguous); only fastnn's own-init fit below uses fastnn's initialization
            layer, width = _dense(rng, namer("dense"), width + 2, features, new_names=new_names)
            layer = obj("layers.Dense", width, **dict(dict(layer.kwargs), kernel_initializer="orthogonal"))
            features.append("orthogonal_wide")
        elif r < 0.55:
            layer, width = _dense(rng, namer("dense"), rng.choice([3, 4, 6, 8]), features, new_names=new_names)
        elif r < 0.63:
            layer = obj("layers.Activation", rng.choice(ACTIVATIONS[:14]), name=namer("activation"))
            features.append("activation")
        elif r < 0.71:
            layer = obj("layers.Dropout", dropout_rate, name=namer("dropout"))
            features.append("dropout")
        elif r < 0.76:
            layer = obj("layers.Identity", name=namer("identity"))
            features.append("identity")
        elif r < 0.83:
            layer = obj("layers.Lambda", rng.choice(LAMBDA_FUNCTIONS), name=namer("lambda"))
            features.append("lambda")
        else:
            # rank-3 excursion: Dense(a*b) -> Reshape((a, b)) -> [Permute] -> Flatten, or RepeatVector -> Flatten
            if rng.random() < 0.5:
                a, b = rng.choice([(2, 3), (3, 2), (2, 2)])
                pre, _ = _dense(rng, namer("dense"), a * b, features, activation="tanh")
                nodes.append(Node(dict(pre.kwargs)["name"], pre, [cur]))
                cur = nodes[-1].name
                name = namer("reshape")
                nodes.append(Node(name, obj("layers.Reshape", (a, b), name=name), [cur]))
                cur = name
                features.append("reshape")
                if rng.random() < 0.6:
                    name = namer("permute")
                    nodes.append(Node(name, obj("layers.Permute", (2, 1), name=name), [cur]))
                    cur = name
                    features.append("permute")
                width = a * b
            else:
                n = rng.choice([2, 3])
                name = namer("repeat_vector")
                nodes.append(Node(name, obj("layers.RepeatVector", n, name=name), [cur]))
                cur = name
                features.append("repeat_vector")
                width = width * n
            layer = obj("layers.Flatten", name=namer("flatten"))
            features.append("flatten")
        nodes.append(Node(dict(layer.kwargs)["name"], layer, [cur]))
        cur = nodes[-1].name
    return cur, width


KINDS = ("regression", "binary", "sparse", "positive", "categorical")


def _head(rng, namer, nodes, name, src, features, new_names, index):
    # kind rotates with the seed, and the loss / metrics of a kind rotate with seed // 5: the seeds that share a
    # kind walk its pools entry by entry, so the seed list reaches every loss and metric
    kind = KINDS[(rng.decks.seed + 2 * index) % len(KINDS)]
    rng.decks.seed_for_pools = rng.decks.seed // len(KINDS) + index
    loss = _deal(rng, f"loss_{kind}", LOSSES[kind], new_names)
    units = {"regression": rng.choice([1, 2, 3]), "positive": rng.choice([1, 2]), "binary": rng.choice([1, 1, 3]),
             "categorical": 3, "sparse": 3}[kind]
    act = "linear" if _is_from_logits(loss) else rng.choice(HEAD_ACTIVATION[kind])
    if _is_from_logits(loss):
        # metrics expect probabilities; on logits keep a shape-agnostic one where the shapes allow it
        metric_pool = ["mse"] if kind == "binary" else []
    else:
        metric_pool = [m for m in METRICS[kind] if new_names or _name_of(m) not in NEW_IN_KERAS]
    n_metrics = rng.choice([0, 1, 2, 2, 3]) if metric_pool else 0
    metrics = [rng.decks.draw(f"metric_{kind}", metric_pool, stride=3) for _ in range(n_metrics)]
    if kind in ("binary",) and rng.random() < 0.3:
        metrics += [obj("metrics.Recall"), obj("metrics.Recall", thresholds=0.7)]  # same name twice: recall_1
        features.append("dup_recall")
    if kind in ("binary", "categorical") and rng.random() < 0.2 and not _is_from_logits(loss):
        metrics += [obj("metrics.AUC"), obj("metrics.AUC", curve="PR")]  # auc, auc_1
        features.append("dup_auc")
    weighted = []
    if rng.random() < 0.3 and metric_pool:
        weighted = [rng.choice(metric_pool)]
        if metrics and rng.random() < 0.5:
            weighted = [metrics[0]]  # the same metric in metrics and weighted_metrics
            features.append("same_weighted_metric")
        features.append("weighted_metrics")
    nodes.append(Node(name, obj("layers.Dense", units, activation=act, name=name), [src]))
    features.append(f"{kind}:{_label(loss)}")
    return Head(name, kind, units, loss, metrics, weighted)


def _label(x):
    return x if isinstance(x, str) else x.path.split(".")[-1]


def make_case(seed: int) -> Case:
    """The case of `seed`: same seed, same description, on every machine."""
    rng = random.Random(seed)
    rng.decks = _Decks(seed)
    namer = _Namer()
    features = []
    train = rng.random() > 0.1
    new_names = rng.random() < 0.3  # this seed may draw names fastnn lacks today
    dropout_rate = 0.0 if train else 0.5
    arch = rng.choice(["sequential", "sequential", "branches", "branches", "multi_input", "multi_output",
                       "multi_output"])
    features.append(arch)
    nodes, heads = [], []
    d = rng.choice([4, 5, 8])
    inputs = [("in_0", (d,))]
    if arch == "sequential":
        top, _ = _trunk(rng, namer, nodes, "in_0", d, features, rng.choice([1, 2, 3]), dropout_rate, new_names)
        heads.append(_head(rng, namer, nodes, "out_0", top, features, new_names, 0))
    elif arch in ("branches", "multi_input"):
        if arch == "multi_input":
            inputs.append(("in_1", (rng.choice([3, 6]),)))
        # branch a shallower than branch b: Keras orders layers by depth, not by the order they were called
        units = rng.choice([3, 4])
        a_layer, _ = _dense(rng, namer("dense"), units, features, new_names=new_names, keep_width=True)
        nodes.append(Node(dict(a_layer.kwargs)["name"], a_layer, ["in_0"]))
        b_src = inputs[-1][0]
        b_top, _ = _trunk(rng, namer, nodes, b_src, inputs[-1][1][0], features, rng.choice([1, 2]), dropout_rate,
                          new_names)
        b_layer, _ = _dense(rng, namer("dense"), units, features, new_names=new_names, keep_width=True)
        nodes.append(Node(dict(b_layer.kwargs)["name"], b_layer, [b_top]))
        merge = rng.choice(["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"])
        mname = namer(merge.lower())
        kw = {"name": mname}
        if merge == "Concatenate":
            kw["axis"] = -1
        nodes.append(Node(mname, obj(f"layers.{merge}", **kw), [nodes[0].name, nodes[-1].name]))
        features.append(f"merge_{merge.lower()}")
        top, _ = _trunk(rng, namer, nodes, mname, units * (2 if merge == "Concatenate" else 1), features,
                        rng.choice([0, 1]), dropout_rate, new_names)
        heads.append(_head(rng, namer, nodes, "out_0", top, features, new_names, 0))
    else:  # multi_output: a shared trunk, two heads (one of them deeper)
        top, width = _trunk(rng, namer, nodes, "in_0", d, features, rng.choice([1, 2]), dropout_rate,
                            new_names)
        heads.append(_head(rng, namer, nodes, "out_0", top, features, new_names, 0))
        second, _ = _trunk(rng, namer, nodes, top, width, features, 1, dropout_rate, new_names)
        heads.append(_head(rng, namer, nodes, "out_1", second, features, new_names, 1))

    loss_form, loss_weights = "single", None
    if len(heads) > 1:
        loss_form = rng.choice(["list", "dict"])
        if rng.random() < 0.6:
            w = [rng.choice([1.0, 0.5, 2.0]), rng.choice([1.0, 0.3])]
            loss_weights = w if loss_form == "list" else {h.name: wi for h, wi in zip(heads, w)}
            features.append("loss_weights")
        features.append(f"loss_{loss_form}")
    optimizer = _optimizer(rng, new_names)
    features.append(optimizer.path.split(".")[-1] + ("+sched" if isinstance(dict(optimizer.kwargs).get(
        "learning_rate"), Obj) else ""))
    n = rng.choice([10, 16, 20, 24])
    batch_size = rng.choice([4, 6, 8, 32])
    if n % batch_size:
        features.append("partial_batch")
    validation_split = rng.choice([0.0, 0.0, 0.2, 0.25])
    if validation_split:
        features.append("validation_split")
    use_sample_weight = rng.random() < 0.3
    if use_sample_weight:
        features.append("sample_weight")

    class_weight = None
    if len(heads) == 1 and heads[0].kind in ("sparse",) or (len(heads) == 1 and heads[0].kind == "binary"
                                                              and heads[0].units == 1):
        if rng.random() < 0.7 and not use_sample_weight:
            classes = 3 if heads[0].kind == "sparse" else 2
            class_weight = {c: rng.choice([0.5, 2.0, 3.0]) for c in range(classes)}  # never all equal to 1
            # even seeds: one class left out (Keras weights it 1.0); odd seeds: every class, with a validation
            # split that Keras does not weight
            if seed % 2 == 0:
                class_weight.pop(rng.randrange(classes))  # Keras weights a missing class 1.0
                features.append("class_weight_partial")
            else:
                features.append("class_weight")
            if seed % 2 == 1:
                validation_split = 0.25  # Keras weights the training batches only, never the validation data
                if "validation_split" not in features:
                    features.append("validation_split")
    if not train:
        features.append("inference_only")
    if new_names:
        features.append("new_names")
    return Case(seed, arch, inputs, nodes, heads, optimizer, loss_form, loss_weights, n, batch_size,
                rng.choice([2, 3]), validation_split, use_sample_weight, class_weight, train, features)


# ----------------------------------------------------------------------------------------------------------------
# Building a case in a library
# ----------------------------------------------------------------------------------------------------------------

class MissingInLibrary(Exception):
    """The library lacks a name or rejects arguments the case uses."""


def _resolve(lib, value):
    if isinstance(value, Obj):
        target = lib
        for part in value.path.split("."):
            if not hasattr(target, part):
                raise MissingInLibrary(f"{lib.__name__}.{value.path} does not exist")
            target = getattr(target, part)
        args = [_resolve(lib, a) for a in value.args]
        kwargs = {k: _resolve(lib, v) for k, v in value.kwargs}
        if value.path == "layers.Lambda":
            args = [_lambda_function(args[0])]
        try:
            return target(*args, **kwargs)
        except (TypeError, ValueError, KeyError) as e:
            raise MissingInLibrary(f"{lib.__name__}.{value!r} raised {type(e).__name__}: {e}") from e
    if isinstance(value, list):
        return [_resolve(lib, v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(lib, v) for k, v in value.items()}
    return value


def keras_name_resolves(lib, path):
    """`lib.<path>` exists: a module attribute ("losses.Dice") or, for "activations.<name>", a string id get()
    accepts ("activations.celu")."""
    module, _, attr = path.rpartition(".")
    target = lib
    for part in module.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    if module in ("activations", "losses", "metrics") and not attr[0].isupper():
        try:
            return target.get(attr) is not None
        except (ValueError, KeyError, TypeError):
            return False
    return hasattr(target, attr)


def build(lib, case: Case):
    """The case's model in `lib` (keras or fastnn), uncompiled."""
    if case.arch == "sequential":
        layers = [lib.Input(shape=case.inputs[0][1], name=case.inputs[0][0])]
        layers += [_resolve(lib, n.layer) for n in case.nodes]
        return lib.Sequential(layers, name="diff_model")
    tensors = {name: lib.Input(shape=shape, name=name) for name, shape in case.inputs}
    for n in case.nodes:
        layer = _resolve(lib, n.layer)
        args = [tensors[i] for i in n.inputs]
        try:
            tensors[n.name] = layer(args if len(args) > 1 else args[0])
        except (TypeError, ValueError) as e:
            raise MissingInLibrary(f"{lib.__name__}: calling {n.layer!r} raised {type(e).__name__}: {e}") from e
    ins = [tensors[name] for name, _ in case.inputs]
    outs = [tensors[h.name] for h in case.heads]
    return lib.Model(inputs=ins if len(ins) > 1 else ins[0], outputs=outs if len(outs) > 1 else outs[0],
                     name="diff_model")


def compile_args(lib, case: Case):
    heads = case.heads
    losses = [_resolve(lib, h.loss) for h in heads]
    metrics = [_resolve(lib, h.metrics) for h in heads]
    weighted = [_resolve(lib, h.weighted_metrics) for h in heads]
    if case.loss_form == "single":
        kw = {"loss": losses[0], "metrics": metrics[0] or None, "weighted_metrics": weighted[0] or None}
    elif case.loss_form == "list":
        kw = {"loss": losses, "metrics": metrics, "weighted_metrics": weighted}
    else:
        names = [h.name for h in heads]
        kw = {"loss": dict(zip(names, losses)), "metrics": dict(zip(names, metrics)),
              "weighted_metrics": dict(zip(names, weighted))}
    if case.loss_weights is not None:
        kw["loss_weights"] = case.loss_weights
    kw["optimizer"] = _resolve(lib, case.optimizer)
    return kw


def make_data(case: Case):
    """x (list or array), y (list / dict / array), sample_weight; float32 features with two all-zero rows (so a
    zero-initialized bias meets every activation's kink at exactly 0)."""
    rng = np.random.default_rng(1000 + case.seed)
    n = case.n_samples
    xs = []
    for _, shape in case.inputs:
        x = rng.standard_normal((n,) + tuple(shape)).astype("float32")
        x[:2] = 0.0
        xs.append(x)
    ys = []
    for h in case.heads:
        if h.kind == "regression":
            y = rng.standard_normal((n, h.units)).astype("float32")
        elif h.kind == "positive":
            y = rng.uniform(0.1, 2.0, (n, h.units)).astype("float32")
        elif h.kind == "binary":
            y = rng.integers(0, 2, (n, h.units)).astype("float32")
        elif h.kind == "categorical":
            y = np.eye(h.units, dtype="float32")[rng.integers(0, h.units, n)]
        else:
            y = rng.integers(0, h.units, n).astype("int64")
        ys.append(y)
    sws = [rng.uniform(0.2, 2.0, n).astype("float32") for _ in ys] if case.use_sample_weight else None
    x_arg = xs if len(xs) > 1 else xs[0]
    sw_arg = sws
    if len(ys) == 1:
        y_arg = ys[0]
        sw_arg = sws[0] if sws else None
    elif case.loss_form == "dict" and not sws:
        y_arg = {h.name: y for h, y in zip(case.heads, ys)}
    elif case.loss_form == "dict":
        # Keras 3.15 fails on dict y + dict sample_weight (KeyError: 0 in compile_utils.resolve_path), so such a
        # case passes both as lists in output order, next to its dict-keyed losses and metrics
        y_arg = ys
    else:
        y_arg = ys
    return x_arg, y_arg, sw_arg


# ----------------------------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Difference:
    category: str
    detail: str

    def __str__(self):
        return f"[{self.category}] {self.detail}"


def _close(a, b, rtol, atol_scale):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs keras {b.shape}"
    if a.size == 0:
        return True, ""
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return False, f"finiteness differs: fastnn {a.ravel()[:6]} keras {b.ravel()[:6]}"
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    scale = max(float(np.max(np.abs(fb))) if fb.size else 0.0, 1.0)
    err = np.abs(fa - fb)
    bound = rtol * np.abs(fb) + atol_scale * scale
    if np.all(err <= bound):
        return True, ""
    i = int(np.argmax(err - bound))
    return False, (f"max excess at flat index {i}: fastnn {fa[i]:.7g} keras {fb[i]:.7g} (|diff| {err[i]:.3g} > "
                   f"{bound[i]:.3g})")


def _flat(x):
    if isinstance(x, dict):
        return {k: _flat(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_flat(v) for v in x]
    return np.asarray(x)


def _compare_values(diffs, category, where, fv, kv, tol):
    fv, kv = _flat(fv), _flat(kv)
    if isinstance(kv, dict) or isinstance(fv, dict):
        if not (isinstance(kv, dict) and isinstance(fv, dict)):
            diffs.append(Difference(category, f"{where}: fastnn returned {type(fv).__name__}, keras "
                                              f"{type(kv).__name__}"))
            return
        _compare_keys(diffs, category, where, fv, kv)
        for k in kv:
            if k in fv:
                _compare_values(diffs, category, f"{where}[{k!r}]", fv[k], kv[k], tol)
        return
    if isinstance(kv, list) or isinstance(fv, list):
        if not (isinstance(kv, list) and isinstance(fv, list)) or len(kv) != len(fv):
            diffs.append(Difference(category, f"{where}: fastnn {_short(fv)} keras {_short(kv)}"))
            return
        for i, (a, b) in enumerate(zip(fv, kv)):
            _compare_values(diffs, category, f"{where}[{i}]", a, b, tol)
        return
    ok, why = _close(fv, kv, **tol)
    if not ok:
        diffs.append(Difference(category, f"{where}: {why}"))


def _compare_keys(diffs, category, where, fd, kd):
    """Key sets first (a missing or extra log entry), then their order (Keras sorts its logs)."""
    fkeys, kkeys = list(fd), list(kd)
    missing = [k for k in kkeys if k not in fd]
    extra = [k for k in fkeys if k not in kd]
    if missing or extra:
        diffs.append(Difference(f"{category} keys", f"{where}: keys missing in fastnn {missing}, only in fastnn "
                                                    f"{extra}"))
    elif fkeys != kkeys:
        diffs.append(Difference(f"{category} key order", f"{where}: fastnn {fkeys} keras {kkeys}"))


def _short(v):
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, np.ndarray) and v.size == 1:
        return f"{float(v):.6g}"
    if isinstance(v, np.ndarray):
        return f"array{v.shape}"
    return repr(v)


def _config_diff(diffs, category, where, fc, kc):
    """Key-for-key, value-for-value comparison of two configs (nested dicts / lists)."""
    if isinstance(kc, dict) and isinstance(fc, dict):
        missing = [k for k in kc if k not in fc]
        extra = [k for k in fc if k not in kc]
        if missing:
            diffs.append(Difference(category, f"{where}: keys missing in fastnn {missing}"))
        if extra:
            diffs.append(Difference(category, f"{where}: keys only in fastnn {extra}"))
        for k in kc:
            if k in fc:
                _config_diff(diffs, category, f"{where}.{k}", fc[k], kc[k])
        return
    if where.endswith(".layers") and isinstance(kc, list) and isinstance(fc, list):
        # a functional / Sequential model's layer configs, matched by layer name (the order is its own check) and
        # named by class, so one difference of every Dense is one line
        fby = {_layer_name(c): c for c in fc}
        for c in kc:
            other = fby.get(_layer_name(c))
            if other is None:
                diffs.append(Difference(category, f"{where}: no fastnn layer config named {_layer_name(c)!r}"))
            else:
                _config_diff(diffs, category, f"{where}[{c.get('class_name', '?')}]", other, c)
        return
    if isinstance(kc, (list, tuple)) and isinstance(fc, (list, tuple)):
        if len(kc) != len(fc):
            diffs.append(Difference(category, f"{where}: fastnn {fc!r} keras {kc!r}"))
            return
        for i, (a, b) in enumerate(zip(fc, kc)):
            _config_diff(diffs, category, f"{where}[{i}]", a, b)
        return
    if isinstance(kc, float) or isinstance(fc, float):
        try:
            if math.isclose(float(fc), float(kc), rel_tol=1e-6, abs_tol=1e-12):
                return
        except (TypeError, ValueError):
            pass
    if type(fc) is not type(kc) and not (isinstance(fc, (int, float)) and isinstance(kc, (int, float))):
        diffs.append(Difference(category, f"{where}: fastnn {fc!r} ({type(fc).__name__}) keras {kc!r} "
                                          f"({type(kc).__name__})"))
        return
    if fc != kc:
        diffs.append(Difference(category, f"{where}: fastnn {fc!r} keras {kc!r}"))


def _layer_name(config):
    if isinstance(config, dict):
        return config.get("name") or (config.get("config") or {}).get("name")
    return None


def _collapse(diffs):
    """Identical findings (e.g. the same missing config key on every Dense) as one line with a count."""
    counts = {}
    for d in diffs:
        counts[(d.category, d.detail)] = counts.get((d.category, d.detail), 0) + 1
    return [Difference(cat, detail + (f"  (x{n})" if n > 1 else "")) for (cat, detail), n in counts.items()]


_TOTALS = re.compile(r"^\s*(Total|Trainable|Non-trainable|Optimizer) params:\s*(.*?)\s*$")


def summary_totals(model):
    lines = []

    def collect(*args, **kwargs):
        lines.extend(str(args[0]).splitlines() if args else [])

    buf = io.StringIO()
    with redirect_stdout(buf):
        model.summary(print_fn=collect)
    out = {}
    for line in lines:
        m = _TOTALS.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _normalized_config(config):
    """Two entries no second library can reproduce byte for byte, reduced to their form: Lambda's `function`
    (Keras writes marshalled bytecode as {"class_name": "__lambda__", ...}; a Python callable left in the config is
    a difference) and the uniquifying counter Keras appends to an auto-named optimizer ("adam_3": "adam")."""
    if isinstance(config, dict):
        out = {}
        for k, v in config.items():
            if k == "function" and config.get("name", "").startswith("lambda"):
                if isinstance(v, dict) and v.get("class_name") == "__lambda__":
                    v = "<serialized __lambda__>"
                elif callable(v):
                    v = "<a Python callable, not serialized>"
            out[k] = _normalized_config(v)
        return out
    if isinstance(config, list):
        return [_normalized_config(v) for v in config]
    return config


def _optimizer_config(optimizer):
    config = _normalized_config(_safe_config(optimizer))
    if isinstance(config.get("name"), str):
        config["name"] = re.sub(r"_\d+$", "", config["name"])
    return config


def transfer_weights_by_name(diffs, km, fm):
    """Keras's weights into the fastnn layer of the same name; differences reported, not raised."""
    flayers = {layer.name: layer for layer in fm.layers}
    for kl in km.layers:
        kw = kl.get_weights()
        if not kw:
            continue
        fl = flayers.get(kl.name)
        if fl is None:
            diffs.append(Difference("layers", f"keras layer {kl.name!r} has no fastnn layer of that name"))
            continue
        fshapes = [tuple(w.shape) for w in fl.get_weights()]
        kshapes = [tuple(w.shape) for w in kw]
        if fshapes != kshapes:
            diffs.append(Difference("weights", f"layer {kl.name!r}: weight shapes fastnn {fshapes} keras {kshapes}"))
            continue
        fl.set_weights(kw)


def run_case(case: Case, keras, fastnn):
    """Every difference between Keras and fastnn on `case`, as a list of Difference (identical ones collapsed)."""
    return _collapse(_run_case(case, keras, fastnn))


def _run_case(case, keras, fastnn):
    diffs = []
    # Fresh automatic names on both sides: Keras numbers metrics and optimizers per session ("auc_3" after three
    # AUC()s), so without this a case's names would depend on the cases before it.
    keras.utils.clear_session()
    fastnn.utils.clear_session()
    keras.utils.set_random_seed(case.seed)
    km = build(keras, case)
    try:
        fm = build(fastnn, case)
    except MissingInLibrary as e:
        return [Difference("missing in fastnn", str(e))]
    except Exception as e:  # a crash while building is a finding too
        return [Difference("build error", f"{type(e).__name__}: {e}")]

    fnames, knames = [layer.name for layer in fm.layers], [layer.name for layer in km.layers]
    if fnames != knames:
        diffs.append(Difference("layer order", f"model.layers fastnn {fnames} keras {knames}"))
    transfer_weights_by_name(diffs, km, fm)

    x, y, sw = make_data(case)
    init = TOLERANCES["initial"]
    trained = TOLERANCES["trained"]
    _compare_values(diffs, "predict", "predict before training", fm.predict(x, verbose=0), km.predict(x, verbose=0),
                    init)

    _config_diff(diffs, "get_config", "model", _normalized_config(_safe_config(fm)),
                 _normalized_config(km.get_config()))
    fsum, ksum = summary_totals(fm), summary_totals(km)
    if fsum != ksum:
        diffs.append(Difference("summary", f"before compile: fastnn {fsum} keras {ksum}"))

    try:
        fm.compile(**compile_args(fastnn, case))
    except MissingInLibrary as e:
        diffs.append(Difference("missing in fastnn", str(e)))
        return diffs
    except Exception as e:
        diffs.append(Difference("compile error", f"{type(e).__name__}: {e}"))
        return diffs
    km.compile(**compile_args(keras, case))

    fit_kw = dict(batch_size=case.batch_size, epochs=case.epochs if case.train else 1, verbose=0, shuffle=False,
                  validation_split=case.validation_split)
    if sw is not None:
        fit_kw["sample_weight"] = sw
    if case.class_weight is not None:
        fit_kw["class_weight"] = case.class_weight
    if case.train:
        kh = km.fit(x, y, **fit_kw).history
        try:
            fh = fm.fit(x, y, **fit_kw).history
        except Exception as e:
            diffs.append(Difference("fit error", f"{type(e).__name__}: {e}"))
            return diffs
        _compare_keys(diffs, "history", "history.history", fh, kh)
        for key in kh:
            if key in fh:
                _compare_values(diffs, "history", f"history[{key!r}]", fh[key], kh[key], trained)
        for kl in km.layers:
            fl = next((layer for layer in fm.layers if layer.name == kl.name), None)
            if fl is not None and kl.get_weights():
                _compare_values(diffs, "final weights", f"layer {kl.name!r}", fl.get_weights(), kl.get_weights(),
                                trained)
        _config_diff(diffs, "optimizer get_config", "optimizer", _optimizer_config(fm.optimizer),
                     _optimizer_config(km.optimizer))
        fsum, ksum = summary_totals(fm), summary_totals(km)
        if fsum != ksum:
            diffs.append(Difference("summary", f"after fit: fastnn {fsum} keras {ksum}"))

    tol = trained if case.train else init
    eval_kw = dict(batch_size=case.batch_size, verbose=0)
    if sw is not None:
        eval_kw["sample_weight"] = sw
    try:
        fe = fm.evaluate(x, y, **eval_kw)
        fd = fm.evaluate(x, y, return_dict=True, **eval_kw)
    except Exception as e:
        diffs.append(Difference("evaluate error", f"{type(e).__name__}: {e}"))
        return diffs
    ke = km.evaluate(x, y, **eval_kw)
    kd = km.evaluate(x, y, return_dict=True, **eval_kw)
    _compare_values(diffs, "evaluate list", "evaluate()", fe, ke, tol)
    _compare_values(diffs, "evaluate dict", "evaluate(return_dict=True)", fd, kd, tol)
    if case.train:
        _compare_values(diffs, "predict", "predict after training", fm.predict(x, verbose=0),
                        km.predict(x, verbose=0), trained)

    # fastnn with its own initialization: must build, train a step and stay finite (no Keras counterpart)
    try:
        own = build(fastnn, case)
        own.compile(**compile_args(fastnn, case))
        own.fit(x, y, batch_size=case.batch_size, epochs=1, verbose=0, shuffle=False)
        if not all(np.all(np.isfinite(w)) for w in own.get_weights()):
            diffs.append(Difference("own-init fit", "non-finite weights after one epoch from fastnn's init"))
    except Exception as e:
        diffs.append(Difference("own-init fit", f"{type(e).__name__}: {e}"))
    return diffs


def _safe_config(thing):
    try:
        return thing.get_config()
    except Exception as e:  # reported through the comparison as a value mismatch
        return {"<get_config raised>": f"{type(e).__name__}: {e}"}
