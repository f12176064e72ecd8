"""Leave-one-subject-out engine: one fold per subject, resumable, splittable; results go to a run
directory (:mod:`am3f.rundir`).

Honest protocol: the fold runner gets the training subjects for fitting and the held-out subject
only to predict at the end of its fixed schedule. Per-epoch test scores may be *recorded* to
measure how much epoch-picking would inflate results; nothing here ever selects by them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .data import FlowDataset
from .rundir import FoldOutput, dataset_info, fold_stem, merge_run, prepare_run_dir, write_fold
from .utils import progress

__all__ = ["FoldOutput", "FoldRunner", "check_fold", "dataset_info", "run_loso", "split_fold"]


class FoldRunner(Protocol):
    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput: ...


def split_fold(data: FlowDataset, subject: str) -> tuple[FlowDataset, FlowDataset]:
    """Training set (all other subjects) and test set (this subject)."""
    test_mask = data.subjects == subject
    return data.subset(~test_mask), data.subset(test_mask)


def check_fold(train: FlowDataset, test: FlowDataset, subject: str) -> None:
    """The LOSO invariant, asserted for every fold before anything is trained."""
    if subject in set(train.subjects.tolist()) or set(train.sample_ids.tolist()) & set(test.sample_ids.tolist()):
        raise AssertionError(f"LOSO violated: test subject {subject} is in the training set")
    if len(test) == 0 or set(test.subjects.tolist()) != {subject}:
        raise AssertionError(f"LOSO fold for subject {subject} must hold exactly that subject's samples")


def run_loso(data: FlowDataset, runner: FoldRunner, out: str | os.PathLike, *, seeds: Sequence[int] = (0,),
             folds: Sequence[int] | None = None, config: dict | None = None, device: str = "cpu",
             show_progress: bool = True) -> Path:
    """Run (or resume) the LOSO folds ``folds`` x ``seeds`` into ``out``; finished folds are skipped.

    Returns the run directory. ``predictions.csv`` and ``run.json`` are refreshed with every fold
    that has finished so far (from this process or others sharing the directory).
    """
    out = Path(out)
    subjects = data.subject_ids
    fold_ids = list(range(len(subjects))) if folds is None else list(folds)
    config = dict(config or {})
    config.setdefault("dataset", dataset_info(data))
    config = prepare_run_dir(out, config)

    todo = [(s, k) for s in seeds for k in fold_ids if not (out / "folds" / f"{fold_stem(s, k)}.json").exists()]
    skipped = len(seeds) * len(fold_ids) - len(todo)
    if skipped and show_progress:
        print(f"resuming {out}: {skipped} fold(s) already done, {len(todo)} to run")
    bar = progress(todo, desc="LOSO folds", unit="fold", disable=not show_progress)
    for seed, k in bar:
        subject = subjects[k]
        bar.set_postfix_str(f"seed {seed} subject {subject}")
        train, test = split_fold(data, subject)
        check_fold(train, test, subject)
        t0 = time.perf_counter()
        result = runner(train, test, seed=seed, fold=k)
        wall = time.perf_counter() - t0
        write_fold(out, data, test, result, seed=seed, fold=k, subject=subject, n_train=len(train),
                   wall=wall, device=device)
    merge_run(out)
    return out
