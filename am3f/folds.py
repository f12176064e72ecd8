"""The LOSO fold as one concept: the ONE place its rows, its seed and its training group are computed.

Fold ``k`` holds out the ``k``-th subject of ``data.subject_ids`` (sorted): it trains on every other
subject's rows and is tested on that subject's rows (:func:`fold_rows`, like scikit-learn's
``LeaveOneGroupOut.split``). Every consumer (the LOSO engine, the fold runner, the notebooks' fold
models, CAM evaluation, Grad-CAM, checkpoints) takes its rows and seeds from here.
No torch here: the command line and the run bookkeeping use it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .data import FlowDataset
from .recipe import TrainConfig


def fold_rows(data: FlowDataset, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, test rows) of LOSO fold ``fold``, as sorted index arrays into ``data``."""
    held_out = data.subjects == data.subject_ids[fold]
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def loso_split(data: FlowDataset) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(training rows, test rows) of every fold, in fold order."""
    for k in range(len(data.subject_ids)):
        yield fold_rows(data, k)


def fold_of(data: FlowDataset, subject: str) -> int:
    """The fold that holds ``subject`` out."""
    try:
        return data.subject_ids.index(str(subject))
    except ValueError:
        raise ValueError(f"subject {subject!r} is not in {data.name}") from None


def held_out_rows(data: FlowDataset, subject: str) -> np.ndarray:
    """The test rows of the fold that holds ``subject`` out (that subject's samples)."""
    return fold_rows(data, fold_of(data, subject))[1]


def split_fold(data: FlowDataset, fold: int) -> tuple[FlowDataset, FlowDataset]:
    """Training set and test set of fold ``fold`` as datasets."""
    train, test = fold_rows(data, fold)
    return data.subset(train), data.subset(test)


def check_fold(data: FlowDataset, fold: int) -> None:
    """The LOSO invariant, asserted for every fold before anything is trained."""
    subject = data.subject_ids[fold]
    train, test = fold_rows(data, fold)
    if subject in set(data.subjects[train].tolist()) or set(data.sample_ids[train].tolist()) & set(
            data.sample_ids[test].tolist()):
        raise AssertionError(f"LOSO violated: test subject {subject} is in the training set")
    if len(test) == 0 or set(data.subjects[test].tolist()) != {subject}:
        raise AssertionError(f"LOSO fold for subject {subject} must hold exactly that subject's samples")


def fold_seed(seed: int, member: int = 0) -> int:
    """The training seed of ensemble member ``member`` (0-based, ``TrainConfig.n_models``) of a fold
    in a run with seed ``seed``. Every fold of a group shares it (its own data order comes from the
    generator each model gets); 1000 apart, so the members of seeds 0, 1, ... never collide."""
    return seed * 1000 + member


def fold_groups(data: FlowDataset, cfg: TrainConfig) -> list[list[int]]:
    """The LOSO folds that are trained together, in groups of at most ``cfg.fold_group``. Folds share
    a group only when their training sets need the same batches per epoch. The grouping depends on
    the data and the recipe alone, never on which folds a process runs, so a fold's result is the
    same whatever the workers, shards or scheduler."""
    by_shape: dict[tuple, list[int]] = {}
    for k, (train, _) in enumerate(loso_split(data)):
        key = cfg.epoch_steps(len(train)) + (() if cfg.drop_last else (len(train),))
        by_shape.setdefault(key, []).append(k)
    size = cfg.fold_group
    groups = [folds[i:i + size] for folds in by_shape.values() for i in range(0, len(folds), size)]
    return sorted(groups)


def group_of(data: FlowDataset, cfg: TrainConfig, fold: int) -> list[int]:
    """The group of :func:`fold_groups` that fold ``fold`` is trained in."""
    return next(g for g in fold_groups(data, cfg) if fold in g)
