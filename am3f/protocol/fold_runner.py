"""A whole recipe applied to a group of LOSO folds, and the LOSO fold runner built on it.

:func:`fit_folds` is the one place a recipe (:class:`am3f.training.recipe.TrainConfig`) becomes fold models:
the folds' rows and seeds (:mod:`am3f.protocol.folds`), ensemble members, and the batched fit
(:func:`am3f.training.fit.fit_group`). The LOSO runner (:class:`TrainRunner`), the notebooks' fold models
(:func:`am3f.protocol.launch.fold_model`), CAM evaluation and checkpoints all train through it, so a fold's
model is the same whichever of them asks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from am3f.data.dataset import FlowDataset
from am3f.protocol.engine import FoldRunner
from am3f.protocol.folds import fold_groups, fold_of, fold_rows, fold_seed
from am3f.protocol.run_folder import FoldOutput
from am3f.training.fit import fit_group, predict
from am3f.training.losses import class_priors
from am3f.training.recipe import TrainConfig


# ----------------------------------------------------------------------------- a recipe on row sets
def fit_members(data: FlowDataset, train_sets: Sequence[np.ndarray], model_cfg, train_cfg: TrainConfig, *,
                seed: int, device: torch.device | str = "cpu", eval_sets: Sequence[np.ndarray] | None = None,
                threads: int = 1, show_progress: bool = False) -> list[tuple[list[nn.Module], list | None]]:
    """The recipe on ``data``: for each of its ``n_models`` members (seed :func:`fold_seed`), one
    batched fit of a model per training set. Returns per member (models, per-epoch eval scores or None)."""
    return [fit_group(data, train_sets, model_cfg, train_cfg, seed=fold_seed(seed, member), device=device,
                      eval_sets=eval_sets, threads=threads, show_progress=show_progress)
            for member in range(train_cfg.n_models)]


# ----------------------------------------------------------------------------- a recipe on LOSO folds
@dataclass
class FoldFit:
    """What a recipe trained for one LOSO fold."""

    fold: int
    models: list[nn.Module]  # one per ensemble member, each taking raw (u, v, strain) in [0, 1]
    epoch_scores: list[np.ndarray] | None  # per member (n_epochs, n_test, n_classes), audit only
    train_rows: np.ndarray
    test_rows: np.ndarray


def fit_folds(data: FlowDataset, folds: Sequence[int], model_cfg, train_cfg: TrainConfig, *, seed: int,
              device: torch.device | str = "cpu", record_epochs: bool = False, threads: int = 1) -> list[FoldFit]:
    """Apply the whole recipe to the LOSO folds ``folds`` (one group of :func:`am3f.protocol.folds.fold_groups`,
    trained together) with run seed ``seed``."""
    rows = [fold_rows(data, k) for k in folds]
    members = fit_members(data, [r[0] for r in rows], model_cfg, train_cfg, seed=seed, device=device,
                          eval_sets=[r[1] for r in rows] if record_epochs else None, threads=threads)
    out = []
    for j, (k, (train, test)) in enumerate(zip(folds, rows)):
        models = [m[0][j] for m in members]
        out.append(FoldFit(k, models, [m[1][j] for m in members] if record_epochs else None, train, test))
    return out


class TrainRunner(FoldRunner):
    """LOSO fold runner (see :func:`am3f.protocol.engine.run_loso`): fits on the training subjects only with the
    fixed schedule of the recipe, then predicts the held-out subject once. Folds are trained in the
    groups of :func:`am3f.protocol.folds.fold_groups` (``run_group``); ``n_models`` > 1 averages that many
    models per fold. ``device`` and ``threads`` are execution settings: they do not change the recipe."""

    def __init__(self, model_cfg, train_cfg: TrainConfig, device: torch.device | str = "cpu",
                 record_epochs: bool = True, threads: int = 1):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.device = str(device)
        self.record_epochs = record_epochs
        self.threads = threads

    def groups(self, data: FlowDataset, folds: Sequence[int] | None = None) -> list[list[int]]:
        """Its groups of folds (of all, or of ``folds``), at most as many per group as fit the declared
        memory budget (:func:`am3f.protocol.memory.group_size`)."""
        from am3f.protocol.memory import group_size

        size = group_size(self.model_cfg, self.train_cfg, data.image_size[0])
        return fold_groups(data, self.train_cfg, size=size, folds=folds)

    def fold_recipe(self, data: FlowDataset, fold: int) -> tuple[object, TrainConfig]:
        """(model config, recipe) fold ``fold`` trains with."""
        return self.model_cfg, self.train_cfg

    def fold_epochs(self, data: FlowDataset, fold: int) -> int:
        return self.fold_recipe(data, fold)[1].epochs

    def recipes(self) -> list[tuple[object, TrainConfig]]:
        """Every (model config, recipe) its folds train with (the memory planner sizes workers for each)."""
        return [(self.model_cfg, self.train_cfg)]

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        t0 = time.perf_counter()
        fits = fit_folds(data, folds, self.model_cfg, self.train_cfg, seed=seed, device=self.device,
                         record_epochs=self.record_epochs, threads=self.threads)
        probs = [[predict(m, data.x[f.test_rows], self.device, tta_flip=self.train_cfg.tta_flip) for m in f.models]
                 for f in fits]
        fit_s = round((time.perf_counter() - t0) / len(folds), 3)
        out = []
        for f, p in zip(fits, probs):
            priors = class_priors(data.labels[f.train_rows], self.model_cfg.n_classes).tolist()
            out.append(FoldOutput(scores=np.mean(p, axis=0),
                                  epoch_scores=np.mean(f.epoch_scores, axis=0) if self.record_epochs else None,
                                  info={"fit_s": fit_s, "fold_group": list(folds),
                                        "train_priors": [round(v, 4) for v in priors]}))
        return out

    def run_fold(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        """One fold given as its two datasets (trained as a group of one)."""
        joined = train.joined(test)
        return self.run_group(joined, [fold_of(joined, test.subjects[0])], seed=seed)[0]


class CrossFittedRunner(FoldRunner):
    """LOSO fold runner of a cross-fitted tuning (:mod:`am3f.protocol.tuning`): a fold whose held-out subject is in
    one half trains with the recipe tuned on the OTHER half (``runners[H]``: the recipe tuned on H;
    ``halves[H]``: H's subjects). Each recipe's folds are grouped among themselves; each fold's
    metadata says which half its recipe was tuned on."""

    def __init__(self, runners: dict[str, TrainRunner], halves: dict[str, Sequence[str]]):
        self.runners = runners
        self.halves = {h: frozenset(s) for h, s in halves.items()}

    def tuned_on(self, data: FlowDataset, fold: int) -> str:
        """The half whose recipe fold ``fold`` trains with: the one its held-out subject is NOT in."""
        from am3f.protocol.folds import fold_names

        subject = fold_names(data)[fold]
        return next(h for h in self.runners if subject not in self.halves[h])

    def groups(self, data: FlowDataset, folds: Sequence[int] | None = None) -> list[list[int]]:
        from am3f.protocol.folds import fold_names

        every = range(len(fold_names(data))) if folds is None else folds
        return sorted(g for h, runner in self.runners.items()
                      for g in runner.groups(data, [k for k in every if self.tuned_on(data, k) == h]))

    def fold_recipe(self, data: FlowDataset, fold: int) -> tuple[object, TrainConfig]:
        return self.runners[self.tuned_on(data, fold)].fold_recipe(data, fold)

    def fold_epochs(self, data: FlowDataset, fold: int) -> int:
        return self.fold_recipe(data, fold)[1].epochs

    def recipes(self) -> list[tuple[object, TrainConfig]]:
        return [recipe for runner in self.runners.values() for recipe in runner.recipes()]

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        half = self.tuned_on(data, folds[0])
        outputs = self.runners[half].run_group(data, folds, seed=seed)
        for out in outputs:
            out.info["recipe_tuned_on"] = half
        return outputs
