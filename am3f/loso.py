"""Leave-one-subject-out engine: one fold per subject, resumable, splittable, saved to disk.

A run directory looks like::

    RUN/config.json                 what was run (written first; a rerun must match it)
    RUN/folds/s<seed>_f<k>.csv      one finished fold: its test samples' predictions and scores
    RUN/folds/s<seed>_f<k>.json     that fold's metadata (written last: its presence = fold done)
    RUN/folds/s<seed>_f<k>.npz      optional per-epoch test scores (for the protocol audit only)
    RUN/predictions.csv             all finished folds merged, one row per (seed, test sample)
    RUN/run.json                    config + package version, git commit, device, per-fold wall times

Honest protocol: the fold runner gets the training subjects for fitting and the held-out subject
only to predict at the end of its fixed schedule. Per-epoch test scores may be *recorded* to
measure how much epoch-picking would inflate results; nothing here ever selects by them.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from . import __version__
from .data import FlowDataset
from .errors import AM3FError
from .utils import progress


@dataclass
class FoldOutput:
    """What a fold runner returns: class probabilities for the held-out samples."""

    scores: np.ndarray  # (n_test, n_classes)
    epoch_scores: np.ndarray | None = None  # (n_epochs, n_test, n_classes), audit only
    info: dict | None = None


class FoldRunner(Protocol):
    def __call__(self, train: FlowDataset, test: FlowDataset, *, seed: int, fold: int) -> FoldOutput: ...


def dataset_info(data: FlowDataset) -> dict:
    """What a run's config.json records about its data."""
    return {"name": data.name, "root": str(data.root) if data.root else None, "synthetic": data.synthetic,
            "n_samples": len(data), "n_subjects": len(data.subject_ids)}


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


def fold_stem(seed: int, fold: int) -> str:
    return f"s{seed}_f{fold:03d}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    # once per process: the code a process runs is the code it imported
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _prepare_run_dir(out: Path, config: dict) -> dict:
    # compare in JSON form: tuples in a config read back as lists
    config = json.loads(json.dumps(config))
    out.mkdir(parents=True, exist_ok=True)
    (out / "folds").mkdir(exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise AM3FError(f"{cfg_path}: this run directory was started with a different configuration "
                            f"(differs in: {', '.join(diff)}); use a new --out directory")
    else:
        _atomic_write_text(cfg_path, json.dumps(config, indent=2, sort_keys=True))
    return config


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
    config = _prepare_run_dir(out, config)

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
        _write_fold(out, data, test, result, seed=seed, fold=k, subject=subject, n_train=len(train),
                    wall=wall, device=device)
    merge_run(out)
    return out


def _write_fold(out: Path, data: FlowDataset, test: FlowDataset, result: FoldOutput, *, seed: int, fold: int,
                subject: str, n_train: int, wall: float, device: str) -> None:
    scores = np.asarray(result.scores, dtype=np.float64)
    if scores.shape != (len(test), len(data.class_names)):
        raise AssertionError(f"fold runner returned scores of shape {scores.shape}, "
                             f"expected {(len(test), len(data.class_names))}")
    stem = out / "folds" / fold_stem(seed, fold)
    frame = pd.DataFrame({
        "sample_id": test.sample_ids, "dataset": test.datasets, "subject": test.subjects,
        "label": test.labels, "pred": scores.argmax(axis=1), "fold": fold, "seed": seed,
    })
    for c, name in enumerate(data.class_names):
        frame[f"score_{name}"] = scores[:, c]
    if result.epoch_scores is not None:
        np.savez_compressed(f"{stem}.npz", epoch_scores=np.asarray(result.epoch_scores, dtype=np.float32),
                            sample_ids=test.sample_ids)
    _atomic_write_text(Path(f"{stem}.csv"), frame.to_csv(index=False, float_format="%.6f"))
    meta = {"seed": seed, "fold": fold, "subject": subject, "n_train": n_train, "n_test": len(test),
            "wall_s": round(wall, 4), "device": device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "am3f_version": __version__, "git_commit": git_commit()}
    if result.info:
        meta["info"] = result.info
    _atomic_write_text(Path(f"{stem}.json"), json.dumps(meta, indent=2))


def merge_run(out: str | os.PathLike) -> pd.DataFrame:
    """Combine every finished fold (any seed, any process) into predictions.csv and run.json."""
    out = Path(out)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise AM3FError(f"{out}: not a run directory (no config.json)")
    config = json.loads(cfg_path.read_text())
    metas = []
    for meta_path in sorted((out / "folds").glob("s*_f*.json")):
        metas.append(json.loads(meta_path.read_text()))
    if not metas:
        raise AM3FError(f"{out}: no finished folds yet")
    frames = [pd.read_csv(out / "folds" / f"{fold_stem(m['seed'], m['fold'])}.csv", dtype={"subject": str})
              for m in metas]
    preds = pd.concat(frames, ignore_index=True).sort_values(["seed", "fold", "sample_id"], kind="stable")
    _atomic_write_text(out / "predictions.csv", preds.to_csv(index=False, float_format="%.6f"))

    n_subjects = config.get("dataset", {}).get("n_subjects")
    seeds = sorted({m["seed"] for m in metas})
    per_seed = {s: sorted(m["fold"] for m in metas if m["seed"] == s) for s in seeds}
    complete = n_subjects is not None and all(len(f) == n_subjects for f in per_seed.values())
    # provenance of the code that trained the folds, not of whoever merges them later
    previous = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    commits = sorted({str(m["git_commit"]) for m in metas if m.get("git_commit")})
    versions = sorted({m["am3f_version"] for m in metas if m.get("am3f_version")})
    run = {
        "config": config,
        "am3f_version": ", ".join(versions) or previous.get("am3f_version", __version__),
        "git_commit": ", ".join(commits) or previous.get("git_commit"),
        "python": platform.python_version(),
        "torch": _torch_version(),
        "host": platform.node(),
        "devices": sorted({m["device"] for m in metas}),
        "complete": complete,
        "folds_done": {str(s): len(f) for s, f in per_seed.items()},
        "wall_s_per_seed": {str(s): round(sum(m["wall_s"] for m in metas if m["seed"] == s), 2) for s in seeds},
        "folds": [{k: m.get(k) for k in ("seed", "fold", "subject", "n_train", "n_test", "wall_s", "device",
                                         "git_commit")} for m in metas],
    }
    _atomic_write_text(out / "run.json", json.dumps(run, indent=2))
    return preds


def _torch_version() -> str | None:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return None


def load_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """predictions.csv of a run (merging finished folds first, so partial array-job runs work)."""
    return merge_run(run_dir)

