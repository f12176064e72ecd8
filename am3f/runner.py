"""A whole recipe applied to a group of LOSO folds, and the LOSO fold runner built on it.

:func:`fit_folds` is the one place a recipe (:class:`am3f.recipe.TrainConfig`) becomes fold models:
the folds' rows and seeds (:mod:`am3f.folds`), input normalisation (each fold with its own training
statistics), sim-to-real pre-training, distillation teachers, ensemble members, and the batched fit
(:func:`am3f.train.fit_group`). The LOSO runner (:class:`TrainRunner`), the notebooks' fold models
(:func:`am3f.runs.fold_model`), CAM evaluation and checkpoints all train through it, so a fold's
model is the same whichever of them asks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .augment import hflip_flow
from .data import FlowDataset, dataset_normalisation
from .folds import fold_groups, fold_of, fold_rows, fold_seed
from .losses import class_priors
from .pretrain import pretrained_state
from .recipe import TrainConfig, resolve_variant
from .rundir import FoldOutput
from .train import fit, fit_group, predict


# ----------------------------------------------------------------------------- input normalisation
class InputNormalised(nn.Module):
    """A fold model with its input normalisation in front: raw (u, v, strain) in [0, 1] in, the
    model's logits out. ``shift``/``scale``/``target_*`` are those of :func:`am3f.data.dataset_normalisation`
    for the held-out subject's source dataset, applied in float64 as the dataset transform applies
    them, so the wrapped model sees bit for bit the images it was trained and tested on. Attributes
    not found here are the inner model's (``cfg``, ``branches``, ``cam_target_layers`` ...)."""

    def __init__(self, model: nn.Module, shift, scale, target_shift, target_scale):
        super().__init__()
        self.model = model
        for name, v in (("shift", shift), ("scale", scale), ("target_shift", target_shift),
                        ("target_scale", target_scale)):
            self.register_buffer(name, torch.as_tensor(np.asarray(v, np.float64)).view(1, -1, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.shift) / self.scale * self.target_scale + self.target_shift).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalise(x))

    def mirrored_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the flow-aware mirror as the recipe mirrors: of the NORMALISED images (training
        augmentation and test-time flip both act on what the inner model sees)."""
        return self.model(hflip_flow(self.normalise(x)))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


def fold_input_normalisation(data: FlowDataset, fold: int) -> dict:
    """:class:`InputNormalised`'s arguments for fold ``fold`` of a recipe with ``input_norm``: the
    statistics of its training rows for the held-out subject's source dataset (empty when that
    dataset has no training rows: the images stay as they are)."""
    train, test = fold_rows(data, fold)
    norm = dataset_normalisation(data, train)
    held_out_dataset = str(data.datasets[test[0]])
    if held_out_dataset not in norm.per_dataset:
        return {}
    shift, scale = norm.per_dataset[held_out_dataset]
    return {"shift": shift, "scale": scale, "target_shift": norm.mean, "target_scale": norm.std}


# ----------------------------------------------------------------------------- a recipe on row sets
def teacher_targets(data: FlowDataset, train_sets: Sequence[np.ndarray], teachers: Sequence[str], *, seed: int,
                    device: torch.device | str = "cpu", threads: int = 1) -> np.ndarray:
    """Distillation targets (len(train_sets), len(data), n_classes): the mean over ``teachers`` (variant
    names, each trained on exactly that training set with its own recipe) of their mirror-averaged
    probabilities on the set's rows; other rows (never trained on) stay zero."""
    out = None
    for i, name in enumerate(teachers):
        model_cfg, train_cfg = resolve_variant(name)
        teacher_seed = seed + 100 * (i + 1)  # the teachers' streams differ from the student's
        together = len({train_cfg.epoch_steps(len(t)) for t in train_sets}) == 1  # else one at a time
        groups = [list(train_sets)] if together else [[t] for t in train_sets]
        models = [m for g in groups for m in fit_group(data, g, model_cfg, train_cfg, seed=teacher_seed,
                                                       device=device, threads=threads)[0]]
        if out is None:
            out = np.zeros((len(train_sets), len(data), model_cfg.n_classes))
        for m, (model, rows) in enumerate(zip(models, train_sets)):
            out[m, rows] += predict(model, data.x[rows], device, tta_flip=train_cfg.tta_flip) / len(teachers)
    return out


def initial_state(model_cfg, train_cfg: TrainConfig) -> dict | None:
    """The weights every model of the recipe starts from: the pre-trained ones, or None (random)."""
    return pretrained_state(model_cfg, train_cfg, fit) if train_cfg.pretrain else None


def fit_members(data: FlowDataset, train_sets: Sequence[np.ndarray], model_cfg, train_cfg: TrainConfig, *,
                seed: int, device: torch.device | str = "cpu", eval_sets: Sequence[np.ndarray] | None = None,
                init_state: dict | None = None, threads: int = 1, show_progress: bool = False
                ) -> list[tuple[list[nn.Module], list | None]]:
    """The recipe on ``data`` as it is: for each of its ``n_models`` members (seed :func:`fold_seed`),
    distillation targets from the teachers, then one batched fit of a model per training set. Returns
    per member (models, per-epoch eval scores or None)."""
    if train_cfg.pretrain and init_state is None:
        init_state = initial_state(model_cfg, train_cfg)
    members = []
    for member in range(train_cfg.n_models):
        s = fold_seed(seed, member)
        soft = (teacher_targets(data, train_sets, train_cfg.distill_from, seed=s, device=device, threads=threads)
                if train_cfg.distill_from else None)
        members.append(fit_group(data, train_sets, model_cfg, train_cfg, seed=s, device=device, eval_sets=eval_sets,
                                 init_state=init_state, soft_targets=soft, threads=threads,
                                 show_progress=show_progress))
    return members


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
              device: torch.device | str = "cpu", record_epochs: bool = False, init_state: dict | None = None,
              threads: int = 1) -> list[FoldFit]:
    """Apply the whole recipe to the LOSO folds ``folds`` (one group of :func:`am3f.folds.fold_groups`,
    trained together) with run seed ``seed``. With ``input_norm`` each fold is normalised with its own
    training statistics and trained alone, and its models get that normalisation in front
    (:class:`InputNormalised`), so every returned model takes the raw images."""
    if train_cfg.input_norm and len(folds) > 1:  # each fold has its own normalised images
        return [f for k in folds for f in fit_folds(data, [k], model_cfg, train_cfg, seed=seed, device=device,
                                                    record_epochs=record_epochs, init_state=init_state,
                                                    threads=threads)]
    work, wrap = data, {}
    if train_cfg.input_norm:
        work = dataset_normalisation(data, fold_rows(data, folds[0])[0]).apply(data)
        wrap = fold_input_normalisation(data, folds[0])
    rows = [fold_rows(data, k) for k in folds]
    members = fit_members(work, [r[0] for r in rows], model_cfg, train_cfg, seed=seed, device=device,
                          eval_sets=[r[1] for r in rows] if record_epochs else None, init_state=init_state,
                          threads=threads)
    out = []
    for j, (k, (train, test)) in enumerate(zip(folds, rows)):
        models = [m[0][j] for m in members]
        if wrap:
            models = [InputNormalised(m, **wrap).to(next(m.parameters()).device).eval() for m in models]
        out.append(FoldFit(k, models, [m[1][j] for m in members] if record_epochs else None, train, test))
    return out


class TrainRunner:
    """LOSO fold runner (see :func:`am3f.loso.run_loso`): fits on the training subjects only with the
    fixed schedule of the recipe, then predicts the held-out subject once. Folds are trained in the
    groups of :func:`am3f.folds.fold_groups` (``run_group``); ``n_models`` > 1 averages that many
    models per fold. ``device`` and ``threads`` are execution settings: they do not change the recipe."""

    def __init__(self, model_cfg, train_cfg: TrainConfig, device: torch.device | str = "cpu",
                 record_epochs: bool = True, threads: int = 1):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.device = str(device)
        self.record_epochs = record_epochs
        self.threads = threads
        self.init_state = None

    def prepare(self) -> None:
        """Work shared by every fold, done once before the folds are sent out: the pre-trained
        weights (they then travel with the runner, so workers need no shared cache)."""
        if self.train_cfg.pretrain and self.init_state is None:
            self.init_state = initial_state(self.model_cfg, self.train_cfg)

    def groups(self, data: FlowDataset, folds: Sequence[int] | None = None) -> list[list[int]]:
        """Its groups of folds (of all, or of ``folds``), at most as many per group as fit the declared
        memory budget (:func:`am3f.memory.group_size`)."""
        from .memory import group_size

        size = group_size(self.model_cfg, self.train_cfg, data.image_size[0])
        return fold_groups(data, self.train_cfg, size=size, folds=folds)

    def fold_recipe(self, data: FlowDataset, fold: int) -> tuple[object, TrainConfig]:
        """(model config, recipe) fold ``fold`` trains with."""
        return self.model_cfg, self.train_cfg

    def recipes(self) -> list[tuple[object, TrainConfig]]:
        """Every (model config, recipe) its folds train with (the memory planner sizes workers for each)."""
        return [(self.model_cfg, self.train_cfg)]

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        t0 = time.perf_counter()
        fits = fit_folds(data, folds, self.model_cfg, self.train_cfg, seed=seed, device=self.device,
                         record_epochs=self.record_epochs, init_state=self.init_state, threads=self.threads)
        probs = [[predict(m, data.x[f.test_rows], self.device, tta_flip=self.train_cfg.tta_flip) for m in f.models]
                 for f in fits]
        fit_s = round((time.perf_counter() - t0) / len(folds), 3)
        out = []
        for f, p in zip(fits, probs):
            priors = class_priors(data.labels[f.train_rows], self.model_cfg.n_classes).tolist()
            out.append(FoldOutput(scores=np.mean(p, axis=0),
                                  epoch_scores=np.mean(f.epoch_scores, axis=0) if self.record_epochs else None,
                                  info={"fit_s": fit_s, "fold_group": [f.fold] if self.train_cfg.input_norm
                                        else list(folds),
                                        "train_priors": [round(v, 4) for v in priors]}))
        return out

    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput:
        """One fold given as its two datasets (the plain fold-runner protocol of :mod:`am3f.loso`)."""
        joined = FlowDataset(np.concatenate([train.x, test.x]), np.r_[train.labels, test.labels],
                             np.r_[train.subjects, test.subjects], np.r_[train.datasets, test.datasets],
                             np.r_[train.sample_ids, test.sample_ids])
        return self.run_group(joined, [fold_of(joined, test.subjects[0])], seed=seed)[0]


class CrossFittedRunner:
    """LOSO fold runner of a cross-fitted tuning (:mod:`am3f.tune`): a fold whose held-out subject is in
    one half trains with the recipe tuned on the OTHER half (``runners[H]``: the recipe tuned on H;
    ``halves[H]``: H's subjects). Each recipe's folds are grouped among themselves; each fold's
    metadata says which half its recipe was tuned on."""

    def __init__(self, runners: dict[str, TrainRunner], halves: dict[str, Sequence[str]]):
        self.runners = runners
        self.halves = {h: frozenset(s) for h, s in halves.items()}

    def tuned_on(self, data: FlowDataset, fold: int) -> str:
        """The half whose recipe fold ``fold`` trains with: the one its held-out subject is NOT in."""
        from .folds import fold_names

        subject = fold_names(data)[fold]
        return next(h for h in self.runners if subject not in self.halves[h])

    def prepare(self) -> None:
        for runner in self.runners.values():
            runner.prepare()

    def groups(self, data: FlowDataset, folds: Sequence[int] | None = None) -> list[list[int]]:
        from .folds import fold_names

        every = range(len(fold_names(data))) if folds is None else folds
        return sorted(g for h, runner in self.runners.items()
                      for g in runner.groups(data, [k for k in every if self.tuned_on(data, k) == h]))

    def fold_recipe(self, data: FlowDataset, fold: int) -> tuple[object, TrainConfig]:
        return self.runners[self.tuned_on(data, fold)].fold_recipe(data, fold)

    def recipes(self) -> list[tuple[object, TrainConfig]]:
        return [recipe for runner in self.runners.values() for recipe in runner.recipes()]

    def run_group(self, data: FlowDataset, folds: Sequence[int], *, seed: int) -> list[FoldOutput]:
        half = self.tuned_on(data, folds[0])
        outputs = self.runners[half].run_group(data, folds, seed=seed)
        for out in outputs:
            out.info["recipe_tuned_on"] = half
        return outputs
