"""The fold as one concept: the ONE place its rows, its seed and its training group are computed.

Two protocols, chosen by ``data.fold_by`` (:func:`with_split`):

* ``"subject"``, leave-one-subject-out (the default): fold ``k`` holds out the ``k``-th subject of
  ``data.subject_ids`` (sorted), trains on every other subject's rows and is tested on that subject's
  rows (:func:`fold_rows`, like scikit-learn's ``LeaveOneGroupOut.split`` with the subjects as groups);
* ``"dataset"``, the cross-database protocol: fold ``k`` holds out the ``k``-th source dataset (casme2,
  samm, smic) and trains on the other two, so a model is tested on recording conditions it never saw.

Every consumer (the LOSO engine, the fold runner, the notebooks' fold models, CAM evaluation, Grad-CAM,
checkpoints) takes its rows and seeds from here. No torch here: the command line and the run
bookkeeping use it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from am3f.data.dataset import FlowDataset
from am3f.errors import AM3FError
from am3f.training.recipe import TrainConfig

SPLITS = ("subject", "dataset")


def with_split(data: FlowDataset, split: str) -> FlowDataset:
    """``data`` folded by ``split`` ("subject": LOSO; "dataset": cross-database)."""
    if split not in SPLITS:
        raise AM3FError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "dataset" and len(set(data.datasets.tolist())) < 2:
        raise AM3FError(f"the cross-database split needs at least two source datasets; {data.name} has "
                        f"{', '.join(sorted(set(data.datasets.tolist())))}")
    return replace(data, fold_by=split)


def _fold_keys(data: FlowDataset) -> np.ndarray:
    return data.datasets if data.fold_by == "dataset" else data.subjects


def fold_names(data: FlowDataset) -> list[str]:
    """What each fold holds out, in fold order (sorted): subjects, or source datasets."""
    return sorted(set(_fold_keys(data).tolist()))


def fold_rows(data: FlowDataset, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, test rows) of fold ``fold``, as sorted index arrays into ``data``."""
    held_out = _fold_keys(data) == fold_names(data)[fold]
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def loso_split(data: FlowDataset) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(training rows, test rows) of every fold, in fold order."""
    for k in range(len(fold_names(data))):
        yield fold_rows(data, k)


def fold_of(data: FlowDataset, name: str) -> int:
    """The fold that holds ``name`` out: a fold name (:func:`fold_names`), or a subject (the fold of
    its source dataset under the cross-database split)."""
    names = fold_names(data)
    name = str(name)
    if name in names:
        return names.index(name)
    rows = np.flatnonzero(data.subjects == name)
    if not len(rows):
        raise ValueError(f"subject {name!r} is not in {data.name}")
    return names.index(str(_fold_keys(data)[rows[0]]))


def held_out_rows(data: FlowDataset, subject: str) -> np.ndarray:
    """The rows of ``subject``, all of them held out by the fold :func:`fold_of` gives for it."""
    test = fold_rows(data, fold_of(data, subject))[1]
    return test[data.subjects[test] == str(subject)]


def split_fold(data: FlowDataset, fold: int) -> tuple[FlowDataset, FlowDataset]:
    """Training set and test set of fold ``fold`` as datasets."""
    train, test = fold_rows(data, fold)
    return data.subset(train), data.subset(test)


def check_fold(data: FlowDataset, fold: int) -> None:
    """The fold invariant, asserted for every fold before anything is trained: no held-out subject (and,
    across databases, no held-out dataset) and no held-out sample in the training rows."""
    name, keys = fold_names(data)[fold], _fold_keys(data)
    train, test = fold_rows(data, fold)
    if (name in set(keys[train].tolist()) or set(data.subjects[train].tolist()) & set(data.subjects[test].tolist())
            or set(data.sample_ids[train].tolist()) & set(data.sample_ids[test].tolist())):
        raise AssertionError(f"LOSO violated: test subject {name} is in the training set")
    if len(test) == 0 or set(keys[test].tolist()) != {name}:
        raise AssertionError(f"LOSO fold for {data.fold_by} {name} must hold exactly its samples")


def fold_seed(seed: int, member: int = 0) -> int:
    """The training seed of ensemble member ``member`` (0-based, ``TrainConfig.n_models``) of a fold
    in a run with seed ``seed``. Every fold of a group shares it (its own data order comes from the
    generator each model gets); 1000 apart, so the members of seeds 0, 1, ... never collide."""
    return seed * 1000 + member


def fold_groups(data: FlowDataset, cfg: TrainConfig, size: int | None = None,
                folds: Sequence[int] | None = None) -> list[list[int]]:
    """The LOSO folds (all, or those of ``folds``) that are trained together, in groups of at most
    ``size`` (default ``cfg.fold_group``; the engine passes its memory-capped size,
    :func:`am3f.protocol.memory.group_size`). Folds share a group only when their training sets need the same
    batches per epoch. The grouping depends on the data, the recipe and the model alone, never on
    which folds a process runs, so a fold's result is the same whatever the workers, shards or scheduler."""
    by_shape: dict[tuple, list[int]] = {}
    wanted = None if folds is None else set(folds)
    for k, (train, _) in enumerate(loso_split(data)):
        if wanted is None or k in wanted:
            key = cfg.epoch_steps(len(train)) + (() if cfg.drop_last else (len(train),))
            by_shape.setdefault(key, []).append(k)
    size = size or cfg.fold_group
    groups = [same[i:i + size] for same in by_shape.values() for i in range(0, len(same), size)]
    return sorted(groups)


def development_half(datasets: Sequence[str], subjects: Sequence[str]) -> list[str]:
    """The development half of aligned (source dataset, subject) arrays: within each dataset, every second
    subject in sorted order. The one rule for data (:func:`am3f.protocol.development.dev_subjects`) and for results
    read back (a run's predictions: :func:`am3f.results.stats.holdout_subjects`); the other half is the hold-out
    half, whose subjects never informed a design or schedule decision."""
    datasets, subjects = np.asarray(datasets).astype(str), np.asarray(subjects).astype(str)
    out = []
    for ds in sorted(set(datasets.tolist())):
        out += sorted(set(subjects[datasets == ds].tolist()))[0::2]
    return out
