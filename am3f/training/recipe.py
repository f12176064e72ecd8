"""The training recipe as plain data: :class:`TrainConfig`, checked when it is built.

A recipe is everything that decides what a fold's model is: optimizer, schedule, loss, augmentation,
weight averaging, ensemble size, the fold grouping of the batched engine. How the work is executed (CPU
threads, worker processes, device) is not part of it: those settings never change what is computed and
are given to the runner instead.

Every field is validated in ``__post_init__``: a nonsense value (``lr=-1``, ``epochs=0``, an unknown
optimizer, ...) fails in one line when the recipe is made, before any data is loaded or any worker
starts. How the defaults were chosen: :mod:`am3f.protocol.development` (the development half only).
This module imports no torch (the command line builds and checks recipes before importing it).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace

from am3f.errors import AM3FError
from am3f.utils import config_from_dict, config_to_dict

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")  # cosine: linear warm-up then cosine decay (per step); constant: lr throughout


@dataclass(frozen=True)
class TrainConfig:
    """The whole training recipe as plain data (saved with every run and checkpoint)."""

    optimizer: str = "adamw"  # one of OPTIMIZERS
    lr: float = 1e-2  # peak learning rate
    weight_decay: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    warmup_epochs: float = 3.0  # linear warm-up (capped by capped_warmup), then cosine decay to zero (per step)
    # loss (am3f.training.losses): logit adjustment strength, class-prior weight power, label smoothing; the class
    # priors are the class frequencies of the whole training fold
    tau: float = 1.0
    weight_power: float = 0.0
    label_smoothing: float = 0.0
    # augmentation (flow-aware, am3f.training.augment)
    hflip: float = 0.5  # probability of a horizontal mirror (maps mirrored AND u negated)
    max_shift: float = 0.07  # random translation, fraction of the image side (2 px at 28)
    same_class_mix: float = 1.0  # probability of blending a sample with another of the SAME class
    # weight averaging: exponential moving average of the weights over the fixed schedule (0 = off)
    ema: float = 0.0
    tta_flip: bool = True  # test-time: average the probabilities of the image and its flow-aware mirror
    n_models: int = 1  # ensemble of independently seeded models per fold, probabilities averaged
    # LOSO folds trained together in one batched computation (am3f.training.fit.fit_group,
    # am3f.protocol.folds.fold_groups). Part of the
    # recipe, not an execution setting: float rounding differs (slightly) with the group size.
    fold_group: int = 17
    # for the peers' published recipes (am3f.models.peers)
    schedule: str = "cosine"  # one of SCHEDULES
    nesterov: bool = True  # optimizer "sgd" only: Nesterov momentum (0.9 either way)
    drop_last: bool = True  # drop the ragged last batch of an epoch (False: keep it, as a DataLoader does)
    # Train with images and weights in channels-last memory (NHWC) instead of NCHW: the same model, computed by
    # other CPU kernels, faster for some architectures and slower for others (measured per architecture:
    # benchmarks/bench_peers.py --layouts; declared in am3f.models.registry). Part of the recipe, like
    # fold_group: float rounding differs with it. Applies to a model trained alone (a group of one); a
    # vmapped group trains in NCHW, so resolve_variant records False for fold_group > 1.
    channels_last: bool = False

    # fields added after runs were recorded: left out of a recipe's record while at their default, so the
    # configs (and run folder names) of every recipe that does not use them read as before
    ADDED_FIELDS = ("channels_last",)

    def __post_init__(self) -> None:
        problems = recipe_problems(self)
        if problems:
            raise AM3FError("invalid training recipe: " + "; ".join(problems))

    def epoch_steps(self, n: int) -> tuple[int, int]:
        """(batch size, steps per epoch) for a training set of ``n`` samples."""
        bs = min(self.batch_size, n)
        # drop the ragged last batch (keeps BatchNorm statistics sane), unless the recipe keeps it
        return bs, (max(1, n // bs) if self.drop_last else math.ceil(n / bs))

    def to_dict(self) -> dict:
        return config_to_dict(self, omit_at_default=self.ADDED_FIELDS)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return config_from_dict(cls, d, "training")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


# (field, test, what it must be): the numeric rules; choices, flags and names are checked below
_RULES = (
    ("lr", lambda v: _is_real(v) and v > 0, "a positive finite number"),
    ("weight_decay", lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
    ("epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("n_models", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("fold_group", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("warmup_epochs", lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
    ("tau", lambda v: _is_real(v) and v >= 0, "a finite number >= 0 (0 = plain cross-entropy)"),
    ("weight_power", lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
    ("label_smoothing", lambda v: _is_real(v) and 0 <= v < 1, "in [0, 1)"),
    ("hflip", lambda v: _is_real(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    ("same_class_mix", lambda v: _is_real(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    ("max_shift", lambda v: _is_real(v) and 0 <= v <= 0.5, "a fraction of the image side in [0, 0.5]"),
    ("ema", lambda v: _is_real(v) and 0 <= v < 1, "a decay in [0, 1) (0 = off)"),
)
_CHOICES = (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES))
_FLAGS = ("tta_flip", "nesterov", "drop_last", "channels_last")


def recipe_problems(cfg: TrainConfig) -> list[str]:
    """Every value of ``cfg`` that is not a valid recipe setting, as 'field: why' strings."""
    out = [f"{name} must be {what}, got {getattr(cfg, name)!r}" for name, ok, what in _RULES
           if not ok(getattr(cfg, name))]
    out += [f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(cfg, name)!r}"
            for name, allowed in _CHOICES if getattr(cfg, name) not in allowed]
    out += [f"{name} must be true or false, got {getattr(cfg, name)!r}" for name in _FLAGS
            if not isinstance(getattr(cfg, name), bool)]
    return out


RECIPE_FIELDS = tuple(f.name for f in fields(TrainConfig))
DEFAULT_TRAIN = TrainConfig()


def resolve_variant(name: str, **train_overrides) -> tuple[object, TrainConfig]:
    """Model config and training recipe of a named variant (:mod:`am3f.models.registry`), plus explicit overrides
    (e.g. epochs; None = not overridden). The recipe is checked here, before anything runs."""
    from am3f.models.registry import get_variant

    model_cfg, variant_train = get_variant(name)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(RECIPE_FIELDS))
    if unknown:
        raise AM3FError(f"unknown training recipe field(s): {', '.join(unknown)}")
    cfg = capped_warmup(replace(DEFAULT_TRAIN, **{**variant_train, **overrides}))
    if cfg.channels_last and cfg.fold_group > 1 and "channels_last" not in overrides:
        cfg = replace(cfg, channels_last=False)  # the declared layout is for one fold at a time (see the field)
    return model_cfg, cfg


# a recipe's warm-up never takes more than this share of its epochs: a short run (a quick look, a grid's
# `epochs=2`) would otherwise never leave its warm-up and never decay. 15 % of 20 epochs is exactly the
# declared 3, so every 20- and 60-epoch recipe is unchanged, byte for byte.
WARMUP_MAX_PERCENT = 15


def capped_warmup(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its warm-up capped at :data:`WARMUP_MAX_PERCENT` % of its epochs, applied where a recipe
    is made (:func:`resolve_variant`, a tuning's candidates), so a run's config.json records the warm-up it
    trains with (and a short run made before the cap keeps its own recorded warm-up when it resumes)."""
    cap = cfg.epochs * WARMUP_MAX_PERCENT / 100  # integer product first: 20 epochs give exactly 3.0
    return replace(cfg, warmup_epochs=cap) if cfg.warmup_epochs > cap else cfg
