"""The run directory: what a LOSO run writes, and reading it back.

A run directory looks like::

    RUN/config.json                 what was run (written first; a rerun must match it)
    RUN/folds/s<seed>_f<k>.csv      one finished fold: its test samples' predictions and scores
    RUN/folds/s<seed>_f<k>.json     that fold's metadata (written last: its presence = fold done)
    RUN/folds/s<seed>_f<k>.npz      optional per-epoch test scores (for the protocol audit only)
    RUN/predictions.csv             all finished folds merged, one row per (seed, test sample)
    RUN/run.json                    config + package version, git commit, device, per-fold wall times

Every write is atomic (temp file + rename), so processes sharing a directory (``--folds`` shards,
workers, a cluster) and killed runs never leave half a file. Tables and figures are regenerated
from these files (:func:`load_run`) without retraining.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import FlowDataset
from .errors import AM3FError
from .utils import atomic_write, atomic_write_text


@dataclass
class FoldOutput:
    """What a fold runner returns: class probabilities for the held-out samples."""

    scores: np.ndarray  # (n_test, n_classes)
    epoch_scores: np.ndarray | None = None  # (n_epochs, n_test, n_classes), audit only
    info: dict | None = None


def dataset_info(data: FlowDataset) -> dict:
    """What a run's config.json records about its data (and, for the cross-database split, how it is
    folded: recorded only then, so LOSO runs' configurations read as before)."""
    info = {"name": data.name, "root": str(data.root) if data.root else None, "synthetic": data.synthetic,
            "n_samples": len(data), "n_subjects": len(data.subject_ids)}
    if data.fold_by != "subject":
        from .folds import fold_names

        info.update(split=data.fold_by, n_folds=len(fold_names(data)))
    return info


def expected_folds(config: dict) -> int | None:
    """How many folds a seed of the run has: one per subject (LOSO), or ``n_folds`` of its split."""
    dataset = config.get("dataset", {})
    return dataset.get("n_folds", dataset.get("n_subjects"))


def fold_stem(seed: int, fold: int) -> str:
    return f"s{seed}_f{fold:03d}"


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


def prepare_run_dir(out: Path, config: dict) -> dict:
    """Create ``out`` and write ``config.json``, or check that an existing one matches ``config``."""
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
        atomic_write_text(cfg_path, json.dumps(config, indent=2, sort_keys=True))
    return config


def write_fold(out: Path, data: FlowDataset, test: FlowDataset, result: FoldOutput, *, seed: int, fold: int,
               subject: str, n_train: int, wall: float, device: str) -> None:
    """Write one finished fold: predictions CSV, optional per-epoch scores, then the metadata JSON
    whose presence marks the fold as done."""
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
        epochs = np.asarray(result.epoch_scores, dtype=np.float32)

        def _save(path: Path) -> None:
            with open(path, "wb") as fh:
                np.savez_compressed(fh, epoch_scores=epochs, sample_ids=test.sample_ids)

        atomic_write(Path(f"{stem}.npz"), _save)
    atomic_write_text(Path(f"{stem}.csv"), frame.to_csv(index=False, float_format="%.6f"))
    meta = {"seed": seed, "fold": fold, "subject": subject, "n_train": n_train, "n_test": len(test),
            "wall_s": round(wall, 4), "device": device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "am3f_version": __version__, "git_commit": git_commit()}
    if result.info:
        meta["info"] = result.info
    atomic_write_text(Path(f"{stem}.json"), json.dumps(meta, indent=2))


def record_data(out: Path, data: FlowDataset) -> None:
    """``OUT/data.json``: the fingerprint of the data a run trains on (:func:`am3f.data.data_fingerprint`),
    written once; run.json repeats it (not config.json, whose content names the run's folder)."""
    from .data import data_fingerprint

    path = Path(out) / "data.json"
    if not path.is_file():
        atomic_write_text(path, json.dumps({"fingerprint": data_fingerprint(data), "n_samples": len(data),
                                            "synthetic": data.synthetic}, indent=2))


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
    atomic_write_text(out / "predictions.csv", preds.to_csv(index=False, float_format="%.6f"))

    n_subjects = expected_folds(config)
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
        "data_fingerprint": (json.loads((out / "data.json").read_text())["fingerprint"]
                             if (out / "data.json").is_file() else None),
        # training seconds summed over a seed's folds: the work of one core (N parallel workers finish in ~1/N)
        "core_s_per_seed": {str(s): round(sum(m["wall_s"] for m in metas if m["seed"] == s), 2) for s in seeds},
        "folds": [{k: m.get(k) for k in ("seed", "fold", "subject", "n_train", "n_test", "wall_s", "device",
                                         "git_commit")} for m in metas],
    }
    atomic_write_text(out / "run.json", json.dumps(run, indent=2))
    return preds


def _torch_version() -> str | None:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return None


# ----------------------------------------------------------------------------- reading runs back
@dataclass
class RunResult:
    """A finished (or partial) LOSO run as read back from disk."""

    path: Path
    predictions: pd.DataFrame
    config: dict
    info: dict
    label: str = ""

    @property
    def synthetic(self) -> bool:
        return bool(self.config.get("dataset", {}).get("synthetic"))

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.predictions["seed"].unique())

    @property
    def complete(self) -> bool:
        return bool(self.info.get("complete"))

    def describe(self) -> str:
        tag = " [SYNTHETIC]" if self.synthetic else ""
        done = self.info.get("folds_done", {})
        n_sub = expected_folds(self.config)
        state = "complete" if self.complete else f"PARTIAL: folds done per seed {done} of {n_sub}"
        return f"{self.label or self.path.name}{tag}: seeds {self.seeds}, {state}"


def load_run(run_dir: str | os.PathLike, label: str | None = None) -> RunResult:
    """Read a run directory (merging finished folds first, so partial runs work too)."""
    path = Path(run_dir)
    preds = merge_run(path)
    config = json.loads((path / "config.json").read_text())
    info = json.loads((path / "run.json").read_text())
    if label is None:
        label = config.get("variant") or config.get("model") or path.name
    return RunResult(path=path, predictions=preds, config=config, info=info, label=str(label))


def as_runs(runs: RunResult | str | os.PathLike | Mapping[str, RunResult | str | os.PathLike]
             | Sequence[RunResult | str | os.PathLike]) -> list[RunResult]:
    """Runs given as a directory, a :class:`RunResult`, a list of them or a {label: run} mapping."""
    if isinstance(runs, RunResult):
        return [runs]
    if isinstance(runs, (str, os.PathLike)):
        return [load_run(runs)]
    if isinstance(runs, Mapping):
        return [r if isinstance(r, RunResult) else load_run(r, label=k) for k, r in runs.items()]
    return [r if isinstance(r, RunResult) else load_run(r) for r in runs]


def load_epoch_scores(run_dir: str | os.PathLike) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """{(seed, fold): (epoch_scores (n_epochs, n_test, n_classes), sample_ids)} of every recorded fold."""
    out = {}
    for path in sorted((Path(run_dir) / "folds").glob("s*_f*.npz")):
        seed, fold = path.stem[1:].split("_f")
        with np.load(path, allow_pickle=False) as z:
            out[(int(seed), int(fold))] = (z["epoch_scores"], z["sample_ids"].astype(str))
    return out
